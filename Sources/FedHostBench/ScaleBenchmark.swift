import FedHostCore
import Foundation

/// One Phase 2 round (local training + FedAvg) with 10 … 10,000 simulated clients of the
/// paper's model: wall time and the process's peak memory, to show how both grow.
///
/// Each client holds 50 synthetic rows of 9 features (enough for the stratified splits); what
/// grows with the client count is one delta (186.5 KB) per client plus its data, since trainer
/// scratch is per worker.
enum ScaleBenchmark {
  /// Each size runs in a child process (`FedHostBench scale-one N`), so its peak RSS is its own;
  /// several times (once with `quick`) for the median and best time. The note says how time and
  /// memory grew from the previous, 10× smaller size.
  static func run(quick: Bool) throws -> [BenchmarkRow] {
    let sizes = quick ? [10, 100, 1_000] : [10, 100, 1_000, 10_000]
    let repetitions = quick ? 1 : 3
    var previous: (clients: Int, seconds: Double, peak: Double)?
    return try sizes.map { clients in
      let runs = try (0..<repetitions).map { _ in try measure(clients: clients) }
      let times = Statistics(runs.map(\.seconds), higherIsBetter: false)
      let seconds = times.median
      let peak = runs.map(\.peak).max()!
      FileHandle.standardError.write(Data("  \(clients) clients: \(String(format: "%.2f", seconds)) s, peak RSS \(Int(peak / 1_048_576)) MiB\n".utf8))
      var note = String(format: "peak RSS of the process %.0f MiB (%.1f KiB per client); %.2f ms per client",
                        peak / 1_048_576, peak / 1024 / Double(clients), seconds * 1000 / Double(clients))
      if let previous {
        note += String(format: "; ×%.1f time and ×%.1f memory for ×%d clients", seconds / previous.seconds,
                       peak / previous.peak, clients / previous.clients)
      }
      previous = (clients, seconds, peak)
      return BenchmarkRow(
        section: "scale", name: "one FL round, \(clients) clients (train + FedAvg)", unit: "s",
        fedhostMedian: seconds, fedhostMin: times.best, peer: nil, peerMedian: nil,
        note: note, higherIsBetter: false)
    }
  }

  /// Standard-FL rounds that sample 1,000 clients of 1,000 … 100,000 (each size in a child
  /// process): the median round (training the sampled clients, FedAvg, evaluating the global
  /// model on them) and the peak RSS, which must follow the sampled clients, not the federation.
  static func runSampled(quick: Bool) throws -> [BenchmarkRow] {
    let sizes = quick ? [1_000, 10_000] : [1_000, 10_000, 100_000]
    var previous: (clients: Int, seconds: Double, peak: Double)?
    return try sizes.map { clients in
      let (seconds, best, peak) = try measureSampled(clients: clients)
      FileHandle.standardError.write(Data("  \(clients) clients, 1,000 per round: \(String(format: "%.2f", seconds)) s per round, peak RSS \(Int(peak / 1_048_576)) MiB\n".utf8))
      var note = String(format: "median of %d rounds; peak RSS %.0f MiB", sampledRounds, peak / 1_048_576)
      if let previous {
        note += String(format: "; ×%.2f time and ×%.2f memory for ×%d clients", seconds / previous.seconds,
                       peak / previous.peak, clients / previous.clients)
      }
      previous = (clients, seconds, peak)
      return BenchmarkRow(
        section: "scale", name: "FL round sampling 1,000 of \(clients) clients (train + FedAvg + evaluation)", unit: "s",
        fedhostMedian: seconds, fedhostMin: best, peer: nil, peerMedian: nil, note: note, higherIsBetter: false)
    }
  }

  static let sampledRounds = 3

  private static func measureSampled(clients: Int) throws -> (median: Double, best: Double, peak: Double) {
    let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let result = try ChildProcess.run(executable, ["scale-sampled", String(clients)])
    let fields = result.output.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    guard result.status == 0, fields.count == 3 else {
      throw BenchmarkFailure("scale-sampled \(clients) failed: \(result.output)")
    }
    return (fields[0], fields[1], fields[2])
  }

  /// Child side of `runSampled`: prints "median-round-seconds best-round-seconds peak-bytes".
  static func runSampledOne(clients: Int) throws {
    var settings = RunSettings(preset: .tuned, protocolKind: .fl)
    settings.rounds = sampledRounds
    settings.clientsPerRound = .count(1_000)
    settings.personalizationEpochs = 0
    let run = try StandardFLRun(makeFederation(clients: clients), settings: settings, seed: 1)
    let outcome = try runInProcess(run, aggregator: "libFedAvg.so", settings: settings, seed: 1)
    let rounds = Statistics(outcome.rounds.map(\.seconds), higherIsBetter: false)
    print(rounds.median, rounds.best, peakResidentBytes())
  }

  /// VmHWM, not getrusage's ru_maxrss: the latter is inherited from the parent at fork.
  private static func peakResidentBytes() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let highWater = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
      .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
    return highWater * 1024
  }

  private static func measure(clients: Int) throws -> (seconds: Double, peak: Double) {
    let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let result = try ChildProcess.run(executable, ["scale-one", String(clients)])
    let fields = result.output.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    guard result.status == 0, fields.count == 2 else {
      throw BenchmarkFailure("scale-one \(clients) failed: \(result.output)")
    }
    return (fields[0], fields[1])
  }

  /// Child side: one round with `clients` clients; prints "seconds peak-bytes".
  static func runOne(clients: Int) throws {
    let settings = RunSettings(preset: .tuned, protocolKind: .fl)
    let engine = try StandardFLRun(makeFederation(clients: clients), settings: settings, seed: 1).engine
    let strategy = try StrategyLoader.load(aggregator: "libFedAvg.so", initializer: .none, clientHook: nil,
                                           searchPath: .standard(), threads: settings.threads,
                                           config: { settings.pluginConfig(for: $0, seed: 1, extra: [:]) })
    let global = engine.initialModel()
    let roundSeconds = try seconds {
      _ = try engine.runRound(0, global: global, strategy: strategy, participants: Array(0..<clients))
    }
    print(roundSeconds, peakResidentBytes())
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
