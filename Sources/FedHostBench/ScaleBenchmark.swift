import FedHostCore
import Foundation

/// One Phase 2 round (local training + FedAvg) with 10 … 10,000 simulated clients of the
/// paper's model: wall time and the process's peak memory, to show how both grow.
///
/// Each client holds 50 synthetic rows of 9 features (enough for the stratified splits); what
/// grows with the client count is one delta (186.5 KB) per client plus its data, since trainer
/// scratch is per worker.
enum ScaleBenchmark {
  /// Each size runs in a child process (`FedHostBench scale-one N`), so its peak RSS is its own.
  static func run(quick: Bool) throws -> [BenchmarkRow] {
    let sizes = quick ? [10, 100, 1_000] : [10, 100, 1_000, 10_000]
    let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    return try sizes.map { clients in
      let process = Process()
      process.executableURL = URL(fileURLWithPath: executable)
      process.arguments = ["scale-one", String(clients)]
      let output = Pipe()
      process.standardOutput = output
      try process.run()
      let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      process.waitUntilExit()
      let fields = text.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
      guard process.terminationStatus == 0, fields.count == 2 else {
        throw BenchmarkFailure("scale-one \(clients) failed: \(text)")
      }
      let (seconds, peak) = (fields[0], fields[1])
      FileHandle.standardError.write(Data("  \(clients) clients: \(String(format: "%.2f", seconds)) s, peak RSS \(Int(peak / 1_048_576)) MiB\n".utf8))
      return BenchmarkRow(
        section: "scale", name: "one FL round, \(clients) clients (train + FedAvg)", unit: "s",
        fedhostMedian: seconds, fedhostMin: seconds, peer: nil, peerMedian: nil,
        note: String(format: "peak RSS of the process %.0f MiB (%.1f KiB per client)", peak / 1_048_576,
                     peak / 1024 / Double(clients)),
        higherIsBetter: false)
    }
  }

  /// Child side: one round with `clients` clients; prints "seconds peak-bytes".
  static func runOne(clients: Int) throws {
    var settings = PipelineSettings(preset: .tuned)
    settings.parallelRounds = 1
    let federation = try Federation(makeFederation(clients: clients).prepare(seed: 1), settings: settings)
    let strategy = try StrategyLoader.load(aggregator: "libFedAvg.so", initializer: .none, clientHook: nil,
                                           searchPath: .standard(), settings: settings)
    let global = federation.initialModel()
    let start = ContinuousClock.now
    _ = try federation.runRound(0, global: global, strategy: strategy)
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    // VmHWM, not getrusage's ru_maxrss: the latter is inherited from the parent at fork.
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let highWater = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
      .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
    print(seconds, highWater * 1024)
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

}

struct BenchmarkFailure: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
