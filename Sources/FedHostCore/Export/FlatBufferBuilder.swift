/// A small FlatBuffers writer: enough of the format for TFLite models (tables with scalar, offset
/// and union fields; vectors of scalars and of offsets; strings; file identifiers).
///
/// Like the reference builder it writes back to front, so everything a table points at already
/// exists when the table is written and every `uoffset` points forward, as the format requires.
/// Positions are kept as distances from the end of the buffer, which do not change as more is
/// prepended. Alignment is relative to the end too; `finish` pads the front so the whole buffer is a
/// multiple of the largest alignment used, which makes end-relative alignment absolute. Identical
/// vtables, scalar vectors and strings are written once and shared (a TFLite model repeats shapes,
/// zero points and scales).
public struct FlatBufferBuilder {
  /// An object already in the buffer, as its distance from the end.
  public struct Offset: Hashable {
    fileprivate let distance: Int
  }

  /// The buffer in reverse byte order: `reversed[k]` is the byte `k + 1` positions before the end.
  private var reversed: [UInt8] = []
  private var largestAlignment = 1
  /// Fields of the table being built: id, the field's own distance from the end.
  private var fields: [(id: Int, distance: Int)] = []
  private var tableStart = 0
  private var inTable = false
  private var vtables: [(bytes: [UInt8], distance: Int)] = []
  /// Vectors and strings already written, by their bytes (length included) and alignment.
  private var written: [[UInt8]: Offset] = [:]

  public init() {}

  /// Bytes written so far (before `finish`'s padding and root offset).
  public var size: Int { reversed.count }

  // MARK: Raw writing

  /// Pads with zeros so that after `following` more bytes the position is `alignment`-aligned.
  private mutating func align(_ alignment: Int, following: Int = 0) {
    largestAlignment = max(largestAlignment, alignment)
    let padding = (alignment - (reversed.count + following) % alignment) % alignment
    reversed.append(contentsOf: repeatElement(0, count: padding))
  }

  /// Prepends `bytes` (in memory order).
  private mutating func prepend(_ bytes: some BidirectionalCollection<UInt8>) {
    reversed.append(contentsOf: bytes.reversed())
  }

  private mutating func prepend<T: FixedWidthInteger>(_ value: T) {
    align(MemoryLayout<T>.size)
    withUnsafeBytes(of: value.littleEndian) { prepend($0) }
  }

  /// Overwrites the `T` that starts `distance` bytes before the end.
  private mutating func patch<T: FixedWidthInteger>(_ value: T, at distance: Int) {
    withUnsafeBytes(of: value.littleEndian) { bytes in
      for (index, byte) in bytes.enumerated() { reversed[distance - 1 - index] = byte }
    }
  }

  // MARK: Vectors and strings

  /// A vector of little-endian integers; its elements start `alignment`-aligned.
  public mutating func vector<T: FixedWidthInteger>(_ values: [T], alignment: Int = MemoryLayout<T>.size) -> Offset {
    let elements = values.map(\.littleEndian).withUnsafeBytes { Array($0) }
    return shared(elements, length: values.count, alignment: max(alignment, 4))
  }

  /// Writes `length` then `elements` (elements starting `alignment`-aligned), or returns the
  /// identical object written before.
  private mutating func shared(_ elements: [UInt8], length: Int, alignment: Int) -> Offset {
    let key = withUnsafeBytes(of: UInt32(length).littleEndian) { Array($0) } + elements + [UInt8(alignment)]
    if let offset = written[key] { return offset }
    align(alignment, following: elements.count)
    prepend(elements)
    prepend(UInt32(length))
    let offset = Offset(distance: reversed.count)
    written[key] = offset
    return offset
  }

  public mutating func vector(_ values: [Float]) -> Offset {
    vector(values.map(\.bitPattern))
  }

  /// A vector of offsets to objects already written.
  public mutating func vector(_ offsets: [Offset]) -> Offset {
    align(4, following: offsets.count * 4)
    for offset in offsets.reversed() {
      // The uoffset is relative to its own position, which is where it is about to be written.
      prepend(UInt32(reversed.count + 4 - offset.distance))
    }
    prepend(UInt32(offsets.count))
    return Offset(distance: reversed.count)
  }

  /// A UTF-8 string with its terminating zero (not counted in its length).
  public mutating func string(_ text: String) -> Offset {
    let bytes = Array(text.utf8)
    return shared(bytes + [0], length: bytes.count, alignment: 4)
  }

  // MARK: Tables

  public mutating func startTable() {
    precondition(!inTable, "tables cannot nest while being built")
    inTable = true
    fields.removeAll(keepingCapacity: true)
    tableStart = reversed.count
  }

  /// A scalar field; like the reference builder, a value equal to the schema default is omitted.
  public mutating func add<T: FixedWidthInteger>(_ id: Int, _ value: T, default defaultValue: T = 0) {
    precondition(inTable)
    guard value != defaultValue else { return }
    prepend(value)
    fields.append((id, reversed.count))
  }

  public mutating func add(_ id: Int, _ value: Float, default defaultValue: Float = 0) {
    add(id, value.bitPattern, default: defaultValue.bitPattern)
  }

  /// A field pointing at a table, vector or string.
  public mutating func add(_ id: Int, _ offset: Offset) {
    precondition(inTable)
    align(4)
    prepend(UInt32(reversed.count + 4 - offset.distance))
    fields.append((id, reversed.count))
  }

  /// Closes the table: writes its vtable offset and its vtable (or reuses an identical one).
  public mutating func endTable() -> Offset {
    precondition(inTable)
    inTable = false
    prepend(Int32(0))  // soffset to the vtable, patched below
    let table = reversed.count
    let fieldCount = (fields.map(\.id).max() ?? -1) + 1
    var entries = [UInt16](repeating: 0, count: fieldCount)
    for field in fields { entries[field.id] = UInt16(table - field.distance) }
    let vtable = [UInt16(4 + 2 * fieldCount), UInt16(table - tableStart)] + entries
    let bytes = vtable.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] }
    let vtableDistance: Int
    if let shared = vtables.first(where: { $0.bytes == bytes }) {
      vtableDistance = shared.distance
    } else {
      prepend(bytes)
      vtableDistance = reversed.count
      vtables.append((bytes, vtableDistance))
    }
    // vtable position = table position − soffset, in absolute positions.
    patch(Int32(vtableDistance - table), at: table)
    return Offset(distance: table)
  }

  // MARK: Finishing

  /// The finished buffer: root offset, optional 4-byte file identifier, then everything written.
  public mutating func finish(root: Offset, fileIdentifier: String? = nil) -> [UInt8] {
    let identifier = Array((fileIdentifier ?? "").utf8)
    precondition(identifier.isEmpty || identifier.count == 4, "file identifiers have 4 bytes")
    align(max(largestAlignment, 4), following: 4 + identifier.count)
    prepend(identifier)
    prepend(UInt32(reversed.count + 4 - root.distance))
    return reversed.reversed()
  }
}
