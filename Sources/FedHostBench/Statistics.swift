/// Median and best of repeated measurements.
struct Statistics {
  let median: Double
  let best: Double

  init(_ values: [Double], higherIsBetter: Bool) {
    let sorted = values.sorted()
    median = sorted.isEmpty ? 0 : sorted.count % 2 == 1 ? sorted[sorted.count / 2]
      : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    best = (higherIsBetter ? sorted.last : sorted.first) ?? 0
  }
}
