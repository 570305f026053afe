import FedHostCore
import Foundation
import Testing

@Suite struct ModelGradientTests {
  /// The oracle's float32 gradient against float64 central differences of an independent model.
  @Test(arguments: [
    ([5, 7, 6, 1], 0),  // sigmoid + BCE
    ([5, 7, 6, 1], 1),  // first layer frozen
    ([5, 8, 6, 4], 0),  // softmax + CE
    ([5, 8, 6, 4], 2),
  ])
  func gradientMatchesFiniteDifferences(widths: [Int], frozenLayers: Int) throws {
    let architecture = try MLPArchitecture(widths: widths)
    let samples = randomSamples(count: 6, width: widths[0], classCount: architecture.classCount, seed: 3)
    let weights = parametersWithBiases(architecture, seed: 11)
    let rows = [0, 2, 3, 5]
    let gradient = ParameterVector(count: architecture.parameterCount)
    let trainer = MLPTrainer(architecture: architecture)
    let loss = try trainer.lossAndGradient(at: weights, samples: samples, rows: rows,
                                           frozenLayerCount: frozenLayers, into: gradient)

    let reference = ReferenceMLP(architecture: architecture)
    let doubles = weights.array.map(Double.init)
    #expect(abs(loss - reference.meanLoss(doubles, samples: samples, rows: rows)) < 1e-6)
    let expected = reference.finiteDifferenceGradient(doubles, samples: samples, rows: rows)
    let frozenEnd = architecture.prefixParameterCount(layers: frozenLayers)
    for index in 0..<architecture.parameterCount {
      if index < frozenEnd {
        #expect(gradient[index] == 0, "frozen parameter \(index)")
      } else {
        #expect(abs(Double(gradient[index]) - expected[index]) <= 1e-5 + 1e-3 * abs(expected[index]),
                "parameter \(index): \(gradient[index]) vs \(expected[index])")
      }
    }
  }

  @Test func wholeSampleSetIsTheDefaultRows() throws {
    let architecture = try MLPArchitecture(widths: [3, 4, 1])
    let samples = randomSamples(count: 5, width: 3, classCount: 2, seed: 1)
    let weights = parametersWithBiases(architecture, seed: 2)
    let trainer = MLPTrainer(architecture: architecture)
    let all = ParameterVector(count: architecture.parameterCount)
    let listed = ParameterVector(count: architecture.parameterCount)
    let lossAll = try trainer.lossAndGradient(at: weights, samples: samples, into: all)
    let lossListed = try trainer.lossAndGradient(at: weights, samples: samples, rows: Array(0..<5), into: listed)
    #expect(lossAll == lossListed)
    #expect(bitPatterns(all) == bitPatterns(listed))
  }

  @Test func inferenceAgreesWithTheReferenceModel() throws {
    let architecture = try MLPArchitecture(widths: [5, 8, 6, 4])
    let samples = randomSamples(count: 6, width: 5, classCount: 4, seed: 9)
    let weights = parametersWithBiases(architecture, seed: 5)
    let trainer = MLPTrainer(architecture: architecture)
    let probabilities = try trainer.probabilities(weights, for: samples)
    #expect(probabilities.count == 6 * 4)
    for row in 0..<6 {
      let rowProbabilities = probabilities[(row * 4)..<(row * 4 + 4)]
      #expect(abs(rowProbabilities.reduce(0, +) - 1) < 1e-6)
      // −log p(label) is the reference loss.
      let label = Int(samples.labels[row])
      let expected = ReferenceMLP(architecture: architecture)
        .loss(weights.array.map(Double.init), features: samples.row(row).map(Double.init), label: label)
      #expect(abs(-log(Double(rowProbabilities[row * 4 + label])) - expected) < 1e-5)
    }
    let evaluation = try trainer.evaluate(weights, on: samples)
    let reference = ReferenceMLP(architecture: architecture)
      .meanLoss(weights.array.map(Double.init), samples: samples, rows: Array(0..<6))
    #expect(abs(evaluation.meanLoss - reference) < 1e-6)
    let predicted = (0..<6).map { row in (0..<4).max { probabilities[row * 4 + $0] < probabilities[row * 4 + $1] }! }
    let correct = (0..<6).filter { predicted[$0] == Int(samples.labels[$0]) }.count
    #expect(evaluation.accuracy == Double(correct) / 6)
  }

  @Test func predictMatchesBatchProbabilities() throws {
    let architecture = MLPArchitecture.paper
    let samples = randomSamples(count: 3, width: 9, classCount: 2, seed: 4)
    let weights = architecture.initialParameters(seed: 4)
    let trainer = MLPTrainer(architecture: architecture)
    let batch = try trainer.probabilities(weights, for: samples)
    var single: Float = 0
    for row in 0..<3 {
      try Array(samples.row(row)).withUnsafeBufferPointer { features in
        try withUnsafeMutablePointer(to: &single) {
          try trainer.predict(weights, features: features, into: UnsafeMutableBufferPointer(start: $0, count: 1))
        }
      }
      #expect(single == batch[row])
    }
  }
}
