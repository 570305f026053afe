/// Median and best of repeated measurements.
struct Statistics {
  let median: Double
  let best: Double

  init(_ values: [Double], higherIsBetter: Bool) {
    median = FedHostBench.median(values)
    best = (higherIsBetter ? values.max() : values.min()) ?? 0
  }
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none.
func median(_ values: [Double]) -> Double {
  let sorted = values.sorted()
  guard !sorted.isEmpty else { return 0 }
  let middle = sorted.count / 2
  return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
