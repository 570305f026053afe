import FedHostCore
import Foundation
import Testing

/// One step on a single sigmoid unit, z = w0·x0 + w1·x1 + b, checked against hand formulas.
@Suite struct ModelOptimizerTests {
  let unit = try! MLPArchitecture(widths: [2, 1])
  let start: [Float] = [0.5, -0.25, 0.1]  // w0, w1, b
  let samples = Samples(features: [1, 2, -1, 0.5], labels: [1, 0], width: 2)

  /// dLoss/d(w0, w1, b) for one row: (σ(z) − y)·(x0, x1, 1).
  func handGradient(row: Int) -> [Double] {
    let x = [Double(samples.features[row * 2]), Double(samples.features[row * 2 + 1])]
    let z = Double(start[0]) * x[0] + Double(start[1]) * x[1] + Double(start[2])
    let error = 1 / (1 + exp(-z)) - Double(samples.labels[row])
    return [error * x[0], error * x[1], error]
  }

  func trainOneStep(_ optimizer: Optimizer, rows: [Int], batchSize: Int) throws -> [Float] {
    let parameters = ParameterVector(start)
    let options = TrainingOptions(optimizer: optimizer, batchSize: batchSize, shuffle: false)
    _ = try MLPTrainer(architecture: unit).train(parameters, on: samples.subset(rows), options: options)
    return parameters.array
  }

  @Test func adamFirstStep() throws {
    let learningRate = 0.01
    let result = try trainOneStep(.adam(learningRate: Float(learningRate)), rows: [0], batchSize: 1)
    for (index, g) in handGradient(row: 0).enumerated() {
      // Step 1: m = 0.1·g, v = 0.001·g², α = lr·√(1 − 0.999)/(1 − 0.9).
      let m = 0.1 * g
      let v = 0.001 * g * g
      let alpha = learningRate * (1 - 0.999).squareRoot() / (1 - 0.9)
      let expected = Double(start[index]) - alpha * m / (v.squareRoot() + 1e-7)
      #expect(abs(Double(result[index]) - expected) < 1e-6, "parameter \(index)")
    }
  }

  @Test func sgdStep() throws {
    let result = try trainOneStep(.sgd(learningRate: 0.5), rows: [0], batchSize: 1)
    for (index, g) in handGradient(row: 0).enumerated() {
      #expect(abs(Double(result[index]) - (Double(start[index]) - 0.5 * g)) < 1e-6)
    }
  }

  @Test func miniBatchAveragesTheGradient() throws {
    let result = try trainOneStep(.sgd(learningRate: 0.5), rows: [0, 1], batchSize: 2)
    let mean = zip(handGradient(row: 0), handGradient(row: 1)).map { ($0 + $1) / 2 }
    for (index, g) in mean.enumerated() {
      #expect(abs(Double(result[index]) - (Double(start[index]) - 0.5 * g)) < 1e-6)
    }
  }

  @Test(arguments: [Optimizer.adam(learningRate: 0.01), .sgd(learningRate: 0.1)])
  func frozenLayersKeepTheirBits(optimizer: Optimizer) throws {
    let architecture = try MLPArchitecture(widths: [4, 6, 5, 1])
    let samples = randomSamples(count: 20, width: 4, classCount: 2, seed: 2)
    let parameters = parametersWithBiases(architecture, seed: 3)
    let before = bitPatterns(parameters)
    let options = TrainingOptions(optimizer: optimizer, epochs: 2, batchSize: 3, frozenLayerCount: 2)
    _ = try MLPTrainer(architecture: architecture).train(parameters, on: samples, options: options)
    let after = bitPatterns(parameters)
    let frozenEnd = architecture.prefixParameterCount(layers: 2)
    #expect(after[..<frozenEnd] == before[..<frozenEnd])
    #expect(after[frozenEnd...] != before[frozenEnd...])
  }

  @Test func fusedPathEqualsTheMaterializedGradientPath() throws {
    // A hook that changes nothing forces the unfused path; batch-1 results must be bit-identical.
    let architecture = try MLPArchitecture(widths: [9, 40, 20, 1])
    let samples = randomSamples(count: 50, width: 9, classCount: 2, seed: 5)
    let options = TrainingOptions(optimizer: .adam(learningRate: 1e-3), epochs: 2, seed: 9)
    let trainer = MLPTrainer(architecture: architecture)
    let fused = architecture.initialParameters(seed: 1)
    let unfused = fused.copy()
    let fusedSummary = try trainer.train(fused, on: samples, options: options)
    var hookCalls = 0
    let unfusedSummary = try trainer.train(unfused, on: samples, options: options) { _, _ in hookCalls += 1 }
    #expect(hookCalls == 100)
    #expect(bitPatterns(fused) == bitPatterns(unfused))
    #expect(fusedSummary == unfusedSummary)
  }

  @Test func gradientHookEditsTheStep() throws {
    // A proximal term μ(w − w_start) through the hook, checked against the hand-made SGD step.
    let mu: Float = 0.3
    let parameters = ParameterVector(start)
    let anchor = ParameterVector(start.map { $0 + 1 })
    var seenWeights = [Float]()
    let options = TrainingOptions(optimizer: .sgd(learningRate: 0.5), shuffle: false)
    _ = try MLPTrainer(architecture: unit).train(parameters, on: samples.subset([0]), options: options) {
      weights, gradient in
      seenWeights = Array(weights)
      for index in gradient.indices { gradient[index] += mu * (weights[index] - anchor[index]) }
    }
    #expect(seenWeights == start)
    for (index, g) in handGradient(row: 0).enumerated() {
      let expected = Double(start[index]) - 0.5 * (g + Double(mu) * -1)
      #expect(abs(Double(parameters[index]) - expected) < 1e-6)
    }
  }

  @Test func hookErrorsEndTraining() throws {
    struct Refused: Error {}
    let parameters = ParameterVector(start)
    #expect(throws: Refused.self) {
      _ = try MLPTrainer(architecture: unit).train(parameters, on: samples) { _, _ in throw Refused() }
    }
  }

  @Test func optimizerStateStepsLikeTheTrainer() throws {
    let state = try OptimizerState(optimizer: .adam(learningRate: 0.01), parameterCount: 3)
    let parameters = ParameterVector(start)
    let gradient = ParameterVector(handGradient(row: 0).map(Float.init))
    try state.apply(gradient: UnsafeBufferPointer(gradient.buffer), to: parameters.buffer)
    #expect(state.step == 1)
    #expect(parameters.array == (try trainOneStep(.adam(learningRate: 0.01), rows: [0], batchSize: 1)))
  }

  @Test func learnsASeparableProblem() throws {
    let architecture = try MLPArchitecture(widths: [2, 8, 1])
    var generator = SeededGenerator(seed: 4)
    let features = (0..<400).map { _ in Float(generator.nextUnit() * 2 - 1) }
    let labels = (0..<200).map { Int32(features[$0 * 2] + features[$0 * 2 + 1] > 0 ? 1 : 0) }
    let samples = Samples(features: features, labels: labels, width: 2)
    let parameters = architecture.initialParameters(seed: 1)
    let trainer = MLPTrainer(architecture: architecture)
    let summary = try trainer.train(parameters, on: samples,
                                    options: TrainingOptions(optimizer: .adam(learningRate: 0.01), epochs: 30))
    #expect(summary.steps == 30 * 200)
    #expect(summary.epochLosses.last! < summary.epochLosses.first! / 2)
    #expect(try trainer.evaluate(parameters, on: samples).accuracy > 0.95)
  }
}
