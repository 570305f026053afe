import FedHostCore
import Foundation
import Testing

/// The plain-C example plugin, compiled with the system C compiler into a temporary
/// directory exactly as its README says, then loaded through the host's loader.
@Suite("C example: robust aggregator")
struct RobustAggregatorTests {
  static let library = Result {
    try PluginFixture.compileCPlugin("Examples/robust-aggregator/robust_aggregator.c", name: "RobustAggregator",
                                     standard: "c99")
  }

  private func instance(_ config: String = "{}") throws -> PluginInstance {
    try Self.library.get().makeInstance(configJSON: config)
  }

  @Test func describesItself() throws {
    let descriptor = try Self.library.get().descriptor
    #expect(descriptor.id == "org.fedhost.example.robust-aggregator")
    #expect(descriptor.kinds == .aggregator)
    #expect(descriptor.configKeys.map(\.key) == ["method", "trim", "seed"])
  }

  @Test func medianOfThreeByHand() throws {
    // e0: {1, −2, 4} → 1;  e1: {5, 0, 1} → 1;  e2: {3, 10, −1} → 3.  Sample counts do not matter.
    let result = try PluginFixture.aggregate(try instance(), global: [10, 20, 30], [
      PluginFixture.update(0, [1, 5, 3], samples: 100),
      PluginFixture.update(1, [-2, 0, 10]),
      PluginFixture.update(2, [4, 1, -1]),
    ])
    #expect(result.global == [11, 21, 33])
    // Shares (ABI 1.2): the medians came from clients 0, 2 and 0.
    expectClose(result.weights, [2.0 / 3, 0, 1.0 / 3])
  }

  @Test func sharesOfAnEvenMedianAndOfATrimmedMeanByHand() throws {
    // {−1, 2, 4, 100}: the middle pair (clients 2 and 3) shares the element.
    let median = try PluginFixture.aggregate(try instance(#"{"method": "median"}"#), global: [0],
                                             [-1, 100, 2, 4].enumerated().map { PluginFixture.update(UInt32($0), [$1]) })
    expectClose(median.weights, [0, 0, 0.5, 0.5])
    // trim 0.25 of 4 cuts one at each end: e0 {0, 1, 2, 3} keeps clients 1, 2; e1 {3, 2, 1, 0} keeps 1, 2 as well;
    // a tie (e2: all 5) keeps the middle two by client order, 1 and 2.
    let trimmed = try PluginFixture.aggregate(try instance(#"{"method": "trimmed_mean", "trim": 0.25}"#), global: [0, 0, 0],
                                              (0..<4).map { PluginFixture.update(UInt32($0), [Float($0), Float(3 - $0), 5]) })
    expectClose(trimmed.weights, [0, 0.5, 0.5, 0])
  }

  @Test func medianOfAnEvenCountAveragesTheMiddlePair() throws {
    // {−1, 2, 4, 100} → (2 + 4)/2 = 3
    let result = try PluginFixture.aggregate(try instance(#"{"method": "median"}"#), global: [0],
                                             [-1, 100, 2, 4].enumerated().map { PluginFixture.update(UInt32($0), [$1]) })
    #expect(result.global == [3])
  }

  @Test func trimmedMeanByHand() throws {
    // n = 5, trim 0.2 → cut ⌊0.2·5⌋ = 1 from each end: {−50, 1, 2, 3, 90} → (1 + 2 + 3)/3 = 2
    let result = try PluginFixture.aggregate(try instance(#"{"method": "trimmed_mean", "trim": 0.2, "seed": 3}"#),
                                             global: [1], [90, 1, -50, 3, 2].enumerated().map {
                                               PluginFixture.update(UInt32($0), [$1])
                                             })
    #expect(result.global == [3])
  }

  @Test func coverageIsHonoured() throws {
    // e0: all three → median {1, 2, 9} = 2;  e1: clients 0, 2 → (4 + 6)/2 = 5;  e2: nobody → kept (NaN ignored)
    let result = try PluginFixture.aggregate(try instance(), global: [0, 0, 7], [
      PluginFixture.update(0, [1, 4, .nan], coverage: [1, 1, 0]),
      PluginFixture.update(1, [2, 100, 0], coverage: [1, 0, 0]),
      PluginFixture.update(2, [9, 6, 0], coverage: [1, 1, 0]),
    ])
    #expect(result.global == [2, 5, 7])
  }

  @Test func errorsAreReportedWithMessages() throws {
    let plugin = try instance()
    let nan = PluginFixture.errorText {
      _ = try PluginFixture.aggregate(plugin, global: [0, 0], [PluginFixture.update(0, [0, 1]), PluginFixture.update(5, [0, .nan])])
    }
    #expect(nan?.contains("FHP_E_NUMERIC") == true)
    #expect(nan?.contains("client 5: delta[1] is not finite") == true)
    let none = PluginFixture.errorText { _ = try PluginFixture.aggregate(plugin, global: [0], []) }
    #expect(none?.contains("no updates") == true)
    let unknown = PluginFixture.errorText { _ = try instance(#"{"methd": "median"}"#) }
    #expect(unknown?.contains(#"unknown config key "methd" (accepted: method, trim, seed)"#) == true)
    let badTrim = PluginFixture.errorText { _ = try instance(#"{"method": "trimmed_mean", "trim": 0.5}"#) }
    #expect(badTrim?.contains(#"config key "trim" must be in [0, 0.5)"#) == true)
    let badMethod = PluginFixture.errorText { _ = try instance(#"{"method": 1}"#) }
    #expect(badMethod?.contains(#"config key "method" must be a string"#) == true)
    #expect(try instance().saveState().isEmpty, "stateless: save_state is NULL")
  }

  /// 5 clients × 30,001 elements: eight tasks of 4096 elements (the last one short). The bits
  /// must not depend on the host's threads, nor on whether the host has any (ABI 1.0).
  @Test func sameBitsOnOneThreadTwoThreadsAndAnOlderHost() throws {
    var random = TestRandom(seed: 17)
    let global = random.vector(30_001)
    let updates = (0..<5).map { client in
      PluginFixture.update(UInt32(client), random.vector(30_001, scale: 0.1),
                           coverage: client == 3 ? random.mask(30_001, coverage: 0.5) : nil)
    }
    func run(threads: Int, hostABIMinor: UInt32) throws -> [Float] {
      let plugin = try Self.library.get().makeInstance(configJSON: #"{"method": "trimmed_mean"}"#, threads: threads,
                                                        hostABIMinor: hostABIMinor)
      return try PluginFixture.aggregate(plugin, global: global, updates).global
    }
    let serial = try run(threads: 1, hostABIMinor: hostABIMinor)
    #expect(serial == (try run(threads: 2, hostABIMinor: hostABIMinor)))
    #expect(serial == (try run(threads: 2, hostABIMinor: 0)))
    // And the values are the statistic: element 9 by hand (no mask there for client 3 or not).
    let covering = updates.filter { $0.coverage.map { $0.pointer[9] != 0 } ?? true }.map { $0.delta[9] }.sorted()
    let cut = Int(0.2 * Double(covering.count))
    let kept = covering[cut..<(covering.count - cut)]
    #expect(serial[9] == Float(Double(global[9]) + kept.reduce(0.0) { $0 + Double($1) } / Double(kept.count)))
  }

  /// Two non-finite deltas in different tasks: on any number of threads the message names the
  /// first in element order.
  @Test func theFirstBadElementIsReportedWhicheverThreadMetIt() throws {
    var deltaA = [Float](repeating: 0.5, count: 30_001), deltaB = deltaA
    deltaA[25_000] = .infinity
    deltaB[5_000] = .nan
    for threads in [1, 2] {
      let plugin = try Self.library.get().makeInstance(threads: threads)
      let message = PluginFixture.errorText {
        _ = try PluginFixture.aggregate(plugin, global: [Float](repeating: 0, count: 30_001),
                                        [PluginFixture.update(4, deltaA), PluginFixture.update(7, deltaB)])
      }
      #expect(message?.contains("client 7: delta[5000] is not finite") == true, "\(threads) threads: \(message ?? "")")
    }
  }
}
