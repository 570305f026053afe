/// Writes a plugin's saved state: a header (magic, plugin id, format version) and then
/// little-endian fields in the order the plugin writes them.
///
/// `StateReader` checks the header, so a state saved by another plugin or by an
/// incompatible version of this one is refused with a clear message instead of being
/// misread.
public struct StateWriter {
  public private(set) var bytes: [UInt8] = []

  static let magic: [UInt8] = Array("FHPS".utf8)

  init(pluginID: String, version: UInt32) {
    bytes.append(contentsOf: Self.magic)
    write(version)
    write(pluginID)
  }

  public mutating func write(_ value: UInt32) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
  }

  public mutating func write(_ value: UInt64) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
  }

  public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }

  /// Doubles are stored by bit pattern: restored exactly, NaN payloads included.
  public mutating func write(_ value: Double) { write(value.bitPattern) }

  public mutating func write(_ value: String) {
    let utf8 = Array(value.utf8)
    write(UInt64(utf8.count))
    bytes.append(contentsOf: utf8)
  }

  /// A length-prefixed float vector (bit patterns, little-endian).
  public mutating func write(_ values: [Float]) {
    write(UInt64(values.count))
    bytes.reserveCapacity(bytes.count + values.count * 4)
    for value in values { write(value.bitPattern) }
  }

  public mutating func write(_ generator: SeededGenerator) {
    for word in generator.words { write(word) }
  }
}

/// Reads state written by `StateWriter`; every read throws `FHP_E_STATE` on truncation.
public struct StateReader {
  private let bytes: UnsafeRawBufferPointer
  private var offset = 0

  /// Checks the header: `FHP_E_STATE` for foreign or corrupt data, `FHP_E_VERSION` for a
  /// format version this plugin does not read.
  init(bytes: UnsafeRawBufferPointer, pluginID: String, version: UInt32) throws {
    self.bytes = bytes
    guard bytes.count >= StateWriter.magic.count, Array(bytes.prefix(StateWriter.magic.count)) == StateWriter.magic else {
      throw PluginFailure.state("not a FedHost plugin state (bad magic)")
    }
    offset = StateWriter.magic.count
    let savedVersion: UInt32 = try read()
    let savedID: String = try read()
    guard savedID == pluginID else {
      throw PluginFailure.state("state was saved by plugin \"\(savedID)\", not \"\(pluginID)\"")
    }
    guard savedVersion == version else {
      throw PluginFailure.version("state format version \(savedVersion) is not the supported version \(version)")
    }
  }

  private mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
    guard count >= 0, bytes.count - offset >= count else {
      throw PluginFailure.state("saved state is truncated at byte \(offset)")
    }
    defer { offset += count }
    return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
  }

  public mutating func read() throws -> UInt32 {
    UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self))
  }

  public mutating func read() throws -> UInt64 {
    UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self))
  }

  public mutating func read() throws -> Bool {
    switch try take(1)[0] {
    case 0: return false
    case 1: return true
    default: throw PluginFailure.state("saved state is corrupt at byte \(offset - 1)")
    }
  }

  public mutating func read() throws -> Double { Double(bitPattern: try read()) }

  /// A length, checked against the bytes left so a corrupt length cannot over-allocate.
  private mutating func readCount(elementSize: Int) throws -> Int {
    let count: UInt64 = try read()
    guard count <= UInt64(bytes.count - offset) / UInt64(elementSize) else {
      throw PluginFailure.state("saved state is corrupt: length \(count) at byte \(offset - 8)")
    }
    return Int(count)
  }

  public mutating func read() throws -> String {
    String(decoding: try take(try readCount(elementSize: 1)), as: UTF8.self)
  }

  public mutating func read() throws -> [Float] {
    let count = try readCount(elementSize: 4)
    let raw = try take(count * 4)
    return (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
  }

  public mutating func read() throws -> SeededGenerator {
    let words: [UInt64] = [try read(), try read(), try read(), try read()]
    guard let generator = SeededGenerator(words: words) else {
      throw PluginFailure.state("saved generator state is all zero")
    }
    return generator
  }

  /// Throws unless every byte was read: trailing bytes mean a layout mismatch.
  func finish() throws {
    guard offset == bytes.count else {
      throw PluginFailure.state("saved state has \(bytes.count - offset) unexpected trailing bytes")
    }
  }
}
