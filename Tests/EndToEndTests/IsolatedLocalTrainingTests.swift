import FedHostCore
import Foundation
import Testing

/// A client's whole local training runs in an isolated hook's child process: the same bits as in
/// process, the plugin's own errors unchanged, and a slow but live hook is not taken for hung.
@Suite("Local training inside the plugin's child process")
struct IsolatedLocalTrainingTests {
  /// Two clients of a 3-class task: one trains the full model, one a half-width sub-model.
  private func engine(rows: Int = 48, epochs: Int = 2) throws -> FederationEngine {
    var generator = SeededGenerator(seed: 21)
    func samples(_ count: Int) -> Samples {
      Samples(features: (0..<(count * 5)).map { _ in Float.random(in: -0.5...0.5, using: &generator) },
              labels: (0..<count).map { _ in Int32.random(in: 0..<3, using: &generator) }, width: 5)
    }
    let clients = ClientSource([
      (ClientProfile(name: "full"), ClientData(train: samples(rows), query: samples(12), validation: samples(4), test: samples(4))),
      (ClientProfile(name: "half", modelRate: 0.5),
       ClientData(train: samples(rows), query: samples(12), validation: samples(4), test: samples(4))),
    ])
    return try FederationEngine(clients: clients, inputWidth: 5, classCount: 3, settings: EngineSettings(
      hiddenWidths: [24, 16], optimizer: .adam, learningRate: 0.01, batchSize: 4, localEpochs: epochs, seed: 5, threads: 1))
  }

  private func updates(_ engine: FederationEngine, hook: PluginInstance?) throws -> [[String]] {
    let global = engine.initialModel()
    return try (0..<2).map { client in
      let update = try engine.trainClient(client, round: 3, global: global, hook: hook)
      return update.delta.array.map { "\($0.bitPattern)" } + update.metrics.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.bitPattern)" }
    }
  }

  @Test(arguments: ["libFedProx.so", "libMEFLVariance.so"])
  func theChildTrainsBitIdentically(_ plugin: String) throws {
    let library = try PluginLibrary.open(productsDirectory + "/" + plugin)
    let engine = try engine()
    let expected = try updates(engine, hook: library.makeInstance(configJSON: "{\"seed\": 3}", isolation: .none))
    let actual = try updates(engine, hook: library.makeInstance(configJSON: "{\"seed\": 3}", isolation: isolatedForTests))
    #expect(expected == actual)
    // The hook took part: training without it gives other deltas.
    #expect(try updates(engine, hook: nil) != expected)
  }

  @Test func thePluginsOwnErrorComesBackUnchanged() throws {
    let directory = try temporaryDirectory("local-training-error")
    let path = try compilePlugin(brokenPluginSource, name: "Failing", in: directory, flags: ["-DBROKEN_MODE=FAIL_IN_ADJUST_GRADIENT"])
    let library = try PluginLibrary.open(path)
    let engine = try engine()
    func failure(_ isolation: PluginIsolation) throws -> String {
      let hook = try library.makeInstance(isolation: isolation)
      do {
        _ = try engine.trainClient(1, round: 0, global: engine.initialModel(), hook: hook)
        return "no error"
      } catch {
        return String(describing: error)
      }
    }
    let inProcess = try failure(.none)
    #expect(inProcess.contains("adjust_gradient failed (FHP_E_NUMERIC): gradient exploded at client 1"), "\(inProcess)")
    #expect(try failure(isolatedForTests) == inProcess)
  }

  @Test func aSlowHookThatKeepsAnsweringIsNotHung() throws {
    let directory = try temporaryDirectory("local-training-slow")
    let path = try compilePlugin(brokenPluginSource, name: "Slow", in: directory, flags: ["-DBROKEN_MODE=SLOW_ADJUST_GRADIENT"])
    let library = try PluginLibrary.open(path)
    // 2 epochs of 16 rows in batches of 4: 8 calls of 50 ms, twice the 0.2 s limit on one call.
    let engine = try engine(rows: 16, epochs: 2)
    let hook = try library.makeInstance(isolation: .process(callTimeout: 0.2, hostExecutable: hostExecutable))
    let start = ContinuousClock.now
    let update = try engine.trainClient(0, round: 0, global: engine.initialModel(), hook: hook)
    #expect(ContinuousClock.now - start > .milliseconds(400))
    #expect(update.delta.array.contains { $0 != 0 })
  }

  @Test func aHealthyChildServesTheNextInstanceADeadOneDoesNot() throws {
    let directory = try temporaryDirectory("child-reuse")
    let working = try PluginLibrary.open(try compilePlugin(brokenPluginSource, name: "Reused", in: directory,
                                                           flags: ["-DBROKEN_MODE=WORKING"]))
    let first = try #require(try working.makeInstance(isolation: isolatedForTests).childProcess?.id)
    let second = try working.makeInstance(isolation: isolatedForTests)
    #expect(second.childProcess?.id == first)
    let (global, updates) = randomUpdates(count: 64, clients: 3, seed: 1)
    try second.aggregate(round: 0, global: global, updates: updates, into: ParameterVector(count: 64))

    let crashing = try PluginLibrary.open(try compilePlugin(brokenPluginSource, name: "NotReused", in: directory,
                                                            flags: ["-DBROKEN_MODE=SEGV_IN_AGGREGATE"]))
    var dead: pid_t?
    do {
      let instance = try crashing.makeInstance(isolation: isolatedForTests)
      dead = instance.childProcess?.id
      #expect(throws: PluginError.self) { try instance.aggregate(round: 0, global: global, updates: updates, into: ParameterVector(count: 64)) }
    }
    let next = try crashing.makeInstance(isolation: isolatedForTests)
    #expect(dead != nil && next.childProcess?.id != dead)
  }
}
