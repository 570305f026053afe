import FedHostCore
import Testing

/// FedMedian, FedTrimmedAvg, Krum, Multi-Krum and Bulyan: PluginKit's coordinate-wise order
/// statistics and pairwise distances. Flower's own implementations are the peer in
/// bridges/flower/tests/test_strategy_library.py; here: hand-computed cases and the conventions
/// for coverage masks and out_weights. All five are stateless.
@Suite("Robust aggregation plugins (FedMedian, FedTrimmedAvg, Krum, MultiKrum, Bulyan)")
struct RobustStrategyPluginTests {
  /// One-element updates with the given deltas, client k having k + 1 samples.
  private func scalars(_ values: [Float]) -> [ClientUpdate] {
    values.enumerated().map { PluginFixture.update(UInt32($0.offset), [$0.element], samples: UInt64($0.offset + 1)) }
  }

  @Test func medianByHandForOddAndEvenCountsAndMasks() throws {
    let median = try PluginFixture.instance("FedMedian")
    // e0: {1, 5, 2, 4} → (2 + 4)/2 = 3;  e1: {7, 9, 8} (client 3 does not cover it) → 8;
    // e2: nobody but client 0 → 6;       e3: nobody → global
    let result = try PluginFixture.aggregate(median, global: [10, 10, 10, 10], [
      PluginFixture.update(0, [1, 7, 6, 0], coverage: [1, 1, 1, 0]),
      PluginFixture.update(1, [5, 9, .nan, .nan], coverage: [1, 1, 0, 0]),
      PluginFixture.update(2, [2, 8, 0, 0], coverage: [1, 1, 0, 0]),
      PluginFixture.update(3, [4, .nan, 0, 0], coverage: [1, 0, 0, 0]),
    ])
    #expect(result.global == [13, 18, 16, 10])
    // Shares over the 3 covered elements: e0 gives clients 2 and 3 ½ each, e1 client 2 all, e2 client 0 all.
    expectClose(result.weights, [1.0 / 3, 0, 0.5, 1.0 / 6])
  }

  @Test func trimmedMeanCutsFloorBetaTimesCountAtEachEnd() throws {
    let trimmed = try PluginFixture.instance("FedTrimmedAvg", #"{"beta": 0.2}"#)
    // ⌊0.2·5⌋ = 1 cut at each end: sorted {−50, 1, 2, 3, 100} → mean(1, 2, 3) = 2
    let result = try PluginFixture.aggregate(trimmed, global: [1], scalars([1, 100, 2, 3, -50]))
    #expect(result.global == [3])
    expectClose(result.weights, [1.0 / 3, 0, 1.0 / 3, 1.0 / 3, 0])
    let refused = PluginFixture.errorText { _ = try PluginFixture.instance("FedTrimmedAvg", #"{"beta": 0.5}"#) }
    #expect(refused?.contains(#"config key "beta" must be below 0.5"#) == true)
  }

  /// Deltas 0, 1, 3, 10; f = 0 → each score sums the 2 nearest squared distances:
  /// client 0: 1 + 9 = 10, client 1: 1 + 4 = 5, client 2: 4 + 9 = 13, client 3: 49 + 81 = 130.
  @Test func krumPicksTheLowestScoreByHand() throws {
    let result = try PluginFixture.aggregate(try PluginFixture.instance("Krum"), global: [2], scalars([0, 1, 3, 10]))
    #expect(result.global == [3])
    #expect(result.weights == [0, 1, 0, 0])
  }

  @Test func multiKrumAveragesTheBestScoresBySampleCount() throws {
    let multiKrum = try PluginFixture.instance("MultiKrum", #"{"num_clients_to_keep": 2}"#)
    // Clients 1 (score 5, 2 samples) and 0 (score 10, 1 sample): 2 + (2·1 + 1·0)/3
    let result = try PluginFixture.aggregate(multiKrum, global: [2], scalars([0, 1, 3, 10]))
    expectClose(result.global, [2 + 2.0 / 3])
    expectClose(result.weights, [1.0 / 3, 2.0 / 3, 0, 0])
  }

  /// 7 clients, f = 1: θ = 5 chosen by Multi-Krum (4 nearest): the deltas 0…4 (scores 30, 15,
  /// 10, 15, 30) beat ±100; the β = 3 values closest to their median 2 are 1, 2, 3 → 2.
  @Test func bulyanSelectsThenAveragesAroundTheMedianByHand() throws {
    let bulyan = try PluginFixture.instance("Bulyan", #"{"num_malicious_clients": 1}"#)
    let result = try PluginFixture.aggregate(bulyan, global: [1], scalars([0, 1, 2, 3, 4, 100, -100]))
    #expect(result.global == [3])
    expectClose(result.weights, [0, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0, 0, 0])
  }

  @Test func bulyanKeepsTheGlobalModelWithTooFewUpdates() throws {
    let bulyan = try PluginFixture.instance("Bulyan", #"{"num_malicious_clients": 1}"#)
    let result = try PluginFixture.aggregate(bulyan, global: [1, 2], [
      PluginFixture.update(0, [1, 1]), PluginFixture.update(1, [2, 2]), PluginFixture.update(2, [3, 3]),
    ])
    #expect(result.global == [1, 2])
    #expect(result.weights == [0, 0, 0])
  }

  /// Distances count an uncovered element as 0, whatever its delta holds: client 1's NaN outside
  /// its mask changes nothing, and Krum applies its delta only where it covers.
  @Test func krumReadsUncoveredElementsAsZero() throws {
    let result = try PluginFixture.aggregate(try PluginFixture.instance("Krum"), global: [5, 5], [
      PluginFixture.update(0, [0, 0]), PluginFixture.update(1, [1, .nan], coverage: [1, 0]),
      PluginFixture.update(2, [3, 0]), PluginFixture.update(3, [10, 0]),
    ])
    #expect(result.global == [6, 5])
    #expect(result.weights == [0, 1, 0, 0])
  }

  @Test(arguments: ["FedMedian", "FedTrimmedAvg", "Krum", "MultiKrum", "Bulyan"])
  func aNonFiniteCoveredDeltaNamesTheClient(plugin name: String) throws {
    let updates = (0..<4).map { PluginFixture.update(UInt32($0), [Float($0), $0 == 2 ? .infinity : 1]) }
    let message = PluginFixture.errorText {
      _ = try PluginFixture.aggregate(try PluginFixture.instance(name), global: [0, 0], updates)
    }
    #expect(message?.contains("client 2: delta[1] is inf") == true, "\(message ?? "no error")")
  }

  /// A larger round against a plain Double reference: median and trimmed mean per element.
  @Test func orderStatisticsMatchAReferenceOnRandomData() throws {
    var random = TestRandom(seed: 23)
    let count = 3_001
    let global = random.vector(count)
    let updates = (0..<9).map { client in
      PluginFixture.update(UInt32(client), random.vector(count, scale: 0.1),
                           coverage: client % 3 == 0 ? random.mask(count, coverage: 0.6) : nil)
    }
    func reference(cut: (Int) -> Int) -> [Double] {
      (0..<count).map { element in
        let values = updates.filter { Reference.covers($0, element) }.map { Double($0.delta[element]) }.sorted()
        let kept = values.dropFirst(cut(values.count)).dropLast(cut(values.count))
        return Double(global[element]) + kept.reduce(0, +) / Double(kept.count)
      }
    }
    let trimmed = try PluginFixture.aggregate(try PluginFixture.instance("FedTrimmedAvg", #"{"beta": 0.25}"#),
                                              global: global, updates)
    expectClose(trimmed.global, reference { Int(0.25 * Double($0)) })
    let median = try PluginFixture.aggregate(try PluginFixture.instance("FedMedian"), global: global, updates)
    expectClose(median.global, reference { ($0 - 1) / 2 })
    expectClose([median.weights.reduce(0, +)], [1])
  }
}
