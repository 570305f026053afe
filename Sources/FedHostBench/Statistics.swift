/// Median and best of repeated measurements, and the clock they are taken with.
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

/// Wall-clock seconds `body` takes (monotonic clock).
func seconds(_ body: () throws -> Void) rethrows -> Double {
  let start = ContinuousClock.now
  try body()
  let elapsed = ContinuousClock.now - start
  return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
}
