import Foundation

/// A trained model on disk: one self-describing little-endian file, written atomically.
///
///     "FHMODEL1"            8 bytes magic
///     u32 layer-width count, then that many u32 widths (input … output)
///     u64 parameter count, then that many float32 parameters (MLPArchitecture's flat layout)
public enum ModelFile {
  static let magic = Array("FHMODEL1".utf8)

  public static func write(_ parameters: ParameterVector, architecture: MLPArchitecture, to path: String) throws {
    var bytes = magic
    func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    append(UInt32(architecture.widths.count))
    architecture.widths.forEach { append(UInt32($0)) }
    append(UInt64(parameters.count))
    bytes += UnsafeRawBufferPointer(start: parameters.pointer, count: parameters.count * MemoryLayout<Float>.size)
    try AtomicFile.write(Data(bytes), to: path)
  }

  /// Layer widths above this are refused as implausible (a corrupt header, not a TinyML model);
  /// it also keeps the parameter count far from overflowing before it is compared with the file size.
  public static let maximumWidth = 1 << 16
  /// The most layer widths a header may list (input … output).
  public static let maximumWidthCount = 64

  /// Reads a model file; errors name the file and what is wrong with it, in one line.
  public static func read(_ path: String) throws -> (architecture: MLPArchitecture, parameters: ParameterVector) {
    guard let data = FileManager.default.contents(atPath: path) else {
      let reason = FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file"
      throw ModelFileError(path: path, reason: reason)
    }
    return try decode([UInt8](data), path: path)
  }

  /// Decodes the bytes of a model file; `path` only names it in errors.
  public static func decode(_ bytes: [UInt8], path: String) throws -> (architecture: MLPArchitecture, parameters: ParameterVector) {
    func failure(_ reason: String) -> ModelFileError { ModelFileError(path: path, reason: reason) }
    var offset = 0
    func take<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
      guard offset + MemoryLayout<T>.size <= bytes.count else {
        throw failure("truncated: the header ends at byte \(bytes.count), inside the \(what)")
      }
      let value = bytes[offset..<(offset + MemoryLayout<T>.size)].withUnsafeBytes { $0.loadUnaligned(as: T.self) }
      offset += MemoryLayout<T>.size
      return T(littleEndian: value)
    }
    guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
      throw failure("not a FedHost model file (it does not start with \"FHMODEL1\")")
    }
    offset = magic.count
    let widthCount = try take(UInt32.self, "layer-width count")
    guard (2...UInt32(maximumWidthCount)).contains(widthCount) else {
      throw failure("implausible layer-width count \(widthCount) (2 to \(maximumWidthCount))")
    }
    let widths = try (0..<Int(widthCount)).map { Int(try take(UInt32.self, "width of layer \($0)")) }
    if let index = widths.firstIndex(where: { !(1...maximumWidth).contains($0) }) {
      throw failure("implausible width \(widths[index]) at position \(index) of \(widths) (1 to \(maximumWidth))")
    }
    let architecture: MLPArchitecture
    do { architecture = try MLPArchitecture(widths: widths) } catch {
      throw failure("bad architecture \(widths): \(error)")
    }
    let count = try take(UInt64.self, "parameter count")
    guard count == UInt64(architecture.parameterCount) else {
      throw failure("the header says \(count) parameters, but \(architecture) has \(architecture.parameterCount)")
    }
    let needed = architecture.parameterCount * MemoryLayout<Float>.size
    let present = bytes.count - offset
    guard present == needed else {
      let problem = present < needed ? "truncated" : "\(present - needed) bytes too many"
      throw failure("\(problem): \(count) parameters need \(needed) bytes after the header, the file has \(present)")
    }
    let parameters = ParameterVector(count: architecture.parameterCount)
    bytes[offset...].withUnsafeBytes { raw in
      for index in 0..<parameters.count {
        parameters[index] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))
      }
    }
    if let index = (0..<parameters.count).first(where: { !parameters[$0].isFinite }) {
      throw failure("parameter \(index) is \(parameters[index]); a trained model holds only finite numbers")
    }
    return (architecture, parameters)
  }
}

public struct ModelFileError: InputError {
  public let path: String
  public let reason: String
  public var description: String { "\(path): \(reason)".escapingControlCharacters }
}
