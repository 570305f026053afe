import Foundation

/// A peer written in Python, run as a child process with one thread, once per `measure()`.
///
/// Each run gets a scratch working directory and writes its record to out/*.json there: the
/// convention of the reference scripts in ../shared/bench/reference, which run unchanged (that
/// folder is read-only, hence the scratch directory). A peer that cannot run is not an error of
/// the benchmark: its row says "skipped: <reason>".
struct PythonPeer {
  let label: String  // what the table's peer column says
  private let python: String
  private let script: String
  private let arguments: [String]
  private let environment: [String: String]
  private(set) var records: [[String: Any]] = []
  private(set) var skipReason: String?

  /// BLAS and OpenMP pinned to one thread (run_all.sh's "1T"); torch_bench.py reads N_THREADS.
  private static let oneThread = ["N_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"]

  /// The interpreter is `$pythonVariable` if set, else `venv`/bin/python (bench/peers-setup makes it).
  /// Relative paths are taken from the repo root, where bench/run starts the benchmark. `environment`
  /// adds to this process's and `oneThread`.
  init(label: String, script: String, arguments: [String] = [], environment: [String: String] = [:],
       pythonVariable: String, venv: String) {
    let root = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    func absolute(_ path: String) -> String { URL(fileURLWithPath: path, relativeTo: root).standardizedFileURL.path }
    self.label = label
    self.python = absolute(ProcessInfo.processInfo.environment[pythonVariable] ?? venv + "/bin/python")
    self.script = absolute(script)
    self.arguments = arguments
    self.environment = ProcessInfo.processInfo.environment.merging(Self.oneThread) { $1 }.merging(environment) { $1 }
    if !FileManager.default.isExecutableFile(atPath: python) {
      skipReason = "no Python at \(python) (bench/peers-setup creates it; \(pythonVariable) overrides)"
    } else if !FileManager.default.fileExists(atPath: self.script) {
      skipReason = "\(self.script) not found"
    }
  }

  /// One more run; after a failure the peer stays skipped with the child's last line as the reason.
  mutating func measure() {
    guard skipReason == nil else { return }
    do {
      records.append(try runOnce())
    } catch {
      skipReason = "\(error)"
    }
  }

  /// The number at `path` (nested JSON keys) in each run's record.
  func values(_ path: [String]) -> [Double] {
    records.compactMap { record in
      var value: Any? = record
      for key in path { value = (value as? [String: Any])?[key] }
      return value as? Double
    }
  }

  /// FedHost's figure beside this peer's median over its runs of the per-run figure at `medianPath`;
  /// the note gives the peer's best (at `bestPath`) and `detail`.
  func row(section: String, name: String, unit: String, fedhostMedian: Double, fedhostBest: Double,
           medianPath: [String], bestPath: [String], higherIsBetter: Bool, detail: String) -> BenchmarkRow {
    let medians = values(medianPath)
    var peerMedian: Double?
    let note: String
    if let reason = skipReason ?? (medians.isEmpty ? "no \(medianPath.joined(separator: ".")) in its record" : nil) {
      note = "skipped: \(reason)"
    } else {
      peerMedian = Statistics(medians, higherIsBetter: higherIsBetter).median
      let best = Statistics(values(bestPath), higherIsBetter: higherIsBetter).best
      note = "peer best \(BenchmarkReport.format(best)); \(detail)"
    }
    return BenchmarkRow(section: section, name: name, unit: unit, fedhostMedian: fedhostMedian,
                        fedhostMin: fedhostBest, peer: label, peerMedian: peerMedian, note: note,
                        higherIsBetter: higherIsBetter)
  }

  private func runOnce() throws -> [String: Any] {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("fedhost-peer-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let scriptName = (script as NSString).lastPathComponent
    let result = try ChildProcess.run(python, [script] + arguments, environment: environment, directory: scratch)
    guard result.status == 0 else { throw BenchmarkFailure("\(scriptName) exited with \(result.status): \(result.lastLine)") }
    let written = (try? FileManager.default.contentsOfDirectory(at: scratch.appendingPathComponent("out"),
                                                                includingPropertiesForKeys: nil)) ?? []
    guard let file = written.first(where: { $0.pathExtension == "json" }),
          let record = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
    else { throw BenchmarkFailure("\(scriptName) wrote no out/*.json record") }
    return record
  }
}
