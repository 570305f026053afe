import Foundation
import Testing

/// ABI 1.2 through the real host binary: the contexts and auxiliary vectors reach a C plugin
/// (Tests/Fixtures/plugins/context_probe.c, which reports back what it was told) the same way
/// in process and isolated, its log lines reach stderr under its name, and a plugin built
/// against the 1.1 header still loads, validates and runs.
@Suite("Plugin ABI 1.2 end to end")
struct PluginABI12Tests {
  let directory: String
  init() throws { directory = try temporaryDirectory("abi12") }

  private func compare(_ plugin: String, isolation: String, out: String, extra: [String] = []) throws -> HostRun {
    try runHost(["compare", "--protocol", "fl", "--aggregators", plugin, "--seeds", "1", "--rounds", "2",
                 "--federation", packageRoot + "/Examples/electrical-class-hetero.json", "--data-dir", packageRoot + "/../shared/data",
                 "--out", out, "--force", "--isolation", isolation] + extra)
  }

  private func strategyMetrics(_ out: String) throws -> [String: [Double?]] {
    let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/report.json")))
    let curves = (report as? [String: Any])?["curves"] as? [[String: Any]] ?? []
    let metrics = curves.first?["strategyMetrics"] as? [String: [Any]] ?? [:]
    return metrics.mapValues { $0.map { $0 as? Double } }
  }

  @Test func theContextsAndAuxiliaryVectorsReachThePluginInProcessAndIsolated() throws {
    let probe = try compilePlugin(contextProbeSource, name: "ContextProbe", in: directory)
    var reports: [String] = []
    for isolation in ["none", "process"] {
      let out = directory + "/" + isolation
      let run = try compare(probe, isolation: isolation, out: out)
      #expect(run.status == 0, "stderr: \(run.stderr)")
      let metrics = try strategyMetrics(out)
      // What the client hook saw, echoed through aux_up: the host's settings and round, and
      // global-shaped vectors (45,914 parameters) also on the ½- and ¼-width devices.
      // (Float 0.001 averaged over the round's clients by the probe.)
      #expect(metrics["client_lr"]?.allSatisfy { abs(($0 ?? 0) - 0.001) < 1e-9 } == true, "\(metrics)")
      #expect(metrics["client_epochs"] == [1, 1])
      #expect(metrics["client_batch"] == [16, 16])
      #expect(metrics["client_round"] == [0, 1])
      #expect(metrics["client_n_params"] == [45_914, 45_914])
      #expect(metrics["client_global_shaped"] == [1, 1])
      // What the aggregator saw in its round context.
      #expect(metrics["n_sampled"] == [4, 4])
      #expect(metrics["n_clients"] == [4, 4])
      #expect(run.stderr.contains("[Context probe] info: round 0 of 2: 4 sampled of 4 clients"), "stderr: \(run.stderr)")
      #expect(run.stderr.contains("[Context probe] info: round 1 of 2: 4 sampled of 4 clients"))
      #expect(!run.stderr.contains("debug line"))
      reports.append(try String(contentsOfFile: out + "/report.json", encoding: .utf8))
      let markdown = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
      #expect(markdown.contains("| Context probe | client_round | 1 | 1 |"), "report.md: \(markdown)")
    }
    #expect(reports[0] == reports[1])
  }

  @Test func sampledClientsAreTheContextsSample() throws {
    let probe = try compilePlugin(contextProbeSource, name: "ContextProbe", in: directory)
    let out = directory + "/sampled"
    let run = try compare(probe, isolation: "none", out: out, extra: ["--clients-per-round", "2"])
    #expect(run.status == 0, "stderr: \(run.stderr)")
    #expect(try strategyMetrics(out)["n_sampled"] == [2, 2])
    #expect(try strategyMetrics(out)["n_clients"] == [4, 4])
  }

  @Test func anAggregatorChoosesTheClientsTheSameInProcessAndIsolated() throws {
    var reports: [String] = []
    for isolation in ["none", "process"] {
      let out = directory + "/choice-" + isolation
      let run = try runHost(["compare", "--protocol", "fl", "--aggregators", "libPowerOfChoice.so", "--seeds", "1",
                             "--rounds", "2", "--clients-per-round", "5", "--no-local-only",
                             "--federation", packageRoot + "/Examples/suite/many-clients-100-dirichlet.json",
                             "--data-dir", packageRoot + "/../shared/data", "--out", out, "--force", "--isolation", isolation])
      #expect(run.status == 0, "stderr: \(run.stderr)")
      reports.append(try String(contentsOfFile: out + "/report.json", encoding: .utf8))
    }
    #expect(reports[0] == reports[1])
  }

  /// What a 1.2 plugin hands back is checked in process and isolated alike: the strategy fails
  /// with one line naming the call and the bad value, and the run exits 1.
  @Test(arguments: [("BAD_SHARES", "aggregate returned OK but wrote out_weights summing to 2.0, not 1"),
                    ("NAN_AUX_DOWN", "prepare_client returned OK but wrote a non-finite aux_down[0] = nan for client 1"),
                    ("NAN_AUX_UP", "client hook returned OK but wrote a non-finite aux_up[7] = nan for client 1"),
                    ("SELECT_TWICE", "select_clients returned OK but chose client 1 twice")])
  func aBadResultOfA12CallIsOneLineNamingIt(flag: String, message: String) throws {
    let probe = try compilePlugin(contextProbeSource, name: "Probe" + flag, in: directory, flags: ["-D" + flag])
    for isolation in ["none", "process"] {
      let out = directory + "/bad-\(flag)-\(isolation)"
      let run = try compare(probe, isolation: isolation, out: out, extra: ["--clients-per-round", "2", "--no-local-only"])
      #expect(run.status == 1, "stderr: \(run.stderr)")
      let failures = try String(contentsOfFile: out + "/report.md", encoding: .utf8).split(separator: "\n")
        .filter { $0.contains("**failed**") }
      #expect(failures.count == 1 && failures[0].contains(message), "\(failures)")
    }
  }

  @Test func auxiliaryVectorsWithoutAClientHookAreRefusedAtLoad() throws {
    let probe = try compilePlugin(contextProbeSource, name: "AggregatorOnly", in: directory, flags: ["-DAGGREGATOR_ONLY"])
    let run = try runHost(["plugins", "describe", probe])
    #expect(run.status != 0)
    #expect(run.stderr.split(separator: "\n").count == 1, "stderr: \(run.stderr)")
    #expect(run.stderr.contains("declares auxiliary vectors (n_aux_down 1, n_aux_up 1) but is not both an aggregator and a client hook"))
  }

  @Test func aStrategyWithAuxiliaryVectorsRefusesAForeignClientHook() throws {
    let run = try runHost(["run", "--aggregator", "libSCAFFOLD.so", "--client-hook", "libFedProx.so", "--baselines", "none",
                           "--rounds", "1", "--out", directory + "/foreign", "--force"])
    #expect(run.status != 0)
    #expect(run.stderr.contains("use the aggregator's own client hook"), "stderr: \(run.stderr)")
  }

  @Test func aPluginBuiltAgainstTheABI11HeaderStillLoadsValidatesAndRuns() throws {
    let old = try compilePlugin(testPluginSource, name: "Mean11", in: directory, header: abi11HeaderDirectory)
    let described = try runHost(["plugins", "describe", old])
    #expect(described.status == 0, "stderr: \(described.stderr)")
    #expect(described.stdout.contains("1.1"), "stdout: \(described.stdout)")
    let validated = try runHost(["plugins", "validate", old])
    #expect(validated.status == 0, "stdout: \(validated.stdout)")
    let out = directory + "/old"
    let run = try compare(old + ",libFedAvg.so", isolation: "process", out: out)
    #expect(run.status == 0, "stderr: \(run.stderr)")
    let report = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
    #expect(report.contains("| Test mean | global |"))
    #expect(!report.contains("failed"))
  }
}
