/// A flat, contiguous float32 buffer: model parameters, deltas, optimizer moments.
///
/// One allocation per vector, 64-byte aligned for SIMD loads; the same memory is handed to
/// plugins as `global`/`delta` without copying. A reference type on purpose: buffers are
/// shared between a model, a round and a plugin call, and never copied implicitly.
public final class ParameterVector: @unchecked Sendable {
  public let count: Int
  public let pointer: UnsafeMutablePointer<Float>
  /// The vector whose memory a view shares (nil: this vector owns its allocation).
  private let storage: ParameterVector?

  /// A zero-filled vector of `count` elements.
  public init(count: Int) {
    precondition(count >= 0)
    self.count = count
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride,
                                               alignment: 64)
    pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    pointer.initialize(repeating: 0, count: max(count, 1))
    storage = nil
  }

  /// Elements `offset..<offset + count` of `storage`, sharing its memory (the view keeps it
  /// alive): many vectors in one allocation. 64-byte aligned when `offset` is a multiple of 16.
  public init(viewOf storage: ParameterVector, offset: Int, count: Int) {
    precondition(offset >= 0 && count >= 0 && offset + count <= storage.count)
    self.count = count
    self.storage = storage
    pointer = storage.pointer + offset
  }

  public convenience init(_ values: [Float]) {
    self.init(count: values.count)
    values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
  }

  deinit { if storage == nil { pointer.deallocate() } }

  public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: pointer, count: count) }
  public var array: [Float] { Array(buffer) }

  public subscript(index: Int) -> Float {
    get { pointer[index] }
    set { pointer[index] = newValue }
  }

  /// The first element that is NaN or ±Inf, or nil. Scans in blocks with a branch-free test
  /// per element (all exponent bits set), so the common all-finite case runs at memory speed.
  public var firstNonFiniteIndex: Int? {
    pointer.withMemoryRebound(to: UInt32.self, capacity: count) { bits in
      let block = 4096
      for start in stride(from: 0, to: count, by: block) {
        let end = min(start + block, count)
        var flagged: UInt32 = 0
        for index in start..<end { flagged |= (~bits[index] & 0x7F80_0000) == 0 ? 1 : 0 }
        if flagged != 0 { return (start..<end).first { (~bits[$0] & 0x7F80_0000) == 0 } }
      }
      return nil
    }
  }

  /// A new vector with the same contents.
  public func copy() -> ParameterVector {
    let result = ParameterVector(count: count)
    result.pointer.update(from: pointer, count: count)
    return result
  }

  /// Sets every element to 0.
  public func zero() {
    pointer.update(repeating: 0, count: count)
  }

  /// Overwrites this vector with `other`'s contents (same count).
  public func assign(from other: ParameterVector) {
    precondition(other.count == count, "vector lengths differ")
    pointer.update(from: other.pointer, count: count)
  }
}
