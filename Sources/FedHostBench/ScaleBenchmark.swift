import FedHostCore
import Foundation

/// One Phase 2 round (local training + FedAvg) with 10 … 10,000 simulated clients of the
/// paper's model: wall time and the process's peak memory, to show how both grow.
///
/// Each client holds 50 synthetic rows of 9 features (enough for the stratified splits); what
/// grows with the client count is one delta (186.5 KB) per client plus its data, since trainer
/// scratch is per worker. Sizes run in ascending order, so the peak RSS after each size is the
/// peak of that size.
enum ScaleBenchmark {
  static func run(quick: Bool) throws -> [BenchmarkRow] {
    let sizes = quick ? [10, 100, 1_000] : [10, 100, 1_000, 10_000]
    guard let fedAvg = currentExecutableDirectory().map({ $0 + "/libFedAvg.so" }) else { return [] }
    var rows: [BenchmarkRow] = []
    for clients in sizes {
      var settings = PipelineSettings(preset: .tuned)
      settings.parallelRounds = 1
      let federation = try Federation(makeFederation(clients: clients).prepare(seed: 1), settings: settings)
      let strategy = try StrategyLoader.load(aggregator: fedAvg, initializer: .none, clientHook: nil,
                                             searchPath: .standard(), settings: settings)
      let global = federation.initialModel()
      let start = ContinuousClock.now
      _ = try federation.runRound(0, global: global, strategy: strategy)
      let elapsed = ContinuousClock.now - start
      let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
      let peak = peakResidentBytes()
      FileHandle.standardError.write(Data("  \(clients) clients: \(String(format: "%.2f", seconds)) s, peak RSS \(peak / 1_048_576) MiB\n".utf8))
      rows.append(BenchmarkRow(
        section: "scale", name: "one FL round, \(clients) clients (train + FedAvg)", unit: "s",
        fedhostMedian: seconds, fedhostMin: seconds, peer: nil, peerMedian: nil,
        note: String(format: "peak RSS %.0f MiB (%.1f KiB per client)", Double(peak) / 1_048_576,
                     Double(peak) / 1024 / Double(clients)),
        higherIsBetter: false))
    }
    return rows
  }

  private static func makeFederation(clients: Int) -> FederationData {
    var random = SeededGenerator(seed: 7)
    let devices = (0..<clients).map { index -> FederatedDevice in
      let rows = 50
      var features = [Float]()
      var labels = [Int32]()
      for row in 0..<rows {
        let label = Int32(row % 2)
        labels.append(label)
        for _ in 0..<9 { features.append(Float(random.nextUnit() * 2 - 1) + Float(label)) }
      }
      let dataset = LabelledDataset(name: "client-\(index)", samples: Samples(features: features, labels: labels, width: 9),
                                    featureNames: (1...9).map { "x\($0)" }, classNames: ["0", "1"], task: .binary,
                                    paddingWidth: 0)
      return FederatedDevice(name: "client-\(index)", dataset: dataset)
    }
    return FederationData(devices: devices)
  }

  private static func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
  }
}
