/// One line of the benchmark table: FedHost's figure beside a peer's, measured in the same run.
struct BenchmarkRow: Codable {
  var section: String      // e.g. "training", "aggregation"
  var name: String         // what was measured
  var unit: String         // e.g. "samples/s", "GB/s", "µs"
  var fedhostMedian: Double
  var fedhostMin: Double   // best repetition (for rates: the highest; for times: the lowest)
  var peer: String?        // e.g. "C reference (gcc -O3 -march=native -fno-math-errno, FTZ)"
  var peerMedian: Double?
  var note: String?
  /// FedHost ÷ peer (for rates) — computed by the writer so every row agrees on direction.
  var higherIsBetter: Bool
}
