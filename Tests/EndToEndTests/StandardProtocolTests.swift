import Foundation
import Testing

/// The interpreter with numpy and scikit-learn for the independent references
/// (Tests/Fixtures/reference, made by its setup-venv): FEDHOST_REFERENCE_PYTHON. With
/// FEDHOST_REQUIRE_REFERENCE=1 (CI, scripts/test) a missing one fails instead of skipping.
enum ReferencePython {
  static let path = ProcessInfo.processInfo.environment["FEDHOST_REFERENCE_PYTHON"]
  static let required = ProcessInfo.processInfo.environment["FEDHOST_REQUIRE_REFERENCE"] == "1"
  static var shouldRun: Bool { required || path.map { FileManager.default.isExecutableFile(atPath: $0) } ?? false }
  static let scripts = packageRoot + "/Tests/Fixtures/reference"
}

@Suite("The standard FL protocol end to end")
struct StandardProtocolTests {
  static let dataDirectory = packageRoot + "/../shared/data"

  private func writeSpec(_ json: String, named name: String, in directory: String) throws -> String {
    let path = directory + "/" + name
    try json.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  private func json(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
  }

  /// FedHost's FedAvg through `--protocol fl`, on splits dumped by `host splits` and read back
  /// with `splits_from`, against the independent numpy FedAvg on the same dump (same rows, same
  /// initial weights; each its own batch order). AI4I IID over 3 clients: global accuracy within
  /// 1 point on every device. The 6-class task over 4 clients, whose arg-max accuracy moves by
  /// 2 points with the batch order alone: the final mean test loss within 10 %, as on AI4I.
  @Test(.enabled(if: ReferencePython.shouldRun, "FEDHOST_REFERENCE_PYTHON not set; run Tests/Fixtures/reference/setup-venv"),
        arguments: [
          (#"{"partition": {"dataset": "ai4i2020.csv", "label": "Machine failure", "drop": ["UDI", "Product ID", "TWF", "HDF", "PWF", "OSF", "RNF"], "categorical": ["Type"], "method": "iid", "clients": 3}}"#, true),
          (#"{"partition": {"dataset": "electrical_class.csv", "label_bits": ["G", "C", "B", "A"], "method": "iid", "clients": 4}}"#, false),
        ])
  func fedAvgMatchesAnIndependentNumpyFedAvgOnIdenticalSplits(spec: String, checkAccuracy: Bool) throws {
    let python = try #require(ReferencePython.path, "FEDHOST_REFERENCE_PYTHON is required")
    let directory = try temporaryDirectory("fl-reference")
    let dump = directory + "/dump"
    let plain = try writeSpec(spec, named: "federation.json", in: directory)
    let split = try runHost(["splits", "--federation", plain, "--data-dir", Self.dataDirectory, "--seed", "3", "--out", dump])
    #expect(split.status == 0, "\(split.stderr)")

    var readBack = try json(spec)
    readBack["splits_from"] = dump
    let specPath = try writeSpec(String(decoding: try JSONSerialization.data(withJSONObject: readBack), as: UTF8.self),
                                 named: "from-dump.json", in: directory)
    let run = try runHost(["--protocol", "fl", "--aggregator", "libFedAvg.so", "--baselines", "none", "--no-local-only",
                           "--federation", specPath, "--data-dir", Self.dataDirectory, "--seed", "3", "--rounds", "20",
                           "--personalization-epochs", "0", "--json", "--quiet"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try json(run.stdout)
    let methods = try #require(report["methods"] as? [[String: Any]])
    let global = try #require(methods.first { $0["stage"] as? String == "global" })
    let fedHostAccuracy = try #require(global["accuracy"] as? [[Double]]).map { $0[0] }
    let fedHostLoss = try #require((report["curves"] as? [[String: Any]])?.first?["loss"] as? [Double]).last!

    let config = directory + "/config.json"
    try #"{"algorithm": "fedavg", "rounds": 20, "local_epochs": 1, "batch_size": 16, "learning_rate": 0.001, "optimizer": "adam", "mu": 0, "clients_per_round": null, "seed": 3}"#
      .write(toFile: config, atomically: true, encoding: .utf8)
    let result = directory + "/numpy.json"
    let reference = try runProcess(python, [ReferencePython.scripts + "/numpy_fedavg.py", "--splits", dump, "--config", config,
                                            "--out", result])
    #expect(reference.status == 0, "\(reference.stderr)")
    let numpy = try json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: result)), as: UTF8.self))
    let devices = try #require(numpy["devices"] as? [[String: Any]])
    let numpyAccuracy = devices.compactMap { $0["accuracy"] as? Double }
    let numpyLoss = try #require((numpy["rounds"] as? [[String: Any]])?.last?["mean_test_loss"] as? Double)

    #expect(numpyAccuracy.count == fedHostAccuracy.count)
    if checkAccuracy {
      for (device, (ours, theirs)) in zip(fedHostAccuracy, numpyAccuracy).enumerated() {
        #expect(abs(ours - theirs) <= 0.01, "device \(device): FedHost \(ours), numpy \(theirs)")
      }
    }
    #expect(abs(fedHostLoss - numpyLoss) <= 0.1 * numpyLoss, "final mean test loss: FedHost \(fedHostLoss), numpy \(numpyLoss)")
  }

  /// Early stopping across rounds keeps round K's global model: a run stopped by the patience
  /// reports and fine-tunes exactly what a run of K rounds without it does.
  @Test func roundEarlyStoppingKeepsTheBestRound() throws {
    let common = ["--protocol", "fl", "--aggregator", "libFedAvg.so", "--baselines", "none", "--no-local-only",
                  "--learning-rate", "0.01", "--personalization-epochs", "1", "--seed", "3"]
    let stopped = try temporaryDirectory("fl-round-patience")
    let run = try runHost(common + ["--rounds", "10", "--round-patience", "2", "--out", stopped])
    #expect(run.status == 0, "\(run.stderr)")
    let line = try #require(run.stderr.split(separator: "\n").first { $0.contains("[round early stopping] FedAvg") })
    let numbers = try #require(line.firstMatch(of: /keeping round (\d+) of (\d+)/))
    let (kept, ran) = (Int(numbers.1)!, Int(numbers.2)!)
    try #require(kept < ran && ran < 10, "the run should stop early on a round before its last: \(line)")
    #expect(ran == kept + 2)
    #expect(run.stderr.split(separator: "\n").filter { $0.contains("[round] FedAvg round") }.count == ran)

    let plain = try temporaryDirectory("fl-round-patience-plain")
    #expect(try runHost(common + ["--rounds", String(kept), "--out", plain]).status == 0)
    for file in ["models/global.fhmodel", "models/personalized-machine-failure.fhmodel",
                 "models/personalized-line-fault.fhmodel"] {
      let (ours, theirs) = (FileManager.default.contents(atPath: stopped + "/" + file),
                            FileManager.default.contents(atPath: plain + "/" + file))
      #expect(ours != nil && ours == theirs, "\(file) differs from the \(kept)-round run's")
    }
    let scores = { (directory: String) throws -> String in
      let report = try self.json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: directory + "/report.json")), as: UTF8.self))
      return String(describing: try #require(report["methods"] as? [[String: Any]]).map { $0["accuracy"] ?? "" })
    }
    #expect(try scores(stopped) == scores(plain))
  }

  /// Every bundled strategy under the standard protocol on a partition of 100 clients with 10
  /// sampled per round: every row complete, and the rounds trained only the sampled clients.
  @Test func manyClientsWithSampling() throws {
    let directory = try temporaryDirectory("fl-many")
    let spec = try writeSpec(#"{"partition": {"dataset": "electrical_detect.csv", "label": "Output (S)", "features": ["Ia", "Ib", "Ic", "Va", "Vb", "Vc"], "method": "iid", "clients": 100}}"#,
                             named: "hundred.json", in: directory)
    let run = try runHost(["compare", "--protocol", "fl", "--aggregators",
                           "libFedAvg.so,libFedProx.so,libSimilarityAware.so,libMEFLVariance.so", "--seeds", "1",
                           "--federation", spec, "--data-dir", Self.dataDirectory, "--rounds", "3",
                           "--clients-per-round", "10", "--personalization-epochs", "1", "--local-only-epochs", "2",
                           "--centralized-epochs", "2", "--json"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try json(run.stdout)
    let methods = try #require(report["methods"] as? [[String: Any]])
    #expect(methods.map { $0["method"] as? String ?? "" } == [
      "Local Only", "Centralized", "FedAvg", "FedAvg", "FedProx", "FedProx", "SimilarityAware (Fed-Meta-Align)",
      "SimilarityAware (Fed-Meta-Align)", "MEFL-EOA + Meta-GDP", "MEFL-EOA + Meta-GDP",
    ])
    for method in methods {
      #expect(method["failure"] == nil)
      #expect((method["accuracy"] as? [[Double]])?.count == 100)
    }
    #expect((report["notes"] as? [String])?.first == "protocol fl, preset tuned")
    // Each round's progress line lists the weights of the 10 clients that trained.
    let roundLines = run.stderr.split(separator: "\n").filter { $0.contains("[round] FedAvg round") }
    #expect(roundLines.count == 3)
    for line in roundLines {
      let weights = line.split(separator: "weights [").last?.split(separator: "]").first?.split(separator: ",")
      #expect(weights?.count == 10, "\(line)")
    }
  }

  @Test func badSplitDumpsAreOneLine() throws {
    let directory = try temporaryDirectory("fl-bad-dump")
    let spec = try writeSpec(#"{"devices": [{"name": "m", "dataset": "machine_failure.csv", "label": "fail"}], "splits_from": "\#(directory)/none"}"#,
                             named: "spec.json", in: directory)
    let run = try runHost(["--aggregator", "libFedAvg.so", "--federation", spec, "--data-dir", Self.dataDirectory])
    #expect(run.status == 2)
    #expect(run.stderr == "host: spec.json: splits_from: cannot read \(directory)/none/splits.json\n")

    let dump = directory + "/dump"
    let plain = try writeSpec(#"{"devices": [{"name": "m", "dataset": "machine_failure.csv", "label": "fail"}]}"#,
                              named: "plain.json", in: directory)
    #expect(try runHost(["splits", "--federation", plain, "--data-dir", Self.dataDirectory, "--out", dump]).status == 0)
    let again = try runHost(["splits", "--federation", plain, "--data-dir", Self.dataDirectory, "--out", dump])
    #expect(again.status == 2 && again.stderr.contains("already holds a split dump"))
    let index = dump + "/splits.json"
    let text = try String(contentsOfFile: index, encoding: .utf8)
    try text.replacingOccurrences(of: "\"name\":\"m\"", with: "\"name\":\"x\"").write(toFile: index, atomically: true, encoding: .utf8)
    let foreign = try writeSpec(#"{"devices": [{"name": "m", "dataset": "machine_failure.csv", "label": "fail"}], "splits_from": "\#(dump)"}"#,
                                named: "foreign.json", in: directory)
    let mismatch = try runHost(["--aggregator", "libFedAvg.so", "--federation", foreign, "--data-dir", Self.dataDirectory])
    #expect(mismatch.status == 2)
    #expect(mismatch.stderr == "host: \(index): devices[0].name: no device \"x\" in foreign.json\n")
  }
}
