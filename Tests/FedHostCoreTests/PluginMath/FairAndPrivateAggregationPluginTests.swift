import FedHostCore
import Testing

/// QFedAvg and DPFedAvg (server-side fixed clipping): hand-computed rounds, the coverage
/// conventions, and DPFedAvg's seeded noise across save/load. Flower's own implementations are
/// the peer in bridges/flower/tests/test_strategy_library.py (with the noise's statistics).
@Suite("QFedAvg and DPFedAvg plugins")
struct FairAndPrivateAggregationPluginTests {
  @Test func qFedAvgWeighsByLossToTheQByHand() throws {
    let plugin = try PluginFixture.instance("QFedAvg", #"{"q": 1, "client_learning_rate": 1}"#)
    // L = 1, q = 1: h_k = ‖Δ_k‖² + F_k → h = (1 + 1) + (4 + 3) = 9; c = (F_1, F_2)/h = (1/9, 3/9)
    let result = try PluginFixture.aggregate(plugin, global: [1, 1], [
      PluginFixture.update(0, [1, 0], metrics: ["train_loss": 1]),
      PluginFixture.update(1, [0, 2], metrics: ["train_loss": 3]),
    ])
    expectClose(result.global, [1 + 1.0 / 9, 1 + 6.0 / 9])
    expectClose(result.weights, [0.25, 0.75])
  }

  @Test func qFedAvgNeedsTheTrainLoss() throws {
    let plugin = try PluginFixture.instance("QFedAvg")
    let missing = PluginFixture.errorText { _ = try PluginFixture.aggregate(plugin, global: [1], [PluginFixture.update(4, [1])]) }
    #expect(missing?.contains(#"client 4 did not report the metric "train_loss""#) == true)
    let negative = PluginFixture.errorText {
      _ = try PluginFixture.aggregate(plugin, global: [1], [PluginFixture.update(2, [1], metrics: ["train_loss": -1])])
    }
    #expect(negative?.contains("client 2: train_loss -1.0 is negative") == true)
  }

  @Test func dpClipsEachDeltaToTheNormByHand() throws {
    let plugin = try PluginFixture.instance("DPFedAvg", #"{"clipping_norm": 1}"#)
    // ‖(3, 4)‖ = 5 → s = 0.2 → (0.6, 0.8);  ‖(0.5, 0)‖ = 0.5 → s = 1;  p = (½, ½)
    let result = try PluginFixture.aggregate(plugin, global: [0, 0], [
      PluginFixture.update(0, [3, 4]), PluginFixture.update(1, [0.5, 0]),
    ])
    expectClose(result.global, [0.55, 0.4])
    // Coefficients p·s = (0.1, 0.5), as shares of their sum.
    expectClose(result.weights, [0.1 / 0.6, 0.5 / 0.6])
  }

  /// With masks the norm is over the covered elements and each element is divided by the
  /// covering clients' p_k (not by their clipped weights): e1 = ½·0.2·4 / ½ = 0.8.
  @Test func dpAveragesClippedDeltasOverTheCoveringClients() throws {
    let plugin = try PluginFixture.instance("DPFedAvg", #"{"clipping_norm": 1}"#)
    let result = try PluginFixture.aggregate(plugin, global: [0, 0, 7], [
      PluginFixture.update(0, [3, 4, 0], coverage: [1, 1, 0]), PluginFixture.update(1, [0.5, .nan, 9], coverage: [1, 0, 0]),
    ])
    expectClose(result.global, [0.55, 0.8, 7])
  }

  /// Noise only where some client trained, fresh every round, and the same after save/load.
  @Test func dpNoiseResumesBitIdenticallyAndSparesUncoveredElements() throws {
    let config = #"{"clipping_norm": 0.5, "noise_multiplier": 2, "seed": 9}"#
    var random = TestRandom(seed: 31)
    let count = 20_001
    let global = random.vector(count)
    let mask = (0..<count).map { UInt8($0 < 15_000 ? 1 : 0) }
    let updates = (0..<3).map { PluginFixture.update(UInt32($0), random.vector(count, scale: 0.01), coverage: mask) }
    let uninterrupted = try PluginFixture.instance("DPFedAvg", config)
    let first = try PluginFixture.aggregate(uninterrupted, global: global, updates, round: 0).global
    let state = try uninterrupted.saveState()
    let second = try PluginFixture.aggregate(uninterrupted, global: first, updates, round: 1).global
    #expect(first[15_000...] == global[15_000...])
    #expect(first[..<15_000] != global[..<15_000])

    let resumed = try PluginFixture.instance("DPFedAvg", config)
    try resumed.loadState(state)
    #expect(try PluginFixture.aggregate(resumed, global: first, updates, round: 1).global == second)
    // A fresh instance replays round 0's noise, not round 1's.
    let fresh = try PluginFixture.instance("DPFedAvg", config)
    #expect(try PluginFixture.aggregate(fresh, global: first, updates, round: 1).global != second)
  }
}
