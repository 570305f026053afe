import FedHostCore
import Testing

/// FedAvgM, FedAdam, FedYogi and FedAdagrad: PluginKit's `ServerOptimizer` behind four plugins.
/// Flower's own implementations are the peer in bridges/flower/tests/test_strategy_library.py;
/// here: cases small enough to do by hand, the coverage convention, and resume.
@Suite("Server optimizer plugins (FedAvgM, FedAdam, FedYogi, FedAdagrad)")
struct ServerOptimizerPluginTests {
  /// Runs `rounds` on one instance, each round's output the next round's global.
  private func run(_ plugin: PluginInstance, global: [Float], _ rounds: [[ClientUpdate]], firstRound: Int = 0)
    throws -> [[Float]]
  {
    var current = global
    return try rounds.enumerated().map { offset, updates in
      current = try PluginFixture.aggregate(plugin, global: current, updates, round: firstRound + offset).global
      return current
    }
  }

  @Test func fedAvgMAccumulatesMomentumByHand() throws {
    let plugin = try PluginFixture.instance("FedAvgM", #"{"server_learning_rate": 0.5, "server_momentum": 0.5}"#)
    // mean delta (p = 1/4, 3/4): (0.25·1 + 0.75·3, 0.25·(−2) + 0.75·2) = (2.5, 1)
    // round 0: m = (2.5, 1);                w = (1, 1) + 0.5·m = (2.25, 1.5)
    // round 1: m = 0.5·(2.5, 1) + (2.5, 1) = (3.75, 1.5); w = (2.25, 1.5) + 0.5·m = (4.125, 2.25)
    let updates = [PluginFixture.update(0, [1, -2], samples: 1), PluginFixture.update(1, [3, 2], samples: 3)]
    let first = try PluginFixture.aggregate(plugin, global: [1, 1], updates, round: 0)
    #expect(first.global == [2.25, 1.5])
    #expect(first.weights == [0.25, 0.75])
    #expect(try PluginFixture.aggregate(plugin, global: first.global, updates, round: 1).global == [4.125, 2.25])
  }

  @Test func fedAdagradAccumulatesSquaresByHand() throws {
    let plugin = try PluginFixture.instance("FedAdagrad", #"{"eta": 1, "tau": 1}"#)
    // round 0: v = (9, 16); step = (3/(3+1), −4/(4+1)) = (0.75, −0.8)
    // round 1: v = (18, 32); step = (3/(√18+1), −4/(√32+1))
    let updates = [PluginFixture.update(0, [3, -4])]
    let outputs = try run(plugin, global: [0, 0], [updates, updates])
    #expect(outputs[0] == [0.75, -0.8])
    expectClose(outputs[1], [0.75 + 3 / (18.0.squareRoot() + 1), -0.8 - 4 / (32.0.squareRoot() + 1)])
  }

  @Test func fedYogiMovesTheSecondMomentBySignByHand() throws {
    let plugin = try PluginFixture.instance("FedYogi", #"{"eta": 1, "beta_1": 0.5, "beta_2": 0.5, "tau": 1}"#)
    // round 0: m = 0.5·2 = 1;           v = 0 − 0.5·4·sign(0 − 4) = 2; step = 1/(√2 + 1)
    // round 1: m = 0.5·1 + 0.5·2 = 1.5; v = 2 − 0.5·4·sign(2 − 4) = 4; step = 1.5/(2 + 1) = 0.5
    let updates = [PluginFixture.update(0, [2])]
    let outputs = try run(plugin, global: [0], [updates, updates])
    expectClose(outputs[0], [1 / (2.0.squareRoot() + 1)])
    expectClose(outputs[1], [1 / (2.0.squareRoot() + 1) + 0.5])
  }

  @Test func fedAdamCorrectsBiasAsFlowerDoesByHand() throws {
    let plugin = try PluginFixture.instance("FedAdam", #"{"eta": 1, "beta_1": 0.5, "beta_2": 0.5, "tau": 1}"#)
    // Host round r uses exponent r + 2 (Flower's server_round + 1).
    // round 0: m = 1, v = 2;       step = √(1 − 0.5²)/(1 − 0.5²) · 1/(√2 + 1)
    // round 1: m = 1.5, v = 3;     step = √(1 − 0.5³)/(1 − 0.5³) · 1.5/(√3 + 1)
    let updates = [PluginFixture.update(0, [2])]
    let outputs = try run(plugin, global: [0], [updates, updates])
    let first = 0.75.squareRoot() / 0.75 / (2.0.squareRoot() + 1)
    expectClose(outputs[0], [first])
    expectClose(outputs[1], [first + 0.875.squareRoot() / 0.875 * 1.5 / (3.0.squareRoot() + 1)])
  }

  /// Elements no client covers keep their weight, and their moments are not touched: the
  /// next round that covers them starts from the moments they had.
  @Test(arguments: ["FedAvgM", "FedAdam", "FedYogi", "FedAdagrad"])
  func uncoveredElementsKeepWeightAndMoments(plugin name: String) throws {
    let config = name == "FedAvgM" ? #"{"server_momentum": 0.5}"# : "{}"
    let masked = try PluginFixture.instance(name, config)
    let first = try PluginFixture.aggregate(masked, global: [0, 5], [
      PluginFixture.update(0, [1, .nan], coverage: [1, 0]),
    ])
    #expect(first.global[1] == 5)
    // Element 1 has never been covered: in round 1 it must behave as in a fresh instance's round 1
    // on that element alone, whose state is zero too.
    let second = try PluginFixture.aggregate(masked, global: first.global, [PluginFixture.update(0, [1, 1])], round: 1)
    let fresh = try PluginFixture.instance(name, config)
    let alone = try PluginFixture.aggregate(fresh, global: [5], [PluginFixture.update(0, [1])], round: 1)
    #expect(second.global[1] == alone.global[0])
  }

  /// Two rounds, save, load into a fresh instance: the next rounds are bit-identical.
  @Test(arguments: ["FedAvgM", "FedAdam", "FedYogi", "FedAdagrad"])
  func resumeIsBitIdentical(plugin name: String) throws {
    var random = TestRandom(seed: 17)
    let count = 9_001
    let global = random.vector(count)
    let rounds: [[ClientUpdate]] = (0..<4).map { _ in
      (0..<5).map { client in
        PluginFixture.update(UInt32(client), random.vector(count, scale: 0.05), samples: UInt64(1 + random.below(90)),
                             coverage: client == 3 ? random.mask(count, coverage: 0.5) : nil)
      }
    }
    let config = name == "FedAvgM" ? #"{"server_momentum": 0.9, "server_learning_rate": 0.8}"# : "{}"
    let uninterrupted = try PluginFixture.instance(name, config)
    let all = try run(uninterrupted, global: global, rounds)

    let interrupted = try PluginFixture.instance(name, config)
    let firstHalf = try run(interrupted, global: global, Array(rounds[..<2]))
    let state = try interrupted.saveState()
    let resumed = try PluginFixture.instance(name, config)
    try resumed.loadState(state)
    #expect(try resumed.saveState() == state)
    let secondHalf = try run(resumed, global: firstHalf[1], Array(rounds[2...]), firstRound: 2)
    #expect(firstHalf + secondHalf == all)
  }

  @Test func stateOfAnotherModelSizeIsRefused() throws {
    let plugin = try PluginFixture.instance("FedAdam")
    _ = try PluginFixture.aggregate(plugin, global: [1, 2, 3], [PluginFixture.update(0, [1, 1, 1])])
    let message = PluginFixture.errorText { _ = try PluginFixture.aggregate(plugin, global: [1], [PluginFixture.update(0, [1])]) }
    #expect(message?.contains("the optimizer state holds 3 parameters, the model has 1") == true, "\(message ?? "")")
  }

  @Test func configUsesFlowersNamesAndDefaults() throws {
    let keys = try PluginFixture.library("FedYogi").descriptor.configKeys
    #expect(keys.map(\.key) == ["seed", "eta", "eta_l", "beta_1", "beta_2", "tau"])
    #expect(keys.map(\.defaultJSON) == ["0", "0.01", "0.0316", "0.9", "0.99", "0.001"])
    let wrong = PluginFixture.errorText { _ = try PluginFixture.instance("FedAdagrad", #"{"beta_1": 0.9}"#) }
    #expect(wrong?.contains(#"unknown config key "beta_1""#) == true)
  }
}
