/// The consecutive ranges of at most `length` elements that cover `elements`, first to last:
/// the unit of the blocked kernels (`WeightedDeltaSum`, `DeltaComparisons`), which stream
/// every client's slice of one block before moving on, so that the block's accumulators —
/// and, in fused sweeps, the slices themselves — are still in cache when they are used again.
/// Every block but the last has exactly `length` elements.
public func elementBlocks(_ elements: Range<Int>, length: Int) -> [Range<Int>] {
  stride(from: elements.lowerBound, to: elements.upperBound, by: length).map { $0..<min($0 + length, elements.upperBound) }
}

/// The block length for a vector of `count` elements: `preferred`, or the whole vector when
/// it is shorter (at least 1), so that a small model gets small scratch buffers.
public func blockLength(preferred: Int, count: Int) -> Int {
  max(1, min(preferred, count))
}
