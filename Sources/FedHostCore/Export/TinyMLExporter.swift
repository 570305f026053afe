import Foundation

/// The two deployment formats `host export` writes.
public enum ExportFormat: String, Sendable, CaseIterable {
  /// A `.tflite` flatbuffer.
  case tflite
  /// The same bytes as a C array plus a header, for a TFLite Micro application.
  case cArray = "c-array"
}

/// Quantize, write, report: what `host export` and `host run --export` do for one device.
public enum TinyMLExporter {
  /// Quantizes `parameters` to int8, calibrated on `device`'s own Phase 3 training rows, writes
  /// it to `path` in `format` (atomically; a C array's header is written first, beside it) and
  /// returns the Table-II-style report on the device's test split and the files written.
  public static func export(_ parameters: ParameterVector, architecture: MLPArchitecture, device: PreparedDevice,
                            format: ExportFormat, granularity: WeightGranularity, to path: String,
                            arrayName: String? = nil, modelFileBytes: Int? = nil) throws
    -> (report: ExportReport, files: [String])
  {
    let model = try Quantizer.quantize(parameters, architecture: architecture, calibration: device.phase3Train,
                                       granularity: granularity)
    let bytes = TFLiteWriter.flatbuffer(for: model, description: "FedHost int8 model for \(device.name)")
    let report = try ExportReport(
      device: device.name, parameters: parameters, model: model, flatbufferSize: bytes.count,
      modelFileBytes: modelFileBytes, calibrationRows: device.phase3Train.count, test: device.test,
      budget: device.memory)
    switch format {
    case .tflite:
      try AtomicFile.write(Data(bytes), to: path)
      return (report, [path])
    case .cArray:
      let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
      let name = CArrayWriter.identifier(from: arrayName ?? stem)
      let headerPath = (path as NSString).deletingPathExtension + ".h"
      let interface = CArrayWriter.Interface(model: model, footprint: report.footprint, standardizer: device.standardizer)
      // Header first: a source file never exists without the header it includes.
      try AtomicFile.write(CArrayWriter.header(name: name, byteCount: bytes.count, interface: interface), to: headerPath)
      try AtomicFile.write(CArrayWriter.source(bytes, name: name, headerName: (headerPath as NSString).lastPathComponent),
                           to: path)
      return (report, [path, headerPath])
    }
  }
}
