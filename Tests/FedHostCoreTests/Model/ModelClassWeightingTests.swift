import FedHostCore
import Testing

@Suite("Class-weighted training loss")
struct ModelClassWeightingTests {
  @Test func balancedWeightsByHand() {
    // 3 of class 0, 1 of class 1: 4/(2·3) and 4/(2·1) = 2, at the cap.
    #expect(ClassWeighting.balanced.weights(labels: [0, 0, 0, 1], classCount: 2) == [Float(4) / 6, 2])
    // 6 rows over 3 classes: 6/3 (capped at 2), 6/6, 6/9.
    #expect(ClassWeighting.balanced.weights(labels: [0, 1, 1, 2, 2, 2], classCount: 3) == [2, 1, Float(6) / 9])
    // 9 rows, class 1 once: 9/2 is capped; an absent class weighs 1.
    #expect(ClassWeighting.balanced.weights(labels: [0, 0, 0, 0, 0, 0, 0, 0, 1], classCount: 3)
      == [Float(9) / 24, 2, 1])
    #expect(ClassWeighting.none.weights(labels: [0, 1], classCount: 2) == nil)
  }

  /// One full-batch SGD step moves every parameter by −lr·∂L_w/∂θ, where L_w = (1/n)·Σ w_yᵢ·lossᵢ;
  /// central differences of L_w (from per-class mean losses) check it.
  @Test(arguments: [1, 3])
  func oneStepFollowsTheWeightedLossGradient(classes: Int) throws {
    let architecture = try MLPArchitecture(widths: [4, 6, classes == 1 ? 1 : classes])
    var generator = SeededGenerator(seed: 8)
    let labelCount = max(2, classes)
    let labels: [Int32] = (0..<24).map { $0 < 16 ? 0 : Int32(1 + $0 % (labelCount - 1)) }
    let samples = Samples(features: (0..<(24 * 4)).map { _ in Float.random(in: -1...1, using: &generator) },
                          labels: labels, width: 4)
    let weights = [Float(0.5), 2, 1.25].prefix(labelCount).map { $0 }
    let trainer = MLPTrainer(architecture: architecture)
    let start = architecture.initialParameters(seed: 3)

    func weightedLoss(_ parameters: ParameterVector) throws -> Double {
      try (0..<labelCount).reduce(0.0) { total, label in
        let rows = labels.indices.filter { labels[$0] == Int32(label) }
        let mean = try trainer.evaluate(parameters, on: samples.subset(rows)).meanLoss
        return total + Double(weights[label]) * mean * Double(rows.count) / Double(labels.count)
      }
    }
    let learningRate: Float = 1e-2
    let stepped = start.copy()
    _ = try trainer.train(stepped, on: samples, options: TrainingOptions(
      optimizer: .sgd(learningRate: learningRate), epochs: 1, batchSize: 24, shuffle: false, classWeights: weights))
    let unweighted = start.copy()
    _ = try trainer.train(unweighted, on: samples, options: TrainingOptions(
      optimizer: .sgd(learningRate: learningRate), epochs: 1, batchSize: 24, shuffle: false))
    var differsFromUnweighted = false
    for index in stride(from: 0, to: architecture.parameterCount, by: 5) {
      let step = 1e-3 as Float
      let plus = start.copy(), minus = start.copy()
      plus[index] += step
      minus[index] -= step
      let numeric = (try weightedLoss(plus) - weightedLoss(minus)) / Double(2 * step)
      let analytic = Double(start[index] - stepped[index]) / Double(learningRate)
      #expect(abs(numeric - analytic) <= 2e-3 + 2e-2 * abs(numeric), "parameter \(index): \(analytic) vs \(numeric)")
      if stepped[index] != unweighted[index] { differsFromUnweighted = true }
    }
    #expect(differsFromUnweighted)
  }

  @Test func badWeightsAreRefused() throws {
    let architecture = try MLPArchitecture(widths: [2, 3, 1])
    let samples = Samples(features: [0, 1, 1, 0], labels: [0, 1], width: 2)
    for weights in [[Float(1)], [1, 0], [1, .nan]] {
      #expect(throws: ModelError.self) {
        try MLPTrainer(architecture: architecture).train(architecture.initialParameters(seed: 1), on: samples,
                                                         options: TrainingOptions(classWeights: weights))
      }
    }
  }
}
