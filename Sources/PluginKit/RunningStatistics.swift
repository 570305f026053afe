/// The median of `values` (the mean of the two middle ones for an even count; 0 when empty).
public func median(of values: [Double]) -> Double {
  let sorted = values.sorted()
  guard !sorted.isEmpty else { return 0 }
  let middle = sorted.count / 2
  return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Per-coordinate running variance of a stream of vectors (Welford), e.g. of a client's
/// support gradients (MEFL's V3 σ²): `meanVariance` is the population variance of each
/// coordinate, averaged over coordinates. A count of 0 makes every call a no-op.
public struct CoordinateVariance {
  private let mean: ScratchBuffer<Double>
  private let squaredDeviations: ScratchBuffer<Double>
  private var samples = 0

  public init(count: Int) throws {
    mean = try ScratchBuffer(repeating: 0, count: count)
    squaredDeviations = try ScratchBuffer(repeating: 0, count: count)
  }

  /// Adds one vector of `count` floats.
  public mutating func add(_ values: UnsafePointer<Float>) {
    guard mean.count > 0 else { return }
    samples += 1
    let weight = 1 / Double(samples)
    for index in 0..<mean.count {
      let value = Double(values[index])
      let deviation = value - mean.pointer[index]
      mean.pointer[index] += deviation * weight
      squaredDeviations.pointer[index] += deviation * (value - mean.pointer[index])
    }
  }

  public var meanVariance: Double {
    guard samples > 0, mean.count > 0 else { return 0 }
    var total = 0.0
    for index in 0..<mean.count { total += squaredDeviations.pointer[index] }
    return total / Double(samples) / Double(mean.count)
  }
}

extension SeededGenerator {
  /// `size` distinct rows of 0..<rows (Floyd's sampling, in draw order), for a client hook's
  /// mini-batches; nil (the whole split) when the split is not larger than a batch.
  public mutating func distinctRows(_ size: Int, of rows: Int) -> [UInt64]? {
    guard rows > size else { return nil }
    var batch: [UInt64] = []
    batch.reserveCapacity(size)
    for candidateLimit in (rows - size)..<rows {
      let draw = next(below: UInt64(candidateLimit + 1))
      batch.append(batch.contains(draw) ? UInt64(candidateLimit) : draw)
    }
    return batch
  }
}
