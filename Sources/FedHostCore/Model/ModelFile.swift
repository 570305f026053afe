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

  /// Reads a model file; errors name the file and what is wrong with it.
  public static func read(_ path: String) throws -> (architecture: MLPArchitecture, parameters: ParameterVector) {
    guard let data = FileManager.default.contents(atPath: path) else { throw ModelFileError(path: path, reason: "cannot read the file") }
    let bytes = [UInt8](data)
    var offset = 0
    func take<T: FixedWidthInteger>(_: T.Type) throws -> T {
      guard offset + MemoryLayout<T>.size <= bytes.count else { throw ModelFileError(path: path, reason: "truncated at byte \(offset)") }
      let value = bytes[offset..<(offset + MemoryLayout<T>.size)].withUnsafeBytes { $0.loadUnaligned(as: T.self) }
      offset += MemoryLayout<T>.size
      return T(littleEndian: value)
    }
    guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
      throw ModelFileError(path: path, reason: "not a FedHost model file (bad magic)")
    }
    offset = magic.count
    let widthCount = try take(UInt32.self)
    guard (2...64).contains(widthCount) else { throw ModelFileError(path: path, reason: "implausible layer count \(widthCount)") }
    let widths = try (0..<widthCount).map { _ in Int(try take(UInt32.self)) }
    let architecture: MLPArchitecture
    do { architecture = try MLPArchitecture(widths: widths) } catch {
      throw ModelFileError(path: path, reason: "bad architecture \(widths): \(error)")
    }
    let count = try take(UInt64.self)
    guard count == UInt64(architecture.parameterCount),
          bytes.count - offset == architecture.parameterCount * MemoryLayout<Float>.size else {
      throw ModelFileError(path: path, reason: "expected \(architecture.parameterCount) parameters for \(architecture), file holds \(count)")
    }
    let parameters = ParameterVector(count: architecture.parameterCount)
    bytes[offset...].withUnsafeBytes { raw in
      for index in 0..<parameters.count {
        parameters[index] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))
      }
    }
    return (architecture, parameters)
  }
}

public struct ModelFileError: Error, CustomStringConvertible {
  public let path: String
  public let reason: String
  public var description: String { "\(path): \(reason)" }
}
