import Foundation
import Testing

/// Every load failure ends in one clear line and a non-zero exit, with real bad `.so` files
/// built by the test from Tests/Fixtures/plugins/test_plugin.c.
@Suite("Loading plugins through the real host binary")
struct PluginLoadingTests {
  let directory: String
  init() throws { directory = try temporaryDirectory("load") }

  private func expectOneLineFailure(_ run: HostRun, containing needles: [String]) {
    #expect(run.status != 0)
    let lines = run.stderr.split(separator: "\n")
    #expect(lines.count == 1, "stderr: \(run.stderr)")
    for needle in needles { #expect(run.stderr.contains(needle), "stderr: \(run.stderr)") }
  }

  @Test func fileNotFoundListsTheSearchedDirectories() throws {
    let run = try runHost(["plugins", "describe", "libNoSuchPlugin.so", "--plugin-path", directory],
                          environment: ["FEDHOST_PLUGIN_PATH": "/opt/nowhere"])
    expectOneLineFailure(run, containing: ["libNoSuchPlugin.so\" not found", directory, "/opt/nowhere", productsDirectory])
  }

  @Test func notASharedObject() throws {
    let path = directory + "/libText.so"
    try "just text".write(toFile: path, atomically: true, encoding: .utf8)
    expectOneLineFailure(try runHost(["plugins", "describe", path]), containing: [path, "not a loadable shared object"])
  }

  @Test func missingEntrySymbol() throws {
    let path = try compilePlugin(testPluginSource, name: "NoEntry", in: directory, flags: ["-DNO_ENTRY"])
    expectOneLineFailure(try runHost(["plugins", "describe", path]), containing: [path, "fedhost_plugin_entry"])
  }

  @Test func abiMajorMismatchPrintsBothVersions() throws {
    let path = try compilePlugin(testPluginSource, name: "Abi2", in: directory, flags: ["-DPLUGIN_ABI_MAJOR=2"])
    expectOneLineFailure(try runHost(["plugins", "describe", path]), containing: ["plugin ABI 2.2", "host ABI 1.2"])
  }

  @Test func createFailureCarriesThePluginsMessage() throws {
    let path = try compilePlugin(testPluginSource, name: "FailCreate", in: directory, flags: ["-DFAIL_CREATE"])
    let run = try runHost(["plugins", "validate", path])
    #expect(run.status == 1)
    #expect(run.stdout.contains("create failed: test plugin refuses to start: FAIL_CREATE was defined"))
  }

  @Test func bareNamesResolveThroughTheEnvironmentAndPluginPath() throws {
    try compilePlugin(testPluginSource, name: "Mean", in: directory)
    let viaEnvironment = try runHost(["plugins", "describe", "libMean.so"], environment: ["FEDHOST_PLUGIN_PATH": directory])
    #expect(viaEnvironment.status == 0)
    #expect(viaEnvironment.stdout.contains("org.fedhost.test.mean"))
    let viaFlag = try runHost(["plugins", "describe", "Mean", "--plugin-path", directory])
    #expect(viaFlag.stdout.contains(directory + "/libMean.so"))
  }

  @Test func listShowsEveryPluginOnThePath() throws {
    try compilePlugin(testPluginSource, name: "Mean", in: directory)
    try "not a plugin".write(toFile: directory + "/libJunk.so", atomically: true, encoding: .utf8)
    let run = try runHost(["plugins", "list", "--plugin-path", directory])
    #expect(run.status == 0)
    let meanLine = run.stdout.split(separator: "\n").first { $0.hasPrefix("libMean.so") }
    #expect(meanLine?.contains("org.fedhost.test.mean") == true)
    #expect(meanLine?.contains("aggregator") == true)
    #expect(run.stdout.contains("libJunk.so"))
    #expect(run.stdout.contains("not loadable"))
    // The host's own plugins, next to the binary, are listed too.
    #expect(run.stdout.contains("libFedAvg.so"))
  }
}

@Suite("host plugins validate survives and reports broken plugins")
struct PluginValidationTests {
  let directory: String
  init() throws { directory = try temporaryDirectory("validate") }

  @Test func aCorrectPluginPasses() throws {
    let path = try compilePlugin(testPluginSource, name: "Mean", in: directory)
    let run = try runHost(["plugins", "validate", path])
    #expect(run.status == 0, "\(run.stdout)")
    #expect(run.stdout.contains("validate: all 19 checks passed"))
  }

  @Test func aCrashIsReportedWithTheCheckItHappenedIn() throws {
    let path = try compilePlugin(testPluginSource, name: "Crash", in: directory, flags: ["-DCRASH_IN_AGGREGATE"])
    let run = try runHost(["plugins", "validate", path])
    #expect(run.status == 1)
    #expect(run.stdout.contains("FAIL  plugin crashed during \"aggregate: outputs and weights are finite\": signal 11 (SIGSEGV)"))
  }

  @Test func aHangIsKilledAndReported() throws {
    let path = try compilePlugin(testPluginSource, name: "Hang", in: directory, flags: ["-DHANG_IN_AGGREGATE"])
    let run = try runHost(["plugins", "validate", "--timeout", "1", path])
    #expect(run.status == 1)
    #expect(run.stdout.contains("FAIL  plugin hung during \"aggregate: outputs and weights are finite\""))
  }

  @Test func ignoredCoverageMasksAndDriftAreCaught() throws {
    let path = try compilePlugin(testPluginSource, name: "Drift", in: directory, flags: ["-DIGNORE_COVERAGE"])
    let run = try runHost(["plugins", "validate", path])
    #expect(run.status == 1)
    let failures = run.stdout.split(separator: "\n").filter { $0.hasPrefix("FAIL") }
    #expect(failures.count == 2, "\(run.stdout)")
    #expect(failures.contains { $0.contains("zero deltas leave the model unchanged") })
    #expect(failures.contains { $0.contains("elements no client covers keep their value") })
  }

  @Test func anInitializerIsDrivenThroughHostCallbacks() throws {
    let path = try compilePlugin(testPluginSource, name: "Init", in: directory, flags: ["-DKIND_INITIALIZER"])
    let run = try runHost(["plugins", "validate", path])
    #expect(run.status == 0, "\(run.stdout)")
    #expect(run.stdout.contains("ok    initialize: a failing host callback becomes an error"))
  }
}

/// Every plugin FedHost ships, and the third-party example in plain C, pass the conformance run.
@Suite("Shipped plugins pass host plugins validate")
struct ShippedPluginConformanceTests {
  @Test(arguments: ["libFedAvg.so", "libFedProx.so", "libSimilarityAware.so", "libMEFLVariance.so",
                    "libFedAvgM.so", "libFedAdam.so", "libFedYogi.so", "libFedAdagrad.so", "libFedMedian.so",
                    "libFedTrimmedAvg.so", "libKrum.so", "libMultiKrum.so", "libBulyan.so", "libQFedAvg.so",
                    "libDPFedAvg.so"])
  func swiftPlugin(_ name: String) throws {
    let run = try runHost(["plugins", "validate", name])
    #expect(run.status == 0, "\(run.stdout)")
    #expect(run.stdout.contains("checks passed"))
  }

  @Test func theCExampleBuiltWithCC() throws {
    let directory = try temporaryDirectory("c-example")
    let path = try compilePlugin(packageRoot + "/Examples/robust-aggregator/robust_aggregator.c",
                                 name: "RobustAggregator", in: directory, flags: ["-std=c99", "-Wall", "-Wextra", "-Werror"])
    let run = try runHost(["plugins", "validate", path])
    #expect(run.status == 0, "\(run.stdout)")
    // And it runs as a real strategy.
    let compare = try runHost(["compare", "--aggregators", path, "--seeds", "1", "--rounds", "2", "--quiet",
                               "--no-local-only", "--personalization-epochs", "1"])
    #expect(compare.status == 0, "\(compare.stderr)")
    #expect(compare.stdout.contains("| Robust"))
  }
}
