import Foundation

/// A trained model on disk: one self-describing little-endian file, written atomically.
///
///     "FHMODEL2"            8 bytes magic ("FHMODEL1": the same without the input names)
///     u32 layer-width count, then that many u32 widths (input … output)
///     u64 parameter count, then that many float32 parameters (MLPArchitecture's flat layout)
///     u32 input-name count (0 or the input width), then per name a u32 byte length and UTF-8
///
/// The input names are the features the model was trained on, in order, so that exporting it
/// against another federation's device is refused rather than silently calibrated on the wrong inputs.
public enum ModelFile {
  static let magic = Array("FHMODEL2".utf8)
  static let firstVersionMagic = Array("FHMODEL1".utf8)
  /// Longest input name read back.
  static let maximumNameBytes = 4096

  /// `featureNames`: the model's inputs in order, when every device it serves has the same ones.
  public static func write(_ parameters: ParameterVector, architecture: MLPArchitecture, featureNames: [String]? = nil,
                           to path: String) throws {
    precondition(featureNames.map { $0.count == architecture.inputWidth } ?? true, "one name per input")
    var bytes = magic
    func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    append(UInt32(architecture.widths.count))
    architecture.widths.forEach { append(UInt32($0)) }
    append(UInt64(parameters.count))
    bytes += UnsafeRawBufferPointer(start: parameters.pointer, count: parameters.count * MemoryLayout<Float>.size)
    append(UInt32(featureNames?.count ?? 0))
    for name in featureNames ?? [] {
      append(UInt32(name.utf8.count))
      bytes += name.utf8
    }
    try AtomicFile.write(Data(bytes), to: path)
  }

  /// Layer widths above this are refused as implausible (a corrupt header, not a TinyML model);
  /// it also keeps the parameter count far from overflowing before it is compared with the file size.
  public static let maximumWidth = 1 << 16
  /// The most layer widths a header may list (input … output).
  public static let maximumWidthCount = 64

  /// Reads a model file; errors name the file and what is wrong with it, in one line.
  public static func read(_ path: String) throws
    -> (architecture: MLPArchitecture, parameters: ParameterVector, featureNames: [String]?)
  {
    guard let data = FileManager.default.contents(atPath: path) else {
      let reason = FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file"
      throw ModelFileError(path: path, reason: reason)
    }
    return try decode([UInt8](data), path: path)
  }

  /// Decodes the bytes of a model file; `path` only names it in errors.
  public static func decode(_ bytes: [UInt8], path: String) throws
    -> (architecture: MLPArchitecture, parameters: ParameterVector, featureNames: [String]?)
  {
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
    let start = bytes.count >= magic.count ? Array(bytes[0..<magic.count]) : []
    guard start == magic || start == firstVersionMagic else {
      throw failure("not a FedHost model file (it does not start with \"FHMODEL2\" or \"FHMODEL1\")")
    }
    let hasNames = start == magic
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
    guard hasNames ? present >= needed : present == needed else {
      let problem = present < needed ? "truncated" : "\(present - needed) bytes too many"
      throw failure("\(problem): \(count) parameters need \(needed) bytes after the header, the file has \(present)")
    }
    let parameters = ParameterVector(count: architecture.parameterCount)
    bytes[offset...].withUnsafeBytes { raw in
      for index in 0..<parameters.count {
        parameters[index] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))
      }
    }
    offset += needed
    var featureNames: [String]?
    if hasNames {
      let nameCount = Int(try take(UInt32.self, "input-name count"))
      guard nameCount == 0 || nameCount == architecture.inputWidth else {
        throw failure("\(nameCount) input names for a model of \(architecture.inputWidth) inputs")
      }
      let names = try (0..<nameCount).map { index in
        let length = Int(try take(UInt32.self, "length of input name \(index)"))
        guard length <= maximumNameBytes, offset + length <= bytes.count else {
          throw failure("truncated or implausible input name \(index) (\(length) bytes)")
        }
        defer { offset += length }
        guard let name = String(validating: bytes[offset..<(offset + length)], as: UTF8.self) else {
          throw failure("input name \(index) is not UTF-8")
        }
        return name
      }
      featureNames = names.isEmpty ? nil : names
      guard offset == bytes.count else { throw failure("\(bytes.count - offset) bytes too many after the input names") }
    }
    if let index = parameters.firstNonFiniteIndex {
      throw failure("parameter \(index) is \(parameters[index]); a trained model holds only finite numbers")
    }
    return (architecture, parameters, featureNames)
  }
}

public struct ModelFileError: InputError {
  public let path: String
  public let reason: String
  public var description: String { "\(path): \(reason)".escapingControlCharacters }
}
