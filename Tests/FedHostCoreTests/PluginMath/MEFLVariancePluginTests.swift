import FedHostCore
import Foundation
import Testing

@Suite("MEFLVariance (MEFL-EOA + Meta-GDP) plugin")
struct MEFLVariancePluginTests {
  @Test func describesItself() throws {
    let descriptor = try PluginFixture.library("MEFLVariance").descriptor
    #expect(descriptor.id == "org.fedhost.mefl-variance")
    #expect(descriptor.kinds == [.aggregator, .clientHook])
    let defaults = Dictionary(uniqueKeysWithValues: descriptor.configKeys.map { ($0.key, $0.defaultJSON) })
    #expect(defaults["variance_mode"] == #""v1""#)
    #expect(defaults["direction_ema"] == "0.9")
    #expect(defaults["similarity_floor"] == "0.1")
    #expect(defaults["inner_steps"] == "5")
  }

  @Test func floorOneAndEqualVariancesGiveTheUniformMean() throws {
    let plugin = try PluginFixture.instance("MEFLVariance", #"{"similarity_floor": 1, "variance_mode": "v3"}"#)
    // s_k = max(cos, 1) = 1 and v_k = 0.5 for all → ω equal → q = 1/3 each, whatever n_k.
    // global + mean: [1 + (3 − 3 + 6)/3, 0 + (0 + 3 + 0)/3] = [3, 1]
    let result = try PluginFixture.aggregate(plugin, global: [1, 0], [
      PluginFixture.update(0, [3, 0], samples: 1, metrics: ["grad_var": 0.5]),
      PluginFixture.update(1, [-3, 3], samples: 50, metrics: ["grad_var": 0.5]),
      PluginFixture.update(2, [6, 0], samples: 7, metrics: ["grad_var": 0.5]),
    ])
    expectClose(result.weights, [1.0 / 3, 1.0 / 3, 1.0 / 3], tolerance: 1e-12)
    expectClose(result.global, [3, 1])
  }

  @Test func twoRoundsOfV1ByHand() throws {
    let plugin = try PluginFixture.instance("MEFLVariance")
    let updates = [PluginFixture.update(0, [1, 0]), PluginFixture.update(1, [0, 2])]
    // Round 1: m unset → r = FedAvg mean = [0.5, 1], ‖r‖² = 1.25.
    //   cos1 = 0.5/(1·√1.25), cos2 = 2/(2·√1.25) = 2·cos1 (both above the 0.1 floor)
    //   u1 = ((1−0.5)² + (0−1)²)/2 = 0.625,  u2 = ((0−0.5)² + (2−1)²)/2 = 0.625 → v = u
    //   equal v → q ∝ cos: q = [1/3, 2/3];  D = [1/3, 4/3];  m = D.
    let first = try PluginFixture.aggregate(plugin, global: [0, 0], updates)
    expectClose(first.weights, [1.0 / 3, 2.0 / 3], tolerance: 1e-7)
    expectClose(first.global, [1.0 / 3, 4.0 / 3])
    // Round 2 (same deltas): r = m = [1/3, 4/3], ‖m‖ = √17/3.
    //   cos1 = (1/3)/(1·√17/3) = 1/√17,  cos2 = (8/3)/(2·√17/3) = 4/√17
    //   u1 = ((2/3)² + (4/3)²)/2 = 10/9,  u2 = ((1/3)² + (2/3)²)/2 = 5/18
    //   v1 = 0.9·0.625 + 0.1·10/9,  v2 = 0.9·0.625 + 0.1·5/18
    //   ε = 1e-8·median(v1, v2) + 1e-12,  ω = cos/(v + ε),  q = ω/Σω
    let v1: Double = 0.9 * 0.625 + 0.1 * (10.0 / 9)
    let v2: Double = 0.9 * 0.625 + 0.1 * (5.0 / 18)
    let epsilon: Double = 1e-8 * (v1 + v2) / 2 + 1e-12
    let root17: Double = 17.0.squareRoot()
    let omega: [Double] = [(1 / root17) / (v1 + epsilon), (4 / root17) / (v2 + epsilon)]
    let q: [Double] = omega.map { $0 / (omega[0] + omega[1]) }
    let second = try PluginFixture.aggregate(plugin, global: [0, 0], updates)
    expectClose(second.weights, q, tolerance: 1e-6)
    expectClose(second.global, [q[0], 2 * q[1]])
  }

  /// An independent Double implementation of EOA (algorithms.md §1.3), V1 or V2, with
  /// coverage masks: every per-client sum runs over the client's covered elements, the means
  /// over the clients covering each element.
  private struct ReferenceEOA {
    let mode: String
    var direction: [Double]? = nil
    var variance: [UInt32: Double] = [:]
    var mean: [UInt32: [Double]] = [:]

    mutating func round(global: [Float], updates: [ClientUpdate]) -> (global: [Double], weights: [Double]) {
      let count = global.count
      let p = Reference.sampleWeights(updates)
      let deltas = updates.map(Reference.delta)
      let reference: [Double]
      if let direction, direction.contains(where: { $0 != 0 }) {
        reference = direction
      } else {
        reference = Self.weightedMean(p, updates, deltas, count)
      }
      var omega: [Double] = []
      var variances: [Double] = []
      for (update, delta) in zip(updates, deltas) {
        let covered = (0..<count).filter { Reference.covers(update, $0) }
        let similarity = max(Reference.cosine(delta, reference) { Reference.covers(update, $0) }, 0.1)
        var observation = 0.0
        if mode == "v1" {
          observation = Self.meanSquaredDistance(delta, reference, over: covered)
        } else {
          var updated = mean[update.clientID] ?? [Double](repeating: 0, count: count)
          for index in covered { updated[index] = 0.9 * updated[index] + 0.1 * delta[index] }
          mean[update.clientID] = updated
          observation = Self.meanSquaredDistance(delta, updated, over: covered)
        }
        let v = variance[update.clientID].map { 0.9 * $0 + 0.1 * observation } ?? observation
        variance[update.clientID] = v
        variances.append(v)
        omega.append(similarity)
      }
      let sorted = variances.sorted()
      let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2]
        : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
      let epsilon = 1e-8 * median + 1e-12
      omega = zip(omega, variances).map { $0 / ($1 + epsilon) }
      let q = omega.map { $0 / omega.reduce(0, +) }
      let step = Self.weightedMean(q, updates, deltas, count)
      direction = direction.map { old in (0..<count).map { 0.9 * old[$0] + 0.1 * step[$0] } } ?? step
      return ((0..<count).map { Double(global[$0]) + step[$0] }, q)
    }

    static func meanSquaredDistance(_ a: [Double], _ b: [Double], over indices: [Int]) -> Double {
      var sum = 0.0
      for index in indices { sum += (a[index] - b[index]) * (a[index] - b[index]) }
      return sum / Double(max(indices.count, 1))
    }

    /// Σ w_k v_k[e] / Σ_{k covers e} w_k per element; 0 where nobody covers e.
    static func weightedMean(_ weights: [Double], _ updates: [ClientUpdate], _ vectors: [[Double]], _ count: Int)
      -> [Double]
    {
      (0..<count).map { index in
        var sum = 0.0, weightSum = 0.0
        for (weight, (update, vector)) in zip(weights, zip(updates, vectors)) where Reference.covers(update, index) {
          sum += weight * vector[index]
          weightSum += weight
        }
        return weightSum > 0 ? sum / weightSum : 0
      }
    }
  }

  /// Four rounds, a varying subset of clients each. The larger cases span several element
  /// blocks (8192 each), have client counts that are not multiples of four, lengths that are
  /// not multiples of the SIMD width, and coverage masks; the last spans several parallel tasks.
  @Test(arguments: [("v1", 777, 5, false), ("v2", 777, 5, false), ("v1", 20_003, 7, false), ("v2", 20_003, 7, true),
                    ("v1", 16_389, 10, true), ("v1", 400_003, 6, true)])
  func matchesTheReferenceOverSeveralRounds(mode: String, count: Int, clientCount: Int, masked: Bool) throws {
    var random = TestRandom(seed: UInt64(count + clientCount) + (mode == "v1" ? 31 : 37))
    let plugin = try PluginFixture.instance("MEFLVariance", #"{"variance_mode": "\#(mode)"}"#)
    var reference = ReferenceEOA(mode: mode)
    var global = random.vector(count)
    let drift = random.vector(count, scale: 0.05)
    // Client 0 always trains the whole model, so that every element is covered.
    let masks = (0..<clientCount).map { client in masked && client != 0 ? random.mask(count, coverage: 0.6) : nil }
    for round in 0..<4 {
      // A shared drift plus client noise, a varying subset of clients each round.
      let clients = (0..<clientCount).filter { $0 == 0 || ($0 + round) % 4 != 0 }
      let updates = clients.map { client in
        PluginFixture.update(UInt32(client), zip(drift, random.vector(count, scale: 0.02 * Float(client + 1))).map(+),
                             samples: UInt64(10 + client), coverage: masks[client])
      }
      let result = try PluginFixture.aggregate(plugin, global: global, updates, round: round)
      let expected = reference.round(global: global, updates: updates)
      expectClose(result.weights, expected.weights, tolerance: 1e-5)
      expectClose(result.global, expected.global, tolerance: 1e-5)
      global = result.global
    }
  }

  @Test func saveLoadThenNextRoundIsBitIdentical() throws {
    var random = TestRandom(seed: 41)
    let count = 300
    let config = #"{"variance_mode": "v2", "seed": 5}"#
    func round(_ index: Int) -> [ClientUpdate] {
      (0..<3).map { PluginFixture.update(UInt32($0 + index % 2), random.vector(count, scale: 0.1), samples: 4) }
    }
    let uninterrupted = try PluginFixture.instance("MEFLVariance", config)
    var global = random.vector(count)
    for index in 0..<3 { global = try PluginFixture.aggregate(uninterrupted, global: global, round(index)).global }
    let state = try uninterrupted.saveState()
    let resumed = try PluginFixture.instance("MEFLVariance", config)
    try resumed.loadState(state)
    #expect(try resumed.saveState() == state)
    let next = round(3)
    let expected = try PluginFixture.aggregate(uninterrupted, global: global, next)
    let actual = try PluginFixture.aggregate(resumed, global: global, next)
    #expect(actual.global == expected.global)
    #expect(actual.weights == expected.weights)
  }

  @Test func fallsBackToFedAvgWeightsWhenTheSumIsNotPositive() throws {
    // Floor 0, r = FedAvg mean = 0.25·3 + 0.75·(−1) = 0 → every cosine is 0 → Σω = 0
    // → fall back to FedAvg's p = [0.25, 0.75]; global + 0.25·3 + 0.75·(−1) = 0.
    let plugin = try PluginFixture.instance("MEFLVariance", #"{"similarity_floor": 0}"#)
    let result = try PluginFixture.aggregate(plugin, global: [0], [
      PluginFixture.update(0, [3], samples: 1), PluginFixture.update(1, [-1], samples: 3),
    ])
    #expect(result.weights == [0.25, 0.75])
    #expect(result.global == [0])
  }

  @Test func rejectsMissingGradVarianceAndNaN() throws {
    let v3 = try PluginFixture.instance("MEFLVariance", #"{"variance_mode": "v3"}"#)
    let missing = PluginFixture.errorText { _ = try PluginFixture.aggregate(v3, global: [0], [PluginFixture.update(8, [1])]) }
    #expect(missing?.contains(#"client 8 did not report the metric "grad_var""#) == true)
    let plugin = try PluginFixture.instance("MEFLVariance")
    let nan = PluginFixture.errorText {
      _ = try PluginFixture.aggregate(plugin, global: [0, 0], [PluginFixture.update(1, [0, 1]), PluginFixture.update(2, [.nan, 0])])
    }
    #expect(nan?.contains("client 2") == true)
    let badMode = PluginFixture.errorText {
      _ = try PluginFixture.library("MEFLVariance").makeInstance(configJSON: #"{"variance_mode": "v4"}"#)
    }
    #expect(badMode?.contains(#"config key "variance_mode" must be one of "v1", "v2", "v3"; got "v4""#) == true)
  }

  // MARK: Meta-GDP through train_local

  /// Quadratic losses: L(w; rows) = ½‖w − mean(rows)‖², gradient w − mean(rows).
  private struct QuadraticClient {
    let support: [[Float]]
    let query: [[Float]]

    func services(_ clientID: UInt32, reported: MetricBox? = nil) -> ClientServices {
      ClientServices(
        clientID: clientID, supportCount: support.count, queryCount: query.count,
        gradient: { split, rows, weights, gradient in
          let data = split == .support ? support : query
          let chosen = rows.map { $0.map { data[Int($0)] } } ?? data
          var loss = 0.0
          for index in 0..<data[0].count {
            let target = chosen.reduce(0) { $0 + $1[index] } / Float(chosen.count)
            gradient[index] = weights[index] - target
            loss += 0.5 * Double(gradient[index] * gradient[index])
          }
          return loss
        },
        reportMetric: { key, value in reported?.values[key] = value })
    }
  }

  private final class MetricBox: @unchecked Sendable {
    var values: [String: Double] = [:]
  }

  private func train(_ plugin: PluginInstance, _ client: QuadraticClient, id: UInt32 = 0, from start: [Float],
                     reported: MetricBox? = nil) throws -> [Float] {
    var weights = start
    try weights.withUnsafeMutableBufferPointer {
      try plugin.trainLocal(weights: $0, services: client.services(id, reported: reported))
    }
    return weights
  }

  @Test func oneMetaStepAndTheAlphaUpdateByHand() throws {
    let plugin = try PluginFixture.instance(
      "MEFLVariance", #"{"inner_steps": 1, "alpha_init": 0.1, "meta_learning_rate": 0.5, "variance_mode": "v3"}"#)
    // Support mean c_s = [0, 0], query mean c_q = [1, 0]; the batch (10) covers the split.
    let client = QuadraticClient(support: [[1, -1], [-1, 1]], query: [[1, 0]])
    // g0 = θ − c_s = [1, 2];  φ1 = θ − α g0 = [0.9, 1.8];  G_θ = φ1 − c_q = [−0.1, 1.8]
    // θ' = θ − 0.5 G_θ = [1.05, 1.1];  G_α = −G_θ ⊙ g0 = [0.1, −3.6];  σ² = 0 (one gradient)
    let reported = MetricBox()
    let trained = try train(plugin, client, from: [1, 2], reported: reported)
    expectClose(trained, [1.05, 1.1])
    #expect(reported.values["grad_var"] == 0)
    // One client → q = 1: α ← α − η_g β_loc G_α = 0.1 − 0.5·[0.1, −3.6] = [0.05, 1.9]
    _ = try PluginFixture.aggregate(plugin, global: [1, 2], [
      PluginFixture.update(0, [0.05, -0.9], metrics: ["grad_var": 0]),
    ])
    // With the new α from θ = [1, 2]: φ1 = [1 − 0.05, 2 − 1.9·2] = [0.95, −1.8],
    // G_θ = [−0.05, −1.8], θ' = [1 + 0.025, 2 + 0.9] = [1.025, 2.9]
    expectClose(try train(plugin, client, from: [1, 2]), [1.025, 2.9])
  }

  /// The α step over several element blocks and five clients, against the formula in
  /// Double: one inner step on full batches gives G_α,k = −G_θ,k ⊙ g_k with g_k = θ − c_s,k
  /// and G_θ,k = θ − α⊙g_k − c_q,k; α' = α − η_g·β_loc·Σ_k q_k G_α,k (every client sent one).
  /// α' then shows in the next training: θ' = θ − β_loc·(θ − α'⊙g_0 − c_q,0).
  @Test func alphaStepAcrossBlocksMatchesTheFormula() throws {
    var random = TestRandom(seed: 61)
    let count = 20_003, beta = 0.5, alpha = 0.1
    let plugin = try PluginFixture.instance(
      "MEFLVariance", #"{"inner_steps": 1, "alpha_init": 0.1, "meta_learning_rate": 0.5, "variance_mode": "v3"}"#)
    let clients = (0..<5).map { _ in
      QuadraticClient(support: (0..<3).map { _ in random.vector(count) }, query: (0..<2).map { _ in random.vector(count) })
    }
    let theta = random.vector(count)
    func mean(_ rows: [[Float]]) -> [Double] {
      (0..<count).map { index in Double(rows.reduce(0) { $0 + $1[index] } / Float(rows.count)) }
    }
    var updates: [ClientUpdate] = []
    for (index, client) in clients.enumerated() {
      let trained = try train(plugin, client, id: UInt32(index), from: theta)
      updates.append(PluginFixture.update(UInt32(index), zip(trained, theta).map(-), samples: 3,
                                          metrics: ["grad_var": Double(index + 1) * 0.01]))
    }
    let q = try PluginFixture.aggregate(plugin, global: theta, updates).weights

    var newAlpha = [Double](repeating: alpha, count: count)
    for (weight, client) in zip(q, clients) {
      let support = mean(client.support), query = mean(client.query)
      for index in 0..<count {
        let g = Double(theta[index]) - support[index]
        let thetaGradient = Double(theta[index]) - alpha * g - query[index]
        newAlpha[index] -= beta * weight * -(thetaGradient * g)
      }
    }
    let support = mean(clients[0].support), query = mean(clients[0].query)
    let expected = (0..<count).map { index -> Double in
      let g = Double(theta[index]) - support[index]
      return Double(theta[index]) - beta * (Double(theta[index]) - Double(Float(newAlpha[index])) * g - query[index])
    }
    expectClose(try train(plugin, clients[0], from: theta), expected, tolerance: 1e-5)
  }

  @Test func gradientVarianceOfTwoInnerStepsByHand() throws {
    let plugin = try PluginFixture.instance(
      "MEFLVariance", #"{"inner_steps": 2, "alpha_init": 0.1, "variance_mode": "v3"}"#)
    // Full-batch support gradients: g0 = θ − c = [1, 2], g1 = (1 − α) g0 = [0.9, 1.8].
    // Population variance per coordinate ((g0 − g1)/2)² = [0.0025, 0.01]; mean 0.00625.
    let reported = MetricBox()
    _ = try train(plugin, QuadraticClient(support: [[0, 0]], query: [[0, 0]]), from: [1, 2], reported: reported)
    // float32 gradients: equal to ~1e-6 relative.
    #expect(abs((reported.values["grad_var"] ?? -1) - 0.00625) < 1e-8)
  }

  /// Results written from many threads, read after they all finished.
  private final class ConcurrentResults: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<[Float], Error>?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func store(_ index: Int, _ result: Result<[Float], Error>) { lock.withLock { results[index] = result } }
    func values() throws -> [[Float]] { try lock.withLock { try results.map { try $0?.get() ?? [] } } }
  }

  @Test func concurrentClientsGiveTheSameResultAsSerialOnes() throws {
    var random = TestRandom(seed: 53)
    let count = 64
    let clients = (0..<8).map { _ in
      QuadraticClient(support: (0..<12).map { _ in random.vector(count) }, query: (0..<5).map { _ in random.vector(count) })
    }
    let start = random.vector(count)
    let config = #"{"inner_steps": 3, "inner_batch_size": 4, "seed": 9}"#

    func federatedRound(concurrently: Bool) throws -> (trained: [[Float]], global: [Float]) {
      let plugin = try PluginFixture.instance("MEFLVariance", config)
      var trained = [[Float]](repeating: [], count: clients.count)
      if concurrently {
        let results = ConcurrentResults(count: clients.count)
        DispatchQueue.concurrentPerform(iterations: clients.count) { index in
          results.store(index, Result { try train(plugin, clients[index], id: UInt32(index), from: start) })
        }
        trained = try results.values()
      } else {
        for index in clients.indices { trained[index] = try train(plugin, clients[index], id: UInt32(index), from: start) }
      }
      let updates = trained.enumerated().map { index, weights in
        PluginFixture.update(UInt32(index), zip(weights, start).map(-), samples: 12)
      }
      let global = try PluginFixture.aggregate(plugin, global: start, updates).global
      // The α learned this round shows in the next client's training.
      return (trained + [try train(plugin, clients[0], from: global)], global)
    }
    let serial = try federatedRound(concurrently: false)
    let parallel = try federatedRound(concurrently: true)
    #expect(serial.trained == parallel.trained)
    #expect(serial.global == parallel.global)
    #expect(serial.trained[0] != serial.trained[1], "clients draw different mini-batches")
  }
}
