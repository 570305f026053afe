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
    var times: [Double] = []
    for _ in 0..<(quick ? 1 : 3) {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: binDirectory + "/host")
      process.arguments = ["compare", "--aggregators", "libFedAvg.so,libFedProx.so,libMEFLVariance.so,libSimilarityAware.so",
                           "--seeds", String(seeds), "--federation", root + "/Examples/paper-federation.json",
                           "--data-dir", dataDirectory, "--quiet"]
      process.standardOutput = FileHandle.nullDevice
      let start = ContinuousClock.now
      try process.run()
      process.waitUntilExit()
      let elapsed = ContinuousClock.now - start
      guard process.terminationStatus == 0 else { throw BenchmarkFailure("host compare exited with \(process.terminationStatus)") }
      times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
    let sorted = times.sorted()
    return [BenchmarkRow(
      section: "end-to-end", name: "paper comparison: Local Only + 4 strategies × \(seeds) seeds, all phases", unit: "s",
      fedhostMedian: sorted[sorted.count / 2], fedhostMin: sorted[0], peer: nil, peerMedian: nil,
      note: "host compare on Examples/paper-federation.json, default preset, all cores", higherIsBetter: false)]
  }
}
