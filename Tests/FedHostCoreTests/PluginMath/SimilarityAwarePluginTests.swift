import FedHostCore
import Foundation
import Testing

@Suite("SimilarityAware (Fed-Meta-Align) plugin")
struct SimilarityAwarePluginTests {
  @Test func describesItself() throws {
    let descriptor = try PluginFixture.library("SimilarityAware").descriptor
    #expect(descriptor.id == "org.fedhost.similarity-aware")
    #expect(descriptor.kinds == [.aggregator, .initializer])
    #expect(descriptor.configKeys.map(\.key)
              == ["seed", "similarity_floor", "server_learning_rate", "serial_rounds", "serial_epochs"])
  }

  @Test func threeClientsByHandWithANegativeCosineOnTheFloor() throws {
    let plugin = try PluginFixture.instance("SimilarityAware", #"{"server_learning_rate": 0.5}"#)
    // Δ1 = [1, 0], L = 0 → s1 = 1;  Δ2 = [1, 1], L = 1 → s2 = 0.5;  Δ3 = [−3, 0], L = 3 → s3 = 0.25
    // Δ̄ = [(1 + 1 − 3)/3, (0 + 1 + 0)/3] = [−1/3, 1/3],  ‖Δ̄‖ = √2/3
    // θ1 = (−1/3)/(1·√2/3) = −1/√2 → floor 0.1;  θ2 = 0 → floor 0.1;  θ3 = 1/(3·√2/3) = 1/√2
    // w = [1·0.1, 0.5·0.1, 0.25/√2] = [0.1, 0.05, 0.1767767],  ŵ = w / Σw
    // global + α Σ ŵ_t Δ_t with α = 0.5
    let raw = [0.1, 0.05, 0.25 / 2.0.squareRoot()]
    let weights = raw.map { $0 / raw.reduce(0, +) }
    let step = [weights[0] * 1 + weights[1] * 1 + weights[2] * -3, weights[1] * 1]
    let result = try PluginFixture.aggregate(plugin, global: [1, 2], [
      PluginFixture.update(0, [1, 0], metrics: ["query_loss": 0]),
      PluginFixture.update(1, [1, 1], metrics: ["query_loss": 1]),
      PluginFixture.update(2, [-3, 0], metrics: ["query_loss": 3, "query_accuracy": 0.5]),
    ])
    expectClose(result.weights, weights, tolerance: 1e-7)
    expectClose(result.global, [1 + 0.5 * step[0], 2 + 0.5 * step[1]])
  }

  @Test func oneClientTakesTheWholeStep() throws {
    let result = try PluginFixture.aggregate(try PluginFixture.instance("SimilarityAware"), global: [1, 1],
                                             [PluginFixture.update(3, [0.5, -1], metrics: ["query_loss": 0.2])])
    #expect(result.global == [1.5, 0])
    #expect(result.weights == [1])
  }

  @Test(arguments: [false, true])
  func matchesTheReferenceOnRandomData(masked: Bool) throws {
    try expectReferenceResult(clients: 6, count: 2_500, masked: masked, seed: masked ? 23 : 19)
  }

  /// Several element blocks (the kernels walk 8192 elements at a time, fewer with many
  /// clients), client counts that are not multiples of the four compared at once, a length
  /// that is not a multiple of the SIMD width, and (6 × 400,003) several parallel tasks.
  @Test(arguments: [(7, 20_003, false), (13, 16_389, true), (150, 9_001, false), (150, 9_001, true),
                    (6, 400_003, true), (6, 400_003, false)])
  func matchesTheReferenceAcrossBlocks(clients: Int, count: Int, masked: Bool) throws {
    try expectReferenceResult(clients: clients, count: count, masked: masked, seed: UInt64(clients * 2 + (masked ? 1 : 0)))
  }

  /// Random deltas, a shared drift plus noise of varying size so that the cosines spread
  /// over and under the floor (client 0 unmasked, the others covering ~70 % when `masked`),
  /// against the reference: plain mean per element over covering clients, cosines over each
  /// client's covered elements, w = s·max(c, θ), normalized, per-element renormalized update.
  private func expectReferenceResult(clients: Int, count: Int, masked: Bool, seed: UInt64,
                                     sourceLocation: SourceLocation = #_sourceLocation) throws {
    var random = TestRandom(seed: seed)
    let global = random.vector(count)
    let drift = random.vector(count, scale: 0.02)
    let updates = (0..<clients).map { client in
      let noise = random.vector(count, scale: 0.01 * Float(client % 8 + 1))
      return PluginFixture.update(UInt32(client), zip(drift, noise).map(+), samples: 10,
                           coverage: masked && client != 0 ? random.mask(count, coverage: 0.7) : nil,
                           metrics: ["query_loss": Double(random.below(100)) / 50])
    }
    let plugin = try PluginFixture.instance("SimilarityAware", #"{"similarity_floor": 0.2, "server_learning_rate": 0.8}"#)
    let result = try PluginFixture.aggregate(plugin, global: global, updates)

    let mean = (0..<count).map { element -> Double in
      let covering = updates.filter { Reference.covers($0, element) }
      return covering.isEmpty ? 0 : covering.reduce(0) { $0 + Double($1.delta[element]) } / Double(covering.count)
    }
    let raw = updates.map { update in
      let score = 1 / (1 + update.metrics["query_loss"]!)
      let cosine = Reference.cosine(Reference.delta(update), mean) { Reference.covers(update, $0) }
      return score * max(0.2, cosine)
    }
    let weights = raw.map { $0 / raw.reduce(0, +) }
    expectClose(result.weights, weights, tolerance: 1e-6, sourceLocation: sourceLocation)
    expectClose(result.global, Reference.weightedUpdate(global: global, updates: updates, weights: weights, step: 0.8),
                tolerance: 1e-5, sourceLocation: sourceLocation)
  }

  @Test func elementsNobodyCoversAreUnchanged() throws {
    let result = try PluginFixture.aggregate(try PluginFixture.instance("SimilarityAware"), global: [1, 2, 3], [
      PluginFixture.update(0, [1, 0, .nan], coverage: [1, 1, 0], metrics: ["query_loss": 0]),
      PluginFixture.update(1, [1, 2, 0], coverage: [1, 1, 0], metrics: ["query_loss": 0]),
    ])
    #expect(result.global[2] == 3)
  }

  @Test func rejectsMissingQueryLossAndBadDeltas() throws {
    let plugin = try PluginFixture.instance("SimilarityAware")
    let missing = PluginFixture.errorText {
      _ = try PluginFixture.aggregate(plugin, global: [0], [
        PluginFixture.update(0, [1], metrics: ["query_loss": 0.1]), PluginFixture.update(9, [1]),
      ])
    }
    #expect(missing?.contains(#"client 9 did not report the metric "query_loss""#) == true)
    #expect(missing?.contains("FHP_E_INVALID") == true)
    let nan = PluginFixture.errorText {
      _ = try PluginFixture.aggregate(plugin, global: [0, 0], [PluginFixture.update(4, [.nan, 1], metrics: ["query_loss": 0])])
    }
    #expect(nan?.contains("client 4") == true)
    #expect(nan?.contains("FHP_E_NUMERIC") == true)
    let none = PluginFixture.errorText { _ = try PluginFixture.aggregate(plugin, global: [0], []) }
    #expect(none?.contains("no updates") == true)
    let unknown = PluginFixture.errorText {
      _ = try PluginFixture.library("SimilarityAware").makeInstance(configJSON: #"{"floor": 0.1}"#)
    }
    #expect(unknown?.contains(#"unknown config key "floor""#) == true)
  }

  /// Records the initializer's callbacks.
  private final class CallLog {
    var calls: [String] = []
  }

  private func serialRun(_ plugin: PluginInstance, clients: Int) throws -> (calls: [String], weights: [Float]) {
    let log = CallLog()
    let weights = ParameterVector([0, 0])
    let services = InitializerServices(
      clientCount: clients,
      trainClient: { client, weights, epochs in
        log.calls.append("train \(client) x\(epochs)")
        // Order-sensitive, so the final model depends on the visiting order.
        weights[0] = weights[0] * 0.5 + Float(client)
        weights[1] += 1
        return 0.1
      },
      evaluateClient: { client, _ in
        log.calls.append("evaluate \(client)")
        return (0.2, 0.9)
      })
    try plugin.initialize(weights: weights, services: services)
    return (log.calls, weights.array)
  }

  @Test func serialMetaInitializationVisitsASeededPermutationPerRound() throws {
    let config = #"{"seed": 42, "serial_rounds": 5, "serial_epochs": 2}"#
    let first = try serialRun(try PluginFixture.instance("SimilarityAware", config), clients: 6)
    #expect(first.calls.count == 5 * 6 * 2)
    let trained = first.calls.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
    let evaluated = first.calls.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
    // Each train is followed by the evaluation of the same client, with serial_epochs epochs.
    for (train, evaluate) in zip(trained, evaluated) {
      #expect(train.hasSuffix(" x2"))
      #expect(train.split(separator: " ")[1] == evaluate.split(separator: " ")[1])
    }
    let orders = (0..<5).map { round in trained[(round * 6)..<(round * 6 + 6)].map { Int($0.split(separator: " ")[1])! } }
    for order in orders { #expect(order.sorted() == Array(0..<6)) }
    #expect(Set(orders.map { $0.description }).count > 1, "a fresh order each round")
    #expect(first.weights[1] == 30)

    // Reproducible with the same seed, different with another.
    let again = try serialRun(try PluginFixture.instance("SimilarityAware", config), clients: 6)
    #expect(again.calls == first.calls)
    #expect(again.weights == first.weights)
    let other = try serialRun(try PluginFixture.instance("SimilarityAware", #"{"seed": 43, "serial_rounds": 5, "serial_epochs": 2}"#),
                              clients: 6)
    #expect(other.calls != first.calls)
  }

  @Test func generatorStateSurvivesSaveAndLoad() throws {
    let config = #"{"seed": 7, "serial_rounds": 2}"#
    let original = try PluginFixture.instance("SimilarityAware", config)
    _ = try serialRun(original, clients: 5)
    let state = try original.saveState()
    let restored = try PluginFixture.instance("SimilarityAware", config)
    try restored.loadState(state)
    #expect(try serialRun(restored, clients: 5).calls == (try serialRun(original, clients: 5).calls))

    let foreign = PluginFixture.errorText {
      try restored.loadState(try PluginFixture.instance("MEFLVariance").saveState())
    }
    #expect(foreign?.contains("FHP_E_STATE") == true)
    let truncated = PluginFixture.errorText { try restored.loadState(Array(state.dropLast())) }
    #expect(truncated?.contains("truncated") == true)
  }
}
