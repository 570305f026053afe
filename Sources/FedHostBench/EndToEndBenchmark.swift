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
    let comparison = ["compare", "--aggregators", "libFedAvg.so,libFedProx.so,libMEFLVariance.so,libSimilarityAware.so",
                      "--seeds", String(seeds), "--federation", root + "/Examples/paper-federation.json",
                      "--data-dir", dataDirectory, "--quiet"]
    func time(_ arguments: [String]) throws -> Double {
      var result: ChildProcess.Result?
      let elapsed = try seconds { result = try ChildProcess.run(binDirectory + "/host", arguments) }
      guard let result, result.status == 0 else {
        throw BenchmarkFailure("host \(arguments.joined(separator: " ")) exited with \(result?.status ?? -1): \(result?.lastLine ?? "")")
      }
      return elapsed
    }
    // Plugins isolated (the default) against in process, interleaved so both see the same machine.
    return try [("default preset", [String]()), ("--preset paper", ["--preset", "paper"])].map { label, preset in
      var isolated: [Double] = [], inProcess: [Double] = []
      for _ in 0..<(quick ? 1 : 3) {
        isolated.append(try time(comparison + preset))
        inProcess.append(try time(comparison + preset + ["--isolation", "none"]))
      }
      let stats = Statistics(isolated, higherIsBetter: false)
      let overhead = (stats.median / median(inProcess) - 1) * 100
      return BenchmarkRow(
        section: "end-to-end", name: "paper comparison, \(label): Local Only + 4 strategies × \(seeds) seeds, all phases",
        unit: "s", fedhostMedian: stats.median, fedhostMin: stats.best, peer: "same, --isolation none",
        peerMedian: median(inProcess),
        note: "host compare on Examples/paper-federation.json, all cores, plugins isolated (the default): "
          + String(format: "%+.1f %%", overhead) + " against in process",
        higherIsBetter: false)
    }
  }
}
