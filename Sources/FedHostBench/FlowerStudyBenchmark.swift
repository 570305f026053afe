import FedHostCore
import Foundation

/// A whole study — FedAvg and FedProx, the standard FL protocol, 10 rounds, no baselines and no
/// personalization — run by `host compare` and by Flower's simulation engine with PyTorch
/// ClientApps training the same MLP on host's splits with host's budget (bench/flower_study.py),
/// interleaved, on the paper federation and on a 100-client partition. Per federation two rows:
/// the whole study's wall time (each side's start-up included: Flower's is part of what a user
/// waits for), and the median round (rounds 2.. of both strategies), which leaves start-up out.
enum FlowerStudyBenchmark {
  static let federations = ["Examples/paper-federation.json", "Examples/suite/many-clients-100-iid.json"]
  static let rounds = 10
  static let strategies = ["libFedAvg.so", "libFedProx.so"]

  static func run(quick: Bool) throws -> [BenchmarkRow] {
    guard let binDirectory = currentExecutableDirectory() else { return [] }
    let root = FileManager.default.currentDirectoryPath
    let dataDirectory = root + "/../shared/data"
    guard FileManager.default.fileExists(atPath: dataDirectory + "/electrical_detect.csv") else {
      FileHandle.standardError.write(Data("  skipped: no paper data in \(dataDirectory)\n".utf8))
      return []
    }
    var settings = RunSettings(preset: .tuned, protocolKind: .fl)
    settings.rounds = rounds
    settings.personalizationEpochs = 0
    return try federations.flatMap { federation -> [BenchmarkRow] in
      let data = try FederationSpec.load(contentsOf: URL(fileURLWithPath: root + "/" + federation))
        .loadData(dataDirectory: URL(fileURLWithPath: dataDirectory))
      let study = ["compare", "--aggregators", strategies.joined(separator: ","), "--protocol", "fl",
                   "--rounds", String(rounds), "--personalization-epochs", "0", "--seeds", "1", "--no-local-only",
                   "--federation", root + "/" + federation, "--data-dir", dataDirectory, "--quiet"]
      var peer = PythonPeer(label: "Flower 1.42 run_simulation, PyTorch ClientApps", script: "bench/flower_study.py",
                            arguments: ["--federation", federation, "--rounds", String(rounds)],
                            pythonVariable: "FEDHOST_FLOWER_PYTHON", venv: ".venv-flower")
      var wholes: [Double] = [], roundMedians: [Double] = []
      for _ in 0..<(quick ? 1 : 3) {
        wholes.append(try seconds { try runHost(binDirectory + "/host", study) })
        roundMedians.append(try medianRound(data, settings: settings))
        peer.measure()
      }
      let label = "\(federation.split(separator: "/").last!) (\(data.devices.count) clients)"
      let whole = Statistics(wholes, higherIsBetter: false)
      let round = Statistics(roundMedians, higherIsBetter: false)
      FileHandle.standardError.write(Data(String(format: "  %@: host %.2f s whole, %.4f s per round; Flower %@\n",
                                                 label, whole.median, round.median,
                                                 peer.values(["whole_seconds"]).map { String(format: "%.1f s", $0) }
                                                   .joined(separator: ", ")).utf8))
      let budget = "FedAvg + FedProx (mu 0.01), \(rounds) rounds, Adam 1e-3, batch 16, 1 local epoch, both cores"
      return [
        peer.row(section: "flower", name: "whole study, \(label): FedAvg + FedProx, \(rounds) FL rounds", unit: "s",
                 fedhostMedian: whole.median, fedhostBest: whole.best, medianPath: ["whole_seconds"],
                 bestPath: ["whole_seconds"], higherIsBetter: false,
                 detail: "host compare (plugins isolated) vs one run_simulation process per strategy (Ray, 2 actors "
                   + "of 1 CPU; Flower, Ray and torch start-up included); \(budget)"),
        peer.row(section: "flower", name: "one FL round of that study, \(label)", unit: "s",
                 fedhostMedian: round.median, fedhostBest: round.best, medianPath: ["median_round_seconds"],
                 bestPath: ["median_round_seconds"], higherIsBetter: false,
                 detail: "median over rounds 2..\(rounds) of both strategies: train every client, aggregate, "
                   + "evaluate on every test part; host's rounds in process"),
      ]
    }
  }

  private static func runHost(_ host: String, _ arguments: [String]) throws {
    let result = try ChildProcess.run(host, arguments)
    guard result.status == 0 else {
      throw BenchmarkFailure("host \(arguments.joined(separator: " ")) exited with \(result.status): \(result.lastLine)")
    }
  }

  /// The median round over rounds 2.. of both strategies, run in this process on seed 0's splits
  /// (what `host compare --seeds 1` runs).
  private static func medianRound(_ data: FederationData, settings: RunSettings) throws -> Double {
    let times = try strategies.flatMap { aggregator in
      try runInProcess(settings.prepare(data, seed: 0), aggregator: aggregator, settings: settings, seed: 0)
        .rounds.dropFirst().map(\.seconds)
    }
    return median(times)
  }
}
