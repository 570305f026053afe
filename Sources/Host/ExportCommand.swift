import FedHostCore
import Foundation

/// `host export`: int8 quantization of a trained model and a TFLite flatbuffer or C array for
/// TFLite Micro, calibrated on the device's own training data, with a Table-II-style report.
enum ExportCommand {
  static let specs: [OptionSpec] = [
    .value("model", "FILE", "the trained model (.fhmodel, e.g. OUT/models/… written by `host run --out`)"),
    .value("format", "FORMAT", "tflite (a .tflite flatbuffer) or c-array (C source + header for TFLite Micro)"),
    .value("out", "FILE", "where to write (c-array: the source; the header goes beside it with extension .h)"),
    .value("federation", "FILE", "federation spec the device comes from (default: the embedded two-device federation)"),
    .value("data-dir", "DIR", "directory the spec's dataset files are relative to (default: .)"),
    .value("device", "NAME", "the device whose Phase 3 training rows calibrate and whose test rows score (default: the first)"),
    .value("seed", "N", "seed of the splits, as given to `host run` (default: the spec's, else 0)"),
    .value("preset", "NAME", "preset of the run that trained the model: its Phase 1/2/3 shares decide the calibration rows (default: tuned)"),
    .value("phases", "P1,P2,P3", "Phase 1/2/3 shares, if the run set --phases"),
    .value("weights", "GRANULARITY", "per-channel (default, as TFLite's converter) or per-tensor (smaller file)"),
    .value("name", "IDENT", "c-array: name of the C array (default: from the output file name)"),
    .flag("help", "show this help"),
  ]

  static let help = helpText(
    usage: "host export --model FILE --format tflite|c-array --out FILE [options]",
    summary: """
      Quantizes a trained model to int8 (TFLite's post-training full-integer scheme: per-channel
      int8 weights, int32 biases, activations calibrated on the device's standardized Phase 3
      training split) and writes it as a TFLite flatbuffer or as a C array for TFLite Micro.
      Prints the float and int8 models side by side on the device's test split: size, accuracy,
      F1, host latency, and the flash and RAM the int8 model needs on a device.
      """,
    specs: specs,
    footer: "example: host export --model out/models/personalized-line-fault.fhmodel --format tflite --out line-fault.tflite --device line-fault")

  static func run(_ arguments: ArraySlice<String>) throws -> Int32 {
    let options = try ParsedOptions(arguments, specs: specs, command: "export")
    if options.has("help") { print(help); return 0 }
    guard let modelPath = options.value("model") else { throw UsageError("--model FILE is required (see `host export --help`)") }
    guard let outPath = options.value("out") else { throw UsageError("--out FILE is required") }
    let formatName = options.value("format") ?? ExportFormat.tflite.rawValue
    guard let format = ExportFormat(rawValue: formatName) else {
      throw UsageError("--format must be tflite or c-array, got \"\(formatName)\"")
    }
    let granularityName = options.value("weights") ?? WeightGranularity.perChannel.rawValue
    guard let granularity = WeightGranularity(rawValue: granularityName) else {
      throw UsageError("--weights must be per-channel or per-tensor, got \"\(granularityName)\"")
    }

    let (architecture, parameters, featureNames) = try ModelFile.read(modelPath)
    let (data, source) = try ExperimentOptions.federationData(options)
    let seed = try options.seed("seed") ?? data.training.seed ?? 0
    // The same preset → spec → flag resolution as `host run`, so calibration sees the run's Phase 3 rows.
    let settings = try ExperimentOptions.settings(options, data: data)
    let devices = data.prepare(seed: seed, phaseFractions: settings.phaseFractions).devices
    let device: PreparedDevice
    if let name = options.value("device") {
      guard let match = devices.first(where: { $0.name == name }) else {
        throw UsageError("no device \"\(name)\" in the \(source); devices: \(devices.map(\.name).joined(separator: ", "))")
      }
      device = match
    } else {
      device = devices[0]
    }
    var mismatches = [String]()
    if device.train.width != architecture.inputWidth {
      mismatches.append("the model takes \(architecture.inputWidth) inputs, the device's rows have \(device.train.width)")
    }
    if let featureNames, device.featureNames.count == featureNames.count, device.featureNames != featureNames {
      let first = featureNames.indices.first { featureNames[$0] != device.featureNames[$0] }!
      mismatches.append("input \(first) of the model is \"\(featureNames[first])\", of the device \"\(device.featureNames[first])\"")
    }
    if device.classNames.count != architecture.classCount {
      mismatches.append("the model has \(architecture.classCount) classes, the device \(device.classNames.count)")
    }
    guard mismatches.isEmpty else {
      throw UsageError("model \(modelPath) (\(architecture)) does not fit device \"\(device.name)\" of the \(source): "
                         + mismatches.joined(separator: "; ") + " (was it trained on another federation?)")
    }

    let (report, files) = try TinyMLExporter.export(
      parameters, architecture: architecture, device: device, format: format, granularity: granularity, to: outPath,
      arrayName: options.value("name"),
      modelFileBytes: (try? FileManager.default.attributesOfItem(atPath: modelPath)[.size] as? Int) ?? nil)
    print("wrote \(files.joined(separator: " and ")) (\(report.footprint.flashBytes) bytes of model)")
    print()
    print(report.markdown, terminator: "")
    return 0
  }
}
