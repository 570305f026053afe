import FedHostCore
import Foundation
import Testing

/// One epoch on the paper model against the independent numpy trainer
/// (`Tests/Fixtures/model/make_training_fixture.py`, same formula-made weights and data).
@Suite struct ModelTrainingReferenceTests {
  struct Fixture: Decodable {
    struct Case: Decodable {
      var learning_rate: Double
      var batch_size: Int
      var frozen_layers: Int
      var mean_loss: Double
      var parameter_sum: Double
      var update_abs_sum: Double
      var sample_values: [Double]
    }
    var widths: [Int]
    var sample_count: Int
    var sample_indices: [Int]
    var cases: [String: Case]
  }

  static let fixture: Fixture = {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../Fixtures/model/training_reference.json")
    return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
  }()

  /// Tolerances: float32 rounding differs between the two (fused multiply-adds, summation order).
  @Test(arguments: [("adam_batch1", 2e-7), ("adam_batch16_frozen2", 2e-6)])
  func oneEpochMatchesNumpy(name: String, parameterTolerance: Double) throws {
    let fixture = Self.fixture
    let reference = try #require(fixture.cases[name])
    let architecture = try MLPArchitecture(widths: fixture.widths)
    #expect(architecture == .paper)
    let samples = hashedSamples(count: fixture.sample_count, width: architecture.inputWidth)
    let start = hashedInitialParameters(architecture)
    let parameters = start.copy()
    let options = TrainingOptions(optimizer: .adam(learningRate: Float(reference.learning_rate)),
                                  batchSize: reference.batch_size, shuffle: false,
                                  frozenLayerCount: reference.frozen_layers)
    let summary = try MLPTrainer(architecture: architecture).train(parameters, on: samples, options: options)

    #expect(abs(summary.epochLosses[0] - reference.mean_loss) < 1e-8)
    let final = parameters.array.map(Double.init)
    #expect(abs(final.reduce(0, +) - reference.parameter_sum) < 1e-3)
    let updateSum = zip(final, start.array).map { abs($0 - Double($1)) }.reduce(0, +)
    #expect(abs(updateSum / reference.update_abs_sum - 1) < 1e-5)
    let worst = zip(fixture.sample_indices, reference.sample_values)
      .map { abs(final[$0] - $1) }.max()!
    #expect(worst < parameterTolerance, "max |Δp| \(worst)")
  }
}
