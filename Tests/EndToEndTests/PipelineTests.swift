import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// The main job and `host compare` through the real binary, on the embedded federation.
@Suite("The Fed-Meta-Align pipeline end to end")
struct PipelineTests {
  let directory: String
  init() throws { directory = try temporaryDirectory("pipeline") }

  /// A short run: 3 rounds, short personalization, so the suite stays fast.
  static let short = ["--rounds", "3", "--serial-rounds", "2", "--personalization-epochs", "3", "--local-only-epochs", "3"]

  private func json(_ path: String) throws -> [String: Any] {
    let data = try #require(FileManager.default.contents(atPath: path), "missing \(path)")
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
  }

  @Test func mainJobRunsEveryPhaseAndWritesItsOutputs() throws {
    let run = try runHost(["--aggregator", "libSimilarityAware.so", "--out", directory] + Self.short)
    #expect(run.status == 0, "\(run.stderr)")
    for phase in ["[phase 1]", "[phase 2] Fed-Meta-Align round 3/3", "[phase 3]", "Local Only"] {
      #expect(run.stderr.contains(phase), "progress lacks \(phase)")
    }
    // Table I shape: Local Only, then global and personalized rows per strategy.
    for row in ["| Local Only | personalized |", "| FedAvg | global |", "| FedProx | personalized |",
                "| MEFL-EOA + Meta-GDP | global |", "| Fed-Meta-Align | personalized |"] {
      #expect(run.stdout.contains(row), "report lacks \(row)")
    }
    for file in ["report.md", "report.csv", "report.json", "global-accuracy.svg", "global-loss.svg",
                 "personalized-accuracy.svg", "checkpoint.json", "models/global.fhmodel",
                 "models/personalized-line-fault.fhmodel", "models/personalized-machine-failure.fhmodel"] {
      #expect(FileManager.default.fileExists(atPath: directory + "/" + file), "missing \(file)")
    }
    let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".tmp-") }
    #expect(leftovers.isEmpty)
  }

  /// Also: `host export` of a saved model, given the run's preset, calibrates on the same Phase 3
  /// rows as the run's own `--export` and so writes the same bytes.
  @Test(arguments: ["tuned", "paper"])
  func theMainRunExportsEachPersonalizedModel(preset: String) throws {
    let run = try runHost(["--aggregator", "libFedAvg.so", "--baselines", "none", "--no-local-only", "--preset", preset,
                           "--export", directory, "--out", directory + "/run"] + Self.short)
    #expect(run.status == 0, "\(run.stderr)")
    for device in ["line-fault", "machine-failure"] {
      let bytes = try #require(FileManager.default.contents(atPath: "\(directory)/\(device).tflite"))
      #expect(bytes.count > 40_000 && bytes.count < 70_000)
      #expect(String(decoding: bytes[4..<8], as: UTF8.self) == "TFL3")  // the flatbuffer's file identifier
      let report = try String(contentsOfFile: "\(directory)/\(device)-export.md", encoding: .utf8)
      #expect(report.contains("| INT8 (TFLite, per-channel weights) |") && report.contains("accuracy (test"))
      #expect(run.stderr.contains("[export] \(device): \(directory)/\(device).tflite"))

      let exported = "\(directory)/\(device)-again.tflite"
      let export = try runHost(["export", "--model", "\(directory)/run/models/personalized-\(device).fhmodel",
                                "--device", device, "--preset", preset, "--out", exported])
      #expect(export.status == 0, "\(export.stderr)")
      #expect(FileManager.default.contents(atPath: exported) == bytes)
    }
  }

  @Test func compareWritesParseableTablesAndPlots() throws {
    let run = try runHost(["compare", "--aggregators", "libFedAvg.so,libSimilarityAware.so", "--seeds", "2",
                           "--out", directory, "--quiet"] + Self.short)
    #expect(run.status == 0, "\(run.stderr)")
    let report = try json(directory + "/report.json")
    #expect(report["seeds"] as? [Int] == [0, 1])
    let methods = try #require(report["methods"] as? [[String: Any]])
    #expect(methods.map { "\($0["method"]!)/\($0["stage"]!)" } == [
      "Local Only/personalized", "FedAvg/global", "FedAvg/personalized", "Fed-Meta-Align/global",
      "Fed-Meta-Align/personalized",
    ])
    for method in methods {
      let accuracy = try #require(method["accuracy"] as? [[Double]])
      #expect(accuracy.count == 2 && accuracy.allSatisfy { $0.count == 2 && $0.allSatisfy { (0...1).contains($0) } })
    }
    let csv = try String(contentsOfFile: directory + "/report.csv", encoding: .utf8).split(separator: "\n")
    #expect(csv.first == "method,stage,device,seed,accuracy,f1,status")
    #expect(csv.count == 1 + 5 * 2 * 2)  // methods × devices × seeds
    #expect(csv.dropFirst().allSatisfy { $0.split(separator: ",").count == 7 })
    let markdown = try String(contentsOfFile: directory + "/report.md", encoding: .utf8)
    #expect(markdown.contains("mean ± std over 2 seeds"))
    for plot in ["global-accuracy.svg", "personalized-accuracy.svg"] {
      let svg = try String(contentsOfFile: directory + "/" + plot, encoding: .utf8)
      #expect(svg.hasPrefix("<svg") && svg.contains("Fed-Meta-Align") && svg.hasSuffix("</svg>\n"))
      // Parses as XML.
      #expect(XMLParser(data: Data(svg.utf8)).parse())
    }
  }

  /// Seed 004's scenario on real data: four devices with width rates 1, ½, ¼, ¼ on a 6-class
  /// task; every plugin, including MEFL's client-side procedure, runs on the sub-models (the ¼
  /// ones keep 8 units in the last three hidden layers: the width floor).
  @Test func heterogeneousDevicesTrainSubModels() throws {
    let run = try runHost(["compare", "--aggregators", "libFedAvg.so,libFedProx.so,libMEFLVariance.so,libSimilarityAware.so",
                           "--seeds", "1", "--federation", packageRoot + "/Examples/electrical-class-hetero.json",
                           "--data-dir", packageRoot + "/../shared/data", "--quiet"] + Self.short)
    #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
    #expect(!run.stdout.contains("failed"))
    for row in ["| gateway | 1.0 | 45914 |", "| relay-a | 0.5 | 12094 |", "| relay-b | 0.25 | 3462 |", "| sensor | 0.25 | 3462 |"] {
      #expect(run.stdout.contains(row), "missing \(row)")
    }
  }

  /// A device with a memory budget and no stated width trains the widest sub-model whose int8
  /// deployment fits (here 16 KB of flash, 4 KB of RAM: far below the 46,637-parameter model).
  @Test func memoryBudgetsChooseTheWidth() throws {
    let spec = directory + "/budget.json"
    try """
      {"devices": [
        {"name": "big", "dataset": "machine_failure.csv", "label": "fail"},
        {"name": "tiny", "dataset": "machine_failure.csv", "label": "fail",
         "memory": {"flash_bytes": 16000, "ram_bytes": 4096}}]}
      """.write(toFile: spec, atomically: true, encoding: .utf8)
    let run = try runHost(["compare", "--aggregators", "libFedAvg.so", "--seeds", "1", "--federation", spec,
                           "--data-dir", packageRoot + "/../shared/data", "--quiet", "--no-local-only"] + Self.short)
    #expect(run.status == 0, "\(run.stderr)")
    let tiny = try #require(run.stdout.split(separator: "\n").first { $0.hasPrefix("| tiny |") })
    let cells = tiny.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }  // name, rate, parameters
    try #require(cells.count == 3)
    let rate = try #require(Double(cells[1]))
    let parameters = try #require(Int(cells[2]))
    #expect(rate > 0 && rate < 1)
    #expect(parameters < 16_000)  // int8 weights alone must fit the flash budget
  }

  @Test func aFailingPluginIsReportedAndTheOthersFinish() throws {
    let failing = try compilePlugin(testPluginSource, name: "FailRound1", in: directory, flags: ["-DFAIL_IN_ROUND=1"])
    let run = try runHost(["compare", "--aggregators", "\(failing),libFedAvg.so", "--seeds", "1", "--quiet"] + Self.short)
    #expect(run.status == 1)
    #expect(run.stdout.contains("failed**: org.fedhost.test.mean: aggregate failed (FHP_E_INTERNAL): deliberate failure"))
    #expect(run.stdout.contains("| FedAvg | personalized |"))
  }

  @Test func resultsDoNotDependOnTheThreadCount() throws {
    let arguments = ["--aggregator", "libMEFLVariance.so", "--baselines", "libFedProx.so", "--json", "--quiet"] + Self.short
    let one = try runHost(arguments + ["--threads", "1"])
    let two = try runHost(arguments + ["--threads", "2"])
    #expect(one.status == 0 && two.status == 0)
    #expect(one.stdout == two.stdout)
  }

  @Test func wrongKindForTheFlagIsOneLine() throws {
    let run = try runHost(["--aggregator", "libFedAvg.so", "--initializer", "libFedAvg.so"])
    #expect(run.status == 1)
    #expect(run.stderr == "host: error: \(productsDirectory)/libFedAvg.so (org.fedhost.fedavg) is not an initializer; it provides: aggregator\n")
  }

  @Test func badOptionsAreOneLineUsageErrors() throws {
    for (arguments, message) in [
      (["--aggregator"], "--aggregator needs a value LIB"),
      (["--aggregator", "libFedAvg.so", "--rounds", "x"], "--rounds expects an integer, got \"x\""),
      (["--aggregator", "libFedAvg.so", "--preset", "fast"], "--preset must be one of"),
      (["--aggregator", "libFedAvg.so", "--frobnicate"], "unknown option --frobnicate"),
      (["--aggregator", "libFedAvg.so", "--rounds", "0"], "--rounds must be within 1...100000, not 0"),
      (["--aggregator", "libFedAvg.so", "--rounds", "2", "--rounds", "3"], "--rounds is given twice (\"2\" and \"3\")"),
      (["--aggregator", "libFedAvg.so", "--seed", "-1"], "--seed expects a non-negative integer, got \"-1\""),
      (["--aggregator", "libFedAvg.so", "--local-steps", "-5"], "--local-steps must be 0 (off) or a positive integer, not -5"),
      (["--aggregator", "libFedAvg.so", "--early-stopping", "-1"], "--early-stopping must be 0 (off) or a positive integer, not -1"),
      (["--aggregator", "libFedAvg.so", "--baselines", ""], "--baselines expects comma-separated plugin names, got \"\""),
      (["--aggregator", "libFedAvg.so", "--protocol", "fl", "--serial-rounds", "2"],
       "--serial-rounds is only used by the fed-meta-align protocol, not fl"),
      (["--aggregator", "libFedAvg.so", "--clients-per-round", "3"],
       "--clients-per-round is only used by the fl protocol, not fed-meta-align"),
      (["--aggregator", "libFedAvg.so", "--protocol", "fl", "--clients-per-round", "-1"],
       "--clients-per-round must be a count ≥ 1, a share in (0, 1) or \"all\", not -1.0"),
      (["--aggregator", "libFedAvg.so", "--plugin-config", "mu=0.1", "--baselines", "none"],
       "--plugin-config mu: no plugin of this run declares it"),
      (["compare", "--aggregators", ""], "--aggregators expects comma-separated plugin names, got \"\""),
      (["compare", "--aggregators", "libFedAvg.so,"], "--aggregators expects comma-separated plugin names"),
      (["compare", "--aggregators", "libFedAvg.so", "--seeds", "1,1"], "--seeds lists seed 1 twice"),
      (["compare", "--aggregators", "libFedAvg.so", "--seeds", "0"], "--seeds must be a count within 1...1000, not 0"),
      (["splits"], "--out DIR is required"),
      (["splits", "--out", "x", "--seed", "1e3"], "--seed expects a non-negative integer, got \"1e3\""),
      (["--aggregator", "libFedAvg.so", "--isolation", "thread"], "--isolation must be process or none, not \"thread\""),
      (["--aggregator", "libFedAvg.so", "--plugin-timeout", "0"], "--plugin-timeout must be within (0, 86400] seconds, not 0.0"),
      (["--aggregator", "libFedAvg.so", "--isolation", "none", "--plugin-timeout", "5"], "--plugin-timeout needs --isolation process"),
      (["--aggregator", "libFedAvg.so", "--force"], "--force goes with --out DIR"),
      (["--aggregator", "libFedAvg.so", "--resume", "x", "--force"], "--force starts over; it cannot go with --resume"),
      (["--aggregator", "libFedAvg.so", "--protocol", "fl", "--export", "x", "--personalization-epochs", "0"],
       "--export writes the personalized models: set --personalization-epochs above 0"),
    ] {
      let run = try runHost(arguments)
      #expect(run.status == 2, "\(arguments)")
      #expect(run.stderr.split(separator: "\n").count == 1 && run.stderr.contains(message), "\(run.stderr)")
    }
  }

  @Test func aBadFederationSpecNamesTheKey() throws {
    let spec = directory + "/spec.json"
    try #"{"devices": [{"name": "a", "dataset": "x.csv", "lable": "y"}]}"#.write(toFile: spec, atomically: true, encoding: .utf8)
    let run = try runHost(["--aggregator", "libFedAvg.so", "--federation", spec])
    #expect(run.status == 2)
    #expect(run.stderr.contains("spec.json: devices[0].lable: unknown key"), "\(run.stderr)")
    #expect(run.stderr.split(separator: "\n").count == 1)
  }
}

/// Checkpoint and resume: a real `host` is killed with SIGKILL mid-run and resumed; the result
/// must be bit-identical to an uninterrupted run.
@Suite("Resume after SIGKILL")
struct ResumeTests {
  static let common = ["--aggregator", "libMEFLVariance.so", "--initializer", "libSimilarityAware.so",
                       "--baselines", "libSimilarityAware.so", "--quiet"]
  static let arguments = common + ["--rounds", "8"]
  /// The standard protocol with early stopping across rounds (FedProx's client hook makes its
  /// rounds slow enough to kill in; these settings stop it at round 5, keeping round 3): the
  /// checkpoint must carry the best model and the rounds since it.
  static let roundPatience = ["--protocol", "fl", "--aggregator", "libFedProx.so", "--baselines", "libFedAvg.so",
                              "--rounds", "8", "--round-patience", "2", "--batch-size", "1", "--learning-rate", "0.01",
                              "--personalization-epochs", "1", "--local-only-epochs", "1", "--centralized-epochs", "1",
                              "--quiet"]

  /// SCAFFOLD: the server's controls c and c_i live in the plugin's saved state and reach the
  /// clients as auxiliary vectors; the report carries the control norm it reports every round.
  static let scaffold = ["--protocol", "fl", "--aggregator", "libSCAFFOLD.so", "--baselines", "libFedAvg.so",
                         "--rounds", "8", "--batch-size", "1", "--learning-rate", "0.01",
                         "--personalization-epochs", "1", "--local-only-epochs", "1", "--centralized-epochs", "1",
                         "--quiet"]

  @Test(arguments: [arguments, roundPatience, scaffold])
  func aKilledRunResumesBitIdentically(arguments: [String]) throws {
    let reference = try temporaryDirectory("resume-reference")
    #expect(try runHost(arguments + ["--out", reference]).status == 0)

    let killed = try temporaryDirectory("resume-killed")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: hostExecutable)
    process.arguments = arguments + ["--out", killed]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Wait until the second strategy (the main one) has finished two rounds, then kill it.
    let deadline = Date().addingTimeInterval(60)
    var progressSeen = false
    while Date() < deadline && process.isRunning && !progressSeen {
      Thread.sleep(forTimeInterval: 0.005)
      if let data = FileManager.default.contents(atPath: killed + "/checkpoint.json"),
         let checkpoint = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
         let current = checkpoint["current"] as? [String: Any], current["strategyIndex"] as? Int == 1,
         let point = current["point"] as? [String: Any], (point["completedRounds"] as? Int ?? 0) >= 2 {
        progressSeen = true
      }
    }
    try #require(progressSeen, "the run finished or stalled before the kill point")
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    #expect(process.terminationReason == .uncaughtSignal)
    #expect(!FileManager.default.fileExists(atPath: killed + "/report.json"))

    let resumed = try runHost(arguments + ["--resume", killed])
    #expect(resumed.status == 0, "\(resumed.stderr)")
    for file in ["report.json", "report.md", "models/global.fhmodel", "models/personalized-machine-failure.fhmodel"] {
      #expect(FileManager.default.contents(atPath: reference + "/" + file) == FileManager.default.contents(atPath: killed + "/" + file),
              "\(file) differs after resume")
    }
  }

  @Test func resumingADifferentRunIsRefused() throws {
    let directory = try temporaryDirectory("resume-other")
    #expect(try runHost(Self.common + ["--out", directory, "--rounds", "2"]).status == 0)
    let run = try runHost(Self.common + ["--resume", directory, "--rounds", "3"])
    #expect(run.status == 2)
    #expect(run.stderr.contains("the checkpoint belongs to a different run"))
  }

  @Test func anotherRunsOutputIsNeverOverwrittenSilently() throws {
    let directory = try temporaryDirectory("out-guard")
    let first = Self.common + ["--rounds", "1", "--out", directory]
    #expect(try runHost(first).status == 0)
    let report = FileManager.default.contents(atPath: directory + "/report.json")
    let again = try runHost(first)
    #expect(again.status == 2)
    #expect(again.stderr == "host: --out \(directory) already holds a run's results (report.md): choose another directory or add --force\n")
    #expect(FileManager.default.contents(atPath: directory + "/report.json") == report)
    #expect(try runHost(first + ["--force"]).status == 0)

    let empty = try temporaryDirectory("out-guard-empty")
    let nothing = try runHost(Self.common + ["--resume", empty + "/typo"])
    #expect(nothing.status == 2)
    #expect(nothing.stderr == "host: --resume \(empty)/typo: no checkpoint.json there, nothing to resume (start the run with --out \(empty)/typo)\n")
    #expect(!FileManager.default.fileExists(atPath: empty + "/typo"))
  }

  @Test func aKilledRunRerunWithoutResumeIsToldToResume() throws {
    let directory = try temporaryDirectory("out-unfinished")
    #expect(try runHost(Self.common + ["--rounds", "1", "--out", directory]).status == 0)
    // Make the checkpoint look like a run killed before it finished.
    let path = directory + "/checkpoint.json"
    var checkpoint = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    checkpoint["finished"] = false
    try JSONSerialization.data(withJSONObject: checkpoint).write(to: URL(fileURLWithPath: path))
    for file in ["report.md", "report.csv", "report.json"] { try? FileManager.default.removeItem(atPath: directory + "/" + file) }
    let rerun = try runHost(Self.common + ["--rounds", "1", "--out", directory])
    #expect(rerun.status == 2)
    #expect(rerun.stderr.contains("holds an unfinished run of this command: continue it with --resume \(directory)"))
  }
}
