import FedHostCore
import Testing

/// Power-of-Choice's selection and server step against hand-computed values.
@Suite("Power-of-Choice plugin")
struct PowerOfChoicePluginTests {
  private static let losses: [Double] = [0.1, 0.9, 0.5, 0.9, 0.2, 0.7]
  private var selection: ClientSelection { ClientSelection(sampleCounts: [10, 20, 30, 40, 50, 60]) { Self.losses[Int($0)] } }

  @Test func withEveryClientACandidateTheHighestLossesTrainTiesToTheLowerID() throws {
    let plugin = try PluginFixture.instance("PowerOfChoice", #"{"candidates": 6}"#)
    let round = RoundContext(round: 0, roundCount: 1, clientCount: 6, sampled: [0, 2, 4])
    let global = ParameterVector([0])
    #expect(try plugin.selectClients(round, global: global, count: 3, selection: selection) == [1, 3, 5])
    let one = RoundContext(round: 0, roundCount: 1, clientCount: 6, sampled: [4])
    #expect(try plugin.selectClients(one, global: global, count: 1, selection: selection) == [1])
  }

  @Test func fewerCandidatesThanClientsPerRoundIsRefused() throws {
    let plugin = try PluginFixture.instance("PowerOfChoice", #"{"candidates": 2}"#)
    let round = RoundContext(round: 0, roundCount: 1, clientCount: 6, sampled: [0, 2, 4])
    let message = PluginFixture.errorText {
      _ = try plugin.selectClients(round, global: ParameterVector([0]), count: 3, selection: selection)
    }
    #expect(message?.contains("candidates 2 is below the 3 clients per round") == true, "\(message ?? "")")
  }

  @Test func aFailingLossOracleIsTheHostsErrorNotThePlugins() throws {
    let plugin = try PluginFixture.instance("PowerOfChoice")
    struct Unreadable: Error {}
    let failing = ClientSelection(sampleCounts: [1, 1, 1]) { _ in throw Unreadable() }
    #expect(throws: Unreadable.self) {
      _ = try plugin.selectClients(RoundContext(round: 0, roundCount: 1, clientCount: 3, sampled: [0]),
                                   global: ParameterVector([0]), count: 1, selection: failing)
    }
  }

  @Test func theServerTakesThePlainMeanOfTheChosenDeltas() throws {
    let plugin = try PluginFixture.instance("PowerOfChoice")
    let result = try PluginFixture.aggregate(plugin, global: [1, 1], [
      PluginFixture.update(1, [2, 0], samples: 100), PluginFixture.update(3, [0, 4], samples: 1),
    ])
    expectClose(result.global, [2, 3])
    expectClose(result.weights, [0.5, 0.5])
  }
}
