import FedHostCore
import Foundation
import Glibc
import Testing

let brokenPluginSource = packageRoot + "/Tests/Fixtures/plugins/broken_plugin.c"

/// The call that sets a broken mode off.
enum BrokenCall: Sendable {
  case create, aggregate, secondAggregate, adjustGradient, trainLocal, initialize, saveState, loadState
}

/// One mode of broken_plugin.c, the call that triggers it, and what its one-line error says.
struct BrokenCase: Sendable, CustomTestStringConvertible {
  let mode: String
  let call: BrokenCall
  let expected: [String]
  /// Whether the plugin's process died (else the host's output check refused a live result).
  var killsTheChild = true
  var testDescription: String { mode }
}

let brokenCases: [BrokenCase] = [
  BrokenCase(mode: "SEGV_IN_CREATE", call: .create, expected: ["crashed in create", "SIGSEGV"]),
  BrokenCase(mode: "ABORT_IN_CREATE", call: .create, expected: ["crashed in create", "SIGABRT"]),
  BrokenCase(mode: "SEGV_IN_AGGREGATE", call: .aggregate, expected: ["crashed in aggregate", "SIGSEGV"]),
  BrokenCase(mode: "ABORT_IN_AGGREGATE", call: .aggregate, expected: ["crashed in aggregate", "SIGABRT"]),
  BrokenCase(mode: "TRAP_IN_AGGREGATE", call: .aggregate, expected: ["crashed in aggregate", "SIGILL"]),
  BrokenCase(mode: "FPE_IN_AGGREGATE", call: .aggregate, expected: ["crashed in aggregate", "SIGFPE"]),
  BrokenCase(mode: "BUS_IN_AGGREGATE", call: .aggregate, expected: ["crashed in aggregate", "SIGBUS"]),
  BrokenCase(mode: "EXIT_IN_AGGREGATE", call: .aggregate, expected: ["exited with status 3 during aggregate"]),
  BrokenCase(mode: "HANG_IN_AGGREGATE", call: .aggregate, expected: ["aggregate did not return within", "killed"]),
  BrokenCase(mode: "OVERRUN_OUT_GLOBAL", call: .aggregate, expected: ["crashed in aggregate", "SIGSEGV"]),
  // glibc notices the broken chunk header in this call's free or in a later call's malloc.
  BrokenCase(mode: "HEAP_CORRUPTION", call: .aggregate, expected: ["the plugin crashed in", "SIGABRT"]),
  BrokenCase(mode: "SKIP_ONE_OUTPUT", call: .aggregate, expected: ["aggregate returned OK but left out_global[17] unwritten"],
             killsTheChild: false),
  BrokenCase(mode: "SKIP_ALL_OUTPUT", call: .aggregate, expected: ["aggregate returned OK but left out_global[0] unwritten"],
             killsTheChild: false),
  BrokenCase(mode: "NAN_OUT_GLOBAL", call: .aggregate, expected: ["aggregate returned OK but wrote a non-finite out_global[5] = nan"],
             killsTheChild: false),
  BrokenCase(mode: "NAN_WEIGHTS", call: .aggregate, expected: ["aggregate returned OK but wrote a non-finite out_weights[1] = nan"],
             killsTheChild: false),
  BrokenCase(mode: "SEGV_IN_PARALLEL_TASK", call: .aggregate, expected: ["crashed in aggregate", "SIGSEGV"]),
  BrokenCase(mode: "SEGV_IN_ADJUST_GRADIENT", call: .adjustGradient, expected: ["crashed in adjust_gradient", "SIGSEGV"]),
  BrokenCase(mode: "HANG_IN_ADJUST_GRADIENT", call: .adjustGradient, expected: ["adjust_gradient did not return within"]),
  BrokenCase(mode: "SEGV_IN_TRAIN_LOCAL", call: .trainLocal, expected: ["crashed in train_local", "SIGSEGV"]),
  BrokenCase(mode: "SEGV_IN_INITIALIZE", call: .initialize, expected: ["crashed in initialize", "SIGSEGV"]),
  BrokenCase(mode: "HANG_IN_INITIALIZE", call: .initialize, expected: ["initialize did not return within"]),
  BrokenCase(mode: "SEGV_IN_SAVE_STATE", call: .saveState, expected: ["crashed in save_state", "SIGSEGV"]),
  BrokenCase(mode: "SEGV_IN_LOAD_STATE", call: .loadState, expected: ["crashed in load_state", "SIGSEGV"]),
  BrokenCase(mode: "SEGV_IN_ROUND_1", call: .secondAggregate, expected: ["crashed in aggregate", "SIGSEGV"]),
]

let isolatedForTests = PluginIsolation.process(callTimeout: 1, hostExecutable: hostExecutable)

/// Random updates (two of three with a coverage mask, every one with metrics) over `count` elements.
func randomUpdates(count: Int, clients: Int, seed: UInt64) -> (global: ParameterVector, updates: [ClientUpdate]) {
  var generator = SeededGenerator(seed: seed)
  let global = ParameterVector((0..<count).map { _ in Float.random(in: -1...1, using: &generator) })
  let updates = (0..<clients).map { client in
    let delta = ParameterVector((0..<count).map { _ in Float.random(in: -0.1...0.1, using: &generator) })
    let coverage = client == 0 ? nil : CoverageMask((0..<count).map { _ in UInt8.random(in: 0...3, using: &generator) == 0 ? 0 : 1 })
    if let coverage { for index in 0..<count where !coverage[index] { delta[index] = 0 } }
    return ClientUpdate(clientID: UInt32(client), delta: delta, sampleCount: UInt64.random(in: 5...50, using: &generator),
                        coverage: coverage,
                        metrics: ["query_loss": Double.random(in: 0.1...1, using: &generator),
                                  "train_loss": Double.random(in: 0.1...1, using: &generator)])
  }
  return (global, updates)
}

@Suite("Plugins isolated in a child process")
struct PluginIsolationTests {
  let directory: String
  init() throws { directory = try temporaryDirectory("isolation") }

  /// Sets the broken mode off; returns what the library threw.
  private func trigger(_ call: BrokenCall, on library: PluginLibrary, isolation: PluginIsolation) -> (Error?, PluginInstance?) {
    var instance: PluginInstance?
    do {
      let made = try library.makeInstance(configJSON: "{}", threads: 2, isolation: isolation)
      instance = made
      let (global, updates) = randomUpdates(count: 64, clients: 3, seed: 1)
      let output = ParameterVector(count: 64)
      switch call {
      case .create: break
      case .aggregate: try made.aggregate(round: 0, global: global, updates: updates, into: output)
      case .secondAggregate:
        try made.aggregate(round: 0, global: global, updates: updates, into: output)
        try made.aggregate(round: 1, global: output, updates: updates, into: ParameterVector(count: 64))
      case .adjustGradient:
        let gradient = ParameterVector(count: 64)
        try made.adjustGradient(clientID: 0, local: global.pointer, global: global.pointer, gradient: gradient.pointer, count: 64)
      case .trainLocal:
        try made.trainLocal(weights: global.buffer, services: ClientServices(
          clientID: 0, supportCount: 4, queryCount: 0,
          gradient: { _, _, _, gradient in gradient.update(repeating: 0.5, count: 64); return 1 },
          reportMetric: { _, _ in }))
      case .initialize:
        try made.initialize(weights: global, services: InitializerServices(
          clientCount: 2, trainClient: { _, weights, _ in weights.update(repeating: 0.25); return 0.5 },
          evaluateClient: { _, _ in (0.5, 0.5) }))
      case .saveState: _ = try made.saveState()
      case .loadState: try made.loadState([1, 2, 3, 4, 5, 6, 7, 8])
      }
      return (nil, made)
    } catch {
      return (error, instance)
    }
  }

  @Test(arguments: brokenCases)
  func aBrokenPluginThrowsOneLineAndTheHostLives(_ broken: BrokenCase) throws {
    let path = try compilePlugin(brokenPluginSource, name: "Broken\(broken.mode)", in: directory,
                                 flags: ["-DBROKEN_MODE=\(broken.mode)"])
    let library = try PluginLibrary.open(path)
    let (thrown, instance) = trigger(broken.call, on: library, isolation: isolatedForTests)
    let error = try #require(thrown as? PluginError)
    let line = error.description
    #expect(!line.contains("\n"))
    #expect(line.hasPrefix(path + ": "), "\(line)")
    for piece in broken.expected { #expect(line.contains(piece), "\(line)") }
    guard let instance, let child = instance.childProcess else {
      #expect(broken.call == .create)
      return
    }
    if broken.killsTheChild {
      let waitStatus = try #require(child.waitStatus)
      #expect(kill(child.id, 0) == -1 && errno == ESRCH, "the child must be reaped, not a zombie")
      #expect(waitStatus & 0x80 == 0, "no core dump")
      let (global, updates) = randomUpdates(count: 64, clients: 3, seed: 2)
      #expect(throws: PluginError.self) { try instance.aggregate(round: 2, global: global, updates: updates, into: ParameterVector(count: 64)) }
      do {
        try instance.aggregate(round: 2, global: global, updates: updates, into: ParameterVector(count: 64))
      } catch {
        #expect("\(error)".contains("refused: this plugin instance is dead"), "\(error)")
      }
    } else {
      #expect(child.waitStatus == nil)
    }
  }

  @Test(arguments: brokenCases.filter { !$0.killsTheChild })
  func outputsAreCheckedInProcessToo(_ broken: BrokenCase) throws {
    let path = try compilePlugin(brokenPluginSource, name: "InProcess\(broken.mode)", in: directory,
                                 flags: ["-DBROKEN_MODE=\(broken.mode)"])
    let (error, _) = trigger(broken.call, on: try PluginLibrary.open(path), isolation: .none)
    let line = "\(try #require(error as? PluginError))"
    for piece in broken.expected { #expect(line.contains(piece), "\(line)") }
  }

  @Test func logLinesAndCreateErrorsComeBackFromTheChild() throws {
    let path = try compilePlugin(brokenPluginSource, name: "Working", in: directory, flags: ["-DBROKEN_MODE=WORKING"])
    let lines = LogLines()
    let instance = try PluginLibrary.open(path).makeInstance(isolation: isolatedForTests) { lines.append("\($0): \($1)") }
    let (global, updates) = randomUpdates(count: 10, clients: 2, seed: 3)
    try instance.aggregate(round: 0, global: global, updates: updates, into: ParameterVector(count: 10))
    #expect(lines.all == ["info: broken plugin created"])

    let failing = try compilePlugin(testPluginSource, name: "FailCreate", in: directory, flags: ["-DFAIL_CREATE"])
    #expect(throws: PluginError.createFailed(path: failing, id: "org.fedhost.test.mean",
                                             message: "test plugin refuses to start: FAIL_CREATE was defined")) {
      try PluginLibrary.open(failing).makeInstance(isolation: isolatedForTests)
    }
  }

  @Test(arguments: ["libFedAvg.so", "libSimilarityAware.so", "libMEFLVariance.so", "libFedProx.so"])
  func isolatedAggregationIsBitIdentical(_ plugin: String) throws {
    let library = try PluginLibrary.open(productsDirectory + "/" + plugin)
    let local = try library.makeInstance(configJSON: "{\"seed\": 7}", threads: 2, isolation: .none)
    let isolated = try library.makeInstance(configJSON: "{\"seed\": 7}", threads: 2, isolation: isolatedForTests)
    for round in 0..<3 {
      // 300 007 elements: several parallel_for chunks, and an output that ends mid-page.
      let (global, updates) = randomUpdates(count: 300_007, clients: 4, seed: UInt64(round))
      let expected = ParameterVector(count: global.count)
      let actual = ParameterVector(count: global.count)
      let expectedWeights = try local.aggregate(round: round, global: global, updates: updates, into: expected)
      let actualWeights = try isolated.aggregate(round: round, global: global, updates: updates, into: actual)
      #expect(expectedWeights.map(\.bitPattern) == actualWeights.map(\.bitPattern))
      #expect(expected.array.map(\.bitPattern) == actual.array.map(\.bitPattern))
    }
    #expect(try local.saveState() == isolated.saveState())
    try isolated.loadState(try local.saveState())
  }

  @Test(arguments: ["libFedProx.so", "libMEFLVariance.so"])
  func isolatedClientHooksAreBitIdentical(_ plugin: String) throws {
    let library = try PluginLibrary.open(productsDirectory + "/" + plugin)
    let local = try library.makeInstance(configJSON: "{\"seed\": 3}", isolation: .none)
    let isolated = try library.makeInstance(configJSON: "{\"seed\": 3}", isolation: isolatedForTests)
    let (global, updates) = randomUpdates(count: 5_001, clients: 2, seed: 9)
    let weights = updates[0].delta
    func run(_ instance: PluginInstance) throws -> (gradient: [Float], trained: [Float], metrics: [String: Double]) {
      let gradient = updates[1].delta.copy()
      if instance.supportsAdjustGradient {
        try instance.adjustGradient(clientID: 1, local: weights.pointer, global: global.pointer,
                                    gradient: gradient.pointer, count: global.count)
      }
      let trained = global.copy()
      let metrics = LogLines()
      if instance.supportsTrainLocal {
        // A quadratic bowl around `weights` over the chosen rows: a real gradient oracle.
        try instance.trainLocal(weights: trained.buffer, services: ClientServices(
          clientID: 0, supportCount: 20, queryCount: 10, coverage: updates[1].coverage,
          gradient: { split, rows, point, out in
            let scale = Float((rows?.count ?? 20) + Int(split.rawValue))
            var loss = 0.0
            for index in 0..<global.count {
              out[index] = (point[index] - weights[index]) * scale / 20
              loss += Double(out[index] * out[index])
            }
            return loss
          },
          reportMetric: { key, value in metrics.append("\(key)=\(value.bitPattern)") }))
      }
      return (gradient.array, trained.array, Dictionary(uniqueKeysWithValues: metrics.all.map { ($0, 0) }))
    }
    let expected = try run(local)
    let actual = try run(isolated)
    #expect(expected.gradient.map(\.bitPattern) == actual.gradient.map(\.bitPattern))
    #expect(expected.trained.map(\.bitPattern) == actual.trained.map(\.bitPattern))
    #expect(expected.metrics == actual.metrics)
    #expect(isolated.supportsAdjustGradient || isolated.supportsTrainLocal)
  }

  @Test func concurrentClientHookCallsRunOnSeveralLanes() throws {
    let library = try PluginLibrary.open(productsDirectory + "/libFedProx.so")
    let local = try library.makeInstance(isolation: .none)
    let isolated = try library.makeInstance(isolation: isolatedForTests)
    let (global, updates) = randomUpdates(count: 3_000, clients: 8, seed: 4)
    let results = LogLines()
    DispatchQueue.concurrentPerform(iterations: 8) { client in
      for instance in [local, isolated] {
        let gradient = updates[(client + 1) % 8].delta.copy()
        for _ in 0..<20 {
          try? instance.adjustGradient(clientID: UInt32(client), local: updates[client].delta.pointer,
                                       global: global.pointer, gradient: gradient.pointer, count: global.count)
        }
        results.append("\(client) \(instance === local) \(gradient.array.map(\.bitPattern).hashValue)")
      }
    }
    let byClient = Dictionary(grouping: results.all) { $0.split(separator: " ")[0] }
    #expect(byClient.count == 8)
    for lines in byClient.values {
      #expect(Set(lines.map { $0.split(separator: " ")[2] }).count == 1, "\(lines)")
    }
  }

  /// `host compare` (or the main job) with FedAvg beside `broken`, isolated (the default) with a 3 s call limit.
  private func runWithFedAvg(_ broken: BrokenCase, _ command: [String]) throws -> (HostRun, path: String, out: String) {
    let out = try temporaryDirectory("\(command[0])-\(broken.mode)")
    let path = try compilePlugin(brokenPluginSource, name: "Broken", in: out, flags: ["-DBROKEN_MODE=\(broken.mode)"])
    let arguments = command.map { $0.replacingOccurrences(of: "BROKEN", with: path) } + ["--rounds", "2", "--threads", "2", "--plugin-timeout", "3", "--out", out + "/report"]
    let run = try runProcess(hostExecutable, arguments, currentDirectory: out)
    let contents = try FileManager.default.contentsOfDirectory(atPath: out)
    #expect(!contents.contains { $0.hasPrefix("core") }, "\(contents)")
    return (run, path, out)
  }

  /// Every mode a run reaches (load_state runs only on --resume).
  /// Every mode a run reaches (load_state runs only on --resume), a crash in create included.
  @Test(arguments: brokenCases.filter { $0.call != .loadState })
  func compareReportsTheBrokenStrategyFailedAndFinishesFedAvg(_ broken: BrokenCase) throws {
    let (run, path, out) = try runWithFedAvg(broken, ["compare", "--aggregators", "libFedAvg.so,BROKEN", "--seeds", "1"])
    #expect(run.status == 1, "\(run.stderr)")
    let report = try String(contentsOfFile: out + "/report/report.csv", encoding: .utf8).split(separator: "\n")
    let fedAvg = report.filter { $0.hasPrefix("FedAvg,") }
    #expect(fedAvg.count == 4 && fedAvg.allSatisfy { $0.hasSuffix(",ok") }, "\(report)")
    let failed = report.filter { $0.contains("failed: \(path): ") }
    #expect(!failed.isEmpty, "\(report)")
    for piece in broken.expected { #expect(failed.allSatisfy { $0.contains(piece) }, "\(failed)") }
  }

  @Test(arguments: brokenCases.filter { [.aggregate, .trainLocal, .initialize].contains($0.call) }.prefix(6))
  func theMainJobReportsTheBrokenStrategyFailedBesideFedAvg(_ broken: BrokenCase) throws {
    let (run, path, out) = try runWithFedAvg(broken, ["run", "--aggregator", "BROKEN", "--baselines", "libFedAvg.so"])
    #expect(run.status == 1, "\(run.stderr)")
    let report = try String(contentsOfFile: out + "/report/report.csv", encoding: .utf8)
    #expect(report.contains("FedAvg,personalized,line-fault,0,"), "\(report)")
    #expect(report.contains("failed: \(path): "), "\(report)")
  }
}

/// Lines collected from several threads.
final class LogLines: @unchecked Sendable {
  private let lock = NSLock()
  private var lines: [String] = []
  func append(_ line: String) { lock.withLock { lines.append(line) } }
  var all: [String] { lock.withLock { lines } }
}
