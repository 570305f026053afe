import FedHostCore
import Testing

@Suite struct ModelErrorTests {
  let architecture = try! MLPArchitecture(widths: [3, 4, 1])
  let trainer = MLPTrainer(architecture: try! MLPArchitecture(widths: [3, 4, 1]))

  @Test func badInputsThrowTypedOneLineErrors() throws {
    let parameters = architecture.initialParameters(seed: 1)
    let good = randomSamples(count: 4, width: 3, classCount: 2, seed: 1)
    let wide = randomSamples(count: 4, width: 5, classCount: 2, seed: 1)
    let badLabel = Samples(features: good.features, labels: [0, 1, 2, 0], width: 3)
    let empty = Samples(features: [], labels: [], width: 3)

    #expect(throws: ModelError.sampleWidthMismatch(expected: 3, actual: 5)) {
      try trainer.train(parameters, on: wide)
    }
    #expect(throws: ModelError.labelOutOfRange(row: 2, label: 2, classCount: 2)) {
      try trainer.evaluate(parameters, on: badLabel)
    }
    #expect(throws: ModelError.noSamples) { try trainer.train(parameters, on: empty) }
    #expect(throws: ModelError.parameterCountMismatch(expected: 21, actual: 5)) {
      try trainer.probabilities(ParameterVector(count: 5), for: good)
    }
    #expect(throws: ModelError.rowOutOfRange(row: 9, count: 4)) {
      try trainer.lossAndGradient(at: parameters, samples: good, rows: [0, 9],
                                  into: ParameterVector(count: 21))
    }
    for options in [TrainingOptions(epochs: 0), TrainingOptions(batchSize: 0),
                    TrainingOptions(frozenLayerCount: 3), TrainingOptions(optimizer: .sgd(learningRate: -1)),
                    TrainingOptions(optimizer: .adam(learningRate: 0.1, beta1: 1))] {
      #expect(throws: ModelError.self) { try trainer.train(parameters, on: good, options: options) }
    }
    let message = ModelError.sampleWidthMismatch(expected: 3, actual: 5).description
    #expect(message == "samples have 5 features per row, the model's input width is 3")
    #expect(!message.contains("\n"))
  }
}
