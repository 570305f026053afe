import FedHostCore
import Foundation

/// The formula `Tests/Fixtures/model/make_training_fixture.py` also implements: a SplitMix64
/// finalizer of `index·φ + salt`, top 53 bits as a double in [0, 1).
func hashedUnit(_ index: Int, salt: UInt64) -> Double {
  var z = UInt64(index) &* 0x9E37_79B9_7F4A_7C15 &+ salt
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  z ^= z >> 31
  return Double(z >> 11) * 0x1p-53
}

/// Glorot-uniform weights from the hash (salt 1), zero biases — the fixture's initial model.
func hashedInitialParameters(_ architecture: MLPArchitecture) -> ParameterVector {
  let parameters = ParameterVector(count: architecture.parameterCount)
  for layer in architecture.layers {
    let limit = (6 / Double(layer.inputWidth + layer.outputWidth)).squareRoot()
    for index in layer.weightOffset..<layer.biasOffset {
      parameters[index] = Float((hashedUnit(index, salt: 1) * 2 - 1) * limit)
    }
  }
  return parameters
}

/// The fixture's data: features uniform in ±√3 (salt 2), labels from the hash's top bit (salt 3).
func hashedSamples(count: Int, width: Int) -> Samples {
  let features = (0..<(count * width)).map { Float((hashedUnit($0, salt: 2) * 2 - 1) * 3.0.squareRoot()) }
  let labels = (0..<count).map { Int32(hashedUnit($0, salt: 3) >= 0.5 ? 1 : 0) }
  return Samples(features: features, labels: labels, width: width)
}

/// Random samples for any head: features from a seeded generator, labels in `0..<classCount`.
func randomSamples(count: Int, width: Int, classCount: Int, seed: UInt64) -> Samples {
  var generator = SeededGenerator(seed: seed)
  let features = (0..<(count * width)).map { _ in Float(generator.nextUnit() * 2 - 1) }
  let labels = (0..<count).map { _ in Int32(generator.nextIndex(below: classCount)) }
  return Samples(features: features, labels: labels, width: width)
}

/// Seeded initial parameters with small nonzero biases, so no test sits on a ReLU kink.
func parametersWithBiases(_ architecture: MLPArchitecture, seed: UInt64) -> ParameterVector {
  let parameters = architecture.initialParameters(seed: seed)
  var generator = SeededGenerator(seed: seed &+ 1)
  for layer in architecture.layers {
    for index in layer.biasOffset..<layer.end { parameters[index] = Float(generator.nextUnit() * 0.2 - 0.1) }
  }
  return parameters
}

/// A float64 MLP written straight from the documented layout: the independent reference for
/// losses and finite-difference gradients.
struct ReferenceMLP {
  let architecture: MLPArchitecture

  /// Mean cross-entropy over `rows` at `weights`.
  func meanLoss(_ weights: [Double], samples: Samples, rows: [Int]) -> Double {
    rows.map { loss(weights, features: samples.row($0).map(Double.init), label: Int(samples.labels[$0])) }
      .reduce(0, +) / Double(rows.count)
  }

  func loss(_ weights: [Double], features: [Double], label: Int) -> Double {
    var activations = features
    for (index, layer) in architecture.layers.enumerated() {
      var output = (0..<layer.outputWidth).map { weights[layer.biasOffset + $0] }
      for input in 0..<layer.inputWidth {
        for unit in 0..<layer.outputWidth {
          output[unit] += activations[input] * weights[layer.weightOffset + input * layer.outputWidth + unit]
        }
      }
      activations = index < architecture.layerCount - 1 ? output.map { max($0, 0) } : output
    }
    if architecture.outputWidth == 1 {
      let probability = 1 / (1 + exp(-activations[0]))
      return label == 1 ? -log(probability) : -log(1 - probability)
    }
    let largest = activations.max()!
    let total = activations.map { exp($0 - largest) }.reduce(0, +)
    return log(total) + largest - activations[label]
  }

  /// Central differences of `meanLoss` in float64.
  func finiteDifferenceGradient(_ weights: [Double], samples: Samples, rows: [Int],
                                step: Double = 1e-6) -> [Double] {
    var probe = weights
    return (0..<weights.count).map { index in
      probe[index] = weights[index] + step
      let above = meanLoss(probe, samples: samples, rows: rows)
      probe[index] = weights[index] - step
      let below = meanLoss(probe, samples: samples, rows: rows)
      probe[index] = weights[index]
      return (above - below) / (2 * step)
    }
  }
}

func bitPatterns(_ vector: ParameterVector) -> [UInt32] { vector.array.map(\.bitPattern) }
