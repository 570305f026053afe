import FedHostCore
import Testing

/// Quantizer, integer inference and sizing on models built for the purpose.
@Suite("Export: quantization and integer inference")
struct QuantizationTests {
  static let device = EmbeddedFederation.make(seed: EmbeddedFederation.defaultSeed).prepare(seed: 0).devices[1]

  /// The textbook int8 FULLY_CONNECTED: zero point inside the loop, one unit at a time, with
  /// `FixedPoint` directly. The fast kernel must agree with it exactly.
  static func referenceOutputs(_ model: QuantizedMLP, input: [Int8], rounding: FixedPoint.Rounding) -> [Int8] {
    var activation = input
    for layer in model.layers {
      let multipliers = layer.multipliers
      activation = (0..<layer.outputWidth).map { unit in
        var sum = layer.biases[unit]
        for row in 0..<layer.inputWidth {
          sum &+= Int32(layer.weights[unit * layer.inputWidth + row]) &* (Int32(activation[row]) - layer.input.zeroPoint)
        }
        let scaled = FixedPoint.multiply(sum, by: multipliers[unit], rounding: rounding) + layer.output.zeroPoint
        return Int8(min(max(scaled, layer.activationRange.lowerBound), layer.activationRange.upperBound))
      }
    }
    return activation
  }

  @Test(arguments: WeightGranularity.allCases, FixedPoint.Rounding.allCases)
  func fastKernelEqualsTheTextbookKernel(granularity: WeightGranularity, rounding: FixedPoint.Rounding) throws {
    let architecture = try MLPArchitecture(widths: [9, 37, 20, 5, 1])
    let parameters = architecture.initialParameters(seed: 7)
    for index in 0..<parameters.count where index % 3 == 0 { parameters[index] += 0.05 }  // non-zero biases
    let model = try Quantizer.quantize(parameters, architecture: architecture, calibration: Self.device.phase3Train,
                                       granularity: granularity)
    let inference = Int8Inference(model, rounding: rounding)
    let inputs = try inference.quantizedInputs(Self.device.test)
    let outputs = inference.outputs(forQuantizedInputs: inputs)
    let table = Int8Inference.logisticTable(input: model.logits)
    for row in 0..<Self.device.test.count {
      let input = Array(inputs[(row * 9)..<((row + 1) * 9)])
      let expected = Self.referenceOutputs(model, input: input, rounding: rounding)
      #expect(inference.logits(for: input) == expected, "row \(row)")
      #expect(outputs[row] == table[Int(expected[0]) + 128])
    }
  }

  @Test func weightsAreSymmetricAndScaledPerUnit() throws {
    let architecture = try MLPArchitecture(widths: [9, 16, 1])
    let parameters = architecture.initialParameters(seed: 2)
    let model = try Quantizer.quantize(parameters, architecture: architecture, calibration: Self.device.phase3Train)
    let first = model.layers[0]
    #expect(first.weightScales.count == 16 && first.weights.allSatisfy { $0 >= -127 })
    for unit in 0..<16 {
      let largest = (0..<9).map { abs(parameters[$0 * 16 + unit]) }.max()!
      #expect(abs(first.weightScales[unit] - largest / 127) <= largest * 1e-6)
      #expect((0..<9).contains { abs(first.weights[unit * 9 + $0]) == 127 })
    }
    #expect(first.output.zeroPoint == -128 && first.fusedRelu)
    #expect(!model.layers[1].fusedRelu && model.head == .logistic)
  }

  @Test func unquantizableModelsAreOneLineErrors() throws {
    let architecture = try MLPArchitecture(widths: [9, 4, 1])
    let parameters = architecture.initialParameters(seed: 1)
    let empty = Samples(features: [], labels: [], width: 9)
    #expect(throws: ExportError.emptyCalibrationSet) {
      try Quantizer.quantize(parameters, architecture: architecture, calibration: empty)
    }
    parameters[5] = .nan
    let error = #expect(throws: ExportError.self) {
      try Quantizer.quantize(parameters, architecture: architecture, calibration: Self.device.phase3Train)
    }
    #expect(error == .nonFiniteParameter(layer: 0, index: 5, value: .nan) || "\(error!)".contains("parameter 5"))
    #expect(!"\(error!)".contains("\n"))
  }

  /// Post-training quantization of the paper model trained on a device costs at most half a point
  /// of test accuracy (the embedded machine-failure device: the harder of the two).
  @Test func paperModelLosesAtMostHalfAPoint() throws {
    let architecture = MLPArchitecture.paper
    let parameters = architecture.initialParameters(seed: 4)
    let trainer = MLPTrainer(architecture: architecture)
    _ = try trainer.train(parameters, on: Self.device.train,
                          options: TrainingOptions(optimizer: .adam(learningRate: 1e-3), epochs: 20, batchSize: 16))
    let floatAccuracy = try trainer.evaluate(parameters, on: Self.device.test).accuracy
    for granularity in WeightGranularity.allCases {
      let model = try Quantizer.quantize(parameters, architecture: architecture, calibration: Self.device.phase3Train,
                                         granularity: granularity)
      let probabilities = try Int8Inference(model).probabilities(for: Self.device.test)
      let int8Accuracy = ClassificationMetrics.binary(probabilities: probabilities, labels: Self.device.test.labels).accuracy
      #expect(floatAccuracy - int8Accuracy <= 0.005, "\(granularity): \(floatAccuracy) → \(int8Accuracy)")
    }
  }

  @Test func paperModelFitsInFiftyKiBWithPerTensorWeights() {
    let perTensor = DeviceFootprint(architecture: .paper, granularity: .perTensor, description: "FedHost int8 model for line-fault")
    let perChannel = DeviceFootprint(architecture: .paper, granularity: .perChannel, description: "FedHost int8 model for line-fault")
    #expect(perTensor.flashBytes <= 50 * 1024)
    #expect(perChannel.flashBytes < 56_000 + 2_068)  // Keras' 56,000 B holds no biases; ours does
    #expect(perTensor.activationBytes == 256 + 128)
  }

  @Test func widthRateSearchFindsTheLargestFittingSubModel() throws {
    let full = DeviceFootprint(architecture: .paper, granularity: .perTensor)
    #expect(try DeviceFootprint.largestRate(for: .paper, budget: MemoryBudget(flashBytes: 1 << 20, ramBytes: 1 << 20),
                                            granularity: .perTensor)?.rate == 1)
    let budget = MemoryBudget(flashBytes: full.flashBytes / 3, ramBytes: full.arenaBytes)
    let found = try #require(try DeviceFootprint.largestRate(for: .paper, budget: budget, granularity: .perTensor))
    #expect(found.footprint.fits(budget) && found.rate < 1)
    let larger = DeviceFootprint(architecture: try MLPArchitecture.paper.scaled(rate: found.rate + 0.01), granularity: .perTensor)
    #expect(!larger.fits(budget))
    #expect(try DeviceFootprint.largestRate(for: .paper, budget: MemoryBudget(flashBytes: 100, ramBytes: 100)) == nil)
  }
}
