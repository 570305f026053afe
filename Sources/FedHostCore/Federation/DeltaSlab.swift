import Synchronization

/// A round's client deltas side by side in one block, kept from round to round. Allocated one
/// by one among the trainers' model-sized scratch vectors, a round's deltas fragmented the
/// allocator's heaps (peak RSS about twice their size at 1,000 clients a round); one block holds
/// them at their size and, reused, costs no new pages after the first round.
final class DeltaSlab: Sendable {
  private let cached = Mutex<ParameterVector?>(nil)

  /// `count` vectors of `width` elements, each 64-byte aligned, for one round; their contents are
  /// whatever the last round left (every caller overwrites all of its vector). A block still
  /// referenced by an earlier round's updates (someone kept one) is left to them.
  func slots(count: Int, width: Int) -> [ParameterVector] {
    let stride = (width + 15) / 16 * 16
    var block = cached.withLock { cache -> ParameterVector? in
      defer { cache = nil }
      return cache
    }
    if block == nil || block!.count < count * stride || !isKnownUniquelyReferenced(&block!) {
      block = ParameterVector(count: count * stride)
    }
    let slots = (0..<count).map { ParameterVector(viewOf: block!, offset: $0 * stride, count: width) }
    cached.withLock { $0 = block }
    return slots
  }
}
