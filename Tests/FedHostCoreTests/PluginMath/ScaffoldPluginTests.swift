import FedHostCore
import PluginAPI
import Testing

/// SCAFFOLD's server and client against hand-computed values (Karimireddy et al. 2020, option II).
@Suite("SCAFFOLD plugin")
struct ScaffoldPluginTests {
  private static func update(_ client: UInt32, _ delta: [Float], controlChange: [Float]) -> ClientUpdate {
    ClientUpdate(clientID: client, delta: ParameterVector(delta), sampleCount: 5, auxUp: ParameterVector(controlChange))
  }

  @Test func theServerAveragesDeltasAndUpdatesBothControlsByHand() throws {
    let plugin = try PluginFixture.instance("SCAFFOLD")
    let round0 = RoundContext(round: 0, roundCount: 2, clientCount: 4, sampled: [0, 2])
    let global = ParameterVector([0, 0])
    // Before any round every control is 0: aux_down = (c_i, c) = (0, 0).
    #expect(try plugin.prepareClient(round0, clientID: 0, global: global).array == [0, 0, 0, 0])
    let output = ParameterVector(count: 2)
    let outcome = try plugin.aggregate(round0, global: global, updates: [
      Self.update(0, [1, 2], controlChange: [0.4, -0.8]), Self.update(2, [3, 0], controlChange: [0.2, 0.4]),
    ], into: output)
    // x += mean of the deltas (η_g = 1, uniform over the sampled clients).
    expectClose(output.array, [2, 1])
    expectClose(outcome.weights, [0.5, 0.5])
    // c += Σ Δc_i / N with N = 4 clients: (0.6, −0.4) / 4 = (0.15, −0.1); ‖c‖ = √0.0325.
    #expect(abs((outcome.metrics["control_norm"] ?? 0) - 0.0325.squareRoot()) < 1e-6)
    let round1 = RoundContext(round: 1, roundCount: 2, clientCount: 4, sampled: [0, 1])
    // c_0 = Δc_0; client 1 has not trained yet, c_1 = 0.
    expectClose(try plugin.prepareClient(round1, clientID: 0, global: output).array, [0.4, -0.8, 0.15, -0.1])
    expectClose(try plugin.prepareClient(round1, clientID: 1, global: output).array, [0, 0, 0.15, -0.1])
  }

  @Test func aClientWithoutAControlUpdateIsRefused() throws {
    let plugin = try PluginFixture.instance("SCAFFOLD")
    let context = RoundContext(round: 0, roundCount: 1, clientCount: 2, sampled: [1])
    let message = PluginFixture.errorText {
      _ = try plugin.aggregate(context, global: ParameterVector([0]), updates: [PluginFixture.update(1, [1])],
                               into: ParameterVector(count: 1))
    }
    #expect(message?.contains("client 1 sent 0 aux_up floats, the strategy declares 1") == true, "\(message ?? "")")
  }

  /// One local step (the batch holds every row) from x: y = x − η(g(x) + c − c_i), and the
  /// control update (x − y)/η − c is g(x) − c_i, since K = 1.
  @Test func theClientStepIsCorrectedByTheControlsByHand() throws {
    let plugin = try PluginFixture.instance("SCAFFOLD")
    let architecture = try MLPArchitecture(widths: [2, 3, 1])
    let global = architecture.initialParameters(seed: 3)
    let rows = Samples(features: [0.5, -1, 1, 0.25, -0.5, 0.75, 0, 1], labels: [1, 0, 1, 0], width: 2)
    let learningRate: Float = 0.1
    let count = global.count
    func train(clientControl: Float, serverControl: Float) throws -> (trained: [Float], controlChange: [Float]) {
      let down = ParameterVector([Float](repeating: clientControl, count: count) + [Float](repeating: serverControl, count: count))
      let job = LocalTraining(
        clientID: 0, round: 0, global: global, globalArchitecture: architecture, subModel: nil, coverage: nil,
        options: TrainingOptions(optimizer: .sgd(learningRate: learningRate), epochs: 1, batchSize: 8, seed: 1),
        train: rows, query: rows, auxDown: down, auxUpLength: count)
      let result = try plugin.trainLocally(job, trainer: MLPTrainer(architecture: architecture))
      return (result.trained.array, try #require(result.auxUp).array)
    }
    let plain = try train(clientControl: 0, serverControl: 0)
    let pushed = try train(clientControl: 0, serverControl: 0.5)
    let pulled = try train(clientControl: 0.5, serverControl: 0)
    // Without controls the update is plain SGD, and Δc_i = (x − y)/η = g(x).
    let gradient = (0..<count).map { Double((global[$0] - plain.trained[$0]) / learningRate) }
    expectClose(plain.controlChange, gradient, tolerance: 1e-5)
    // c − c_i = +0.5 moves every element by −η·0.5, c − c_i = −0.5 by +η·0.5.
    expectClose(pushed.trained, plain.trained.map { Double($0) - 0.05 }, tolerance: 1e-6)
    expectClose(pulled.trained, plain.trained.map { Double($0) + 0.05 }, tolerance: 1e-6)
    expectClose(pushed.controlChange, gradient, tolerance: 1e-5)
    expectClose(pulled.controlChange, gradient.map { $0 - 0.5 }, tolerance: 1e-5)
  }
}

