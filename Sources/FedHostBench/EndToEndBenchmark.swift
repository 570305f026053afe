import FedHostCore
import Foundation

/// The paper comparison end to end: `host compare` with Local Only and the four strategy
/// plugins over 5 seeds, all phases, on the paper's real files, timed as a whole (wall clock).
enum EndToEndBenchmark {
  static func run(quick: Bool) throws -> [BenchmarkRow] {
    guard let binDirectory = currentExecutableDirectory() else { return [] }
    let root = FileManager.default.currentDirectoryPath
    let dataDirectory = root + "/../shared/data"
    guard FileManager.default.fileExists(atPath: dataDirectory + "/machine_failure.csv") else {
      FileHandle.standardError.write(Data("  skipped: no paper data in \(dataDirectory)\n".utf8))
      return []
    }
    let seeds = quick ? 2 : 5
    let arguments = ["compare", "--aggregators", "libFedAvg.so,libFedProx.so,libMEFLVariance.so,libSimilarityAware.so",
                     "--seeds", String(seeds), "--federation", root + "/Examples/paper-federation.json",
                     "--data-dir", dataDirectory, "--quiet"]
    let times = try (0..<(quick ? 1 : 3)).map { _ in
      var result: ChildProcess.Result?
      let elapsed = try seconds { result = try ChildProcess.run(binDirectory + "/host", arguments) }
      guard let result, result.status == 0 else {
        throw BenchmarkFailure("host compare exited with \(result?.status ?? -1): \(result?.lastLine ?? "")")
      }
      return elapsed
    }
    let stats = Statistics(times, higherIsBetter: false)
    return [BenchmarkRow(
      section: "end-to-end", name: "paper comparison: Local Only + 4 strategies × \(seeds) seeds, all phases", unit: "s",
      fedhostMedian: stats.median, fedhostMin: stats.best, peer: nil, peerMedian: nil,
      note: "host compare on Examples/paper-federation.json, default preset, all cores", higherIsBetter: false)]
  }
}
