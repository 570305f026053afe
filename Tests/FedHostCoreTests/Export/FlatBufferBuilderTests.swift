import FedHostCore
import Testing

/// The builder's output byte for byte on a table decoded by hand.
@Suite("Export: flatbuffer builder")
struct FlatBufferBuilderTests {
  @Test func tinyTableMatchesTheHandDecodedBytes() {
    var builder = FlatBufferBuilder()
    let text = builder.string("hi")
    builder.startTable()
    builder.add(0, UInt32(7))
    builder.add(1, text)
    let table = builder.endTable()
    let bytes = builder.finish(root: table, fileIdentifier: "TEST")
    #expect(bytes == [
      16, 0, 0, 0,  // root uoffset: the table at 16
      84, 69, 83, 84,  // "TEST"
      8, 0, 12, 0, 8, 0, 4, 0,  // vtable at 8: 8 bytes, table of 12 bytes, field 0 at +8, field 1 at +4
      8, 0, 0, 0,  // table at 16: soffset 8, so its vtable is at 16 − 8
      8, 0, 0, 0,  // field 1 at 20: uoffset 8 → the string at 28
      7, 0, 0, 0,  // field 0 at 24: 7
      2, 0, 0, 0, 104, 105, 0, 0,  // the string: length 2, "hi", terminator, padding
    ])
  }

  @Test func defaultsAreOmittedAndEqualObjectsShared() {
    var builder = FlatBufferBuilder()
    let first = builder.vector([Int64(0), 0, 0])
    let second = builder.vector([Int64(0), 0, 0])
    #expect(first == second)
    builder.startTable()
    builder.add(0, Int32(1), default: 1)
    _ = builder.endTable()
    builder.startTable()
    builder.add(0, Int32(1), default: 1)
    let sizeBeforeSecond = builder.size
    _ = builder.endTable()
    // The second empty table reuses the first one's vtable: it costs only its 4-byte soffset.
    #expect(builder.size == sizeBeforeSecond + 4)
  }

  @Test func vectorElementsAreAlignedInTheFinishedBuffer() {
    var builder = FlatBufferBuilder()
    let data = builder.vector([UInt8](repeating: 0xab, count: 3), alignment: 16)
    builder.startTable()
    builder.add(0, data)
    let bytes = builder.finish(root: builder.endTable())
    let start = bytes.indices.first { bytes[$0] == 0xab }!
    #expect(start % 16 == 0)
    #expect(bytes.count % 16 == 0)
    let length = Int(bytes[start - 4]) | Int(bytes[start - 3]) << 8
    #expect(length == 3)
  }
}
