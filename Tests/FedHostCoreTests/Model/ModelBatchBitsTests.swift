import FedHostCore
import Testing

/// Trained parameters and gradients, bit for bit, against checksums the per-sample kernels
/// (before the batched ones, commit "Tests: checksums of trained bits…") produced: the batched
/// kernels must keep every element's reduction order, so the published tables reproduce exactly.
@Suite struct ModelBatchBitsTests {
  /// FNV-1a over the bit patterns: any changed bit changes it.
  static func checksum(_ values: some Sequence<UInt32>) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for value in values {
      for shift in stride(from: 0, to: 32, by: 8) {
        hash = (hash ^ UInt64((value >> UInt32(shift)) & 0xff)) &* 0x0000_0100_0000_01b3
      }
    }
    return hash
  }

  /// 203 rows: every batch size below leaves an odd final batch (203 = 5·40 + 3 = 16·12 + 11 = 64·3 + 11).
  static let samples = hashedSamples(count: 203, width: 9)

  struct Case: CustomTestStringConvertible, Sendable {
    var widths: [Int]
    var batchSize: Int
    var optimizer: Optimizer = .adam(learningRate: 1e-3)
    var frozenLayerCount = 0
    var hook = false
    var expected: UInt64
    var testDescription: String {
      "\(widths) batch \(batchSize) frozen \(frozenLayerCount)\(hook ? " hook" : "") \(optimizer)"
    }
  }

  static let paper = MLPArchitecture.paper.widths
  /// Widths that are not multiples of 16 and a softmax head: the narrow and ragged paths.
  static let ragged = [9, 40, 33, 16, 3]

  static let cases: [Case] = [
    Case(widths: paper, batchSize: 1, expected: 0xcd22eb6fe3c7834c),
    Case(widths: paper, batchSize: 5, expected: 0xc44eb488de6c4b2d),
    Case(widths: paper, batchSize: 16, expected: 0x42dc8df869731f80),
    Case(widths: paper, batchSize: 64, expected: 0xd21fce245529b7a2),
    Case(widths: paper, batchSize: 16, frozenLayerCount: 2, expected: 0xba780d021d8509a8),
    Case(widths: paper, batchSize: 16, optimizer: .sgd(learningRate: 0.05), expected: 0xece3c9df0cb5174c),
    Case(widths: paper, batchSize: 16, hook: true, expected: 0x395944ea00b26e65),
    Case(widths: paper, batchSize: 1, hook: true, expected: 0xe92ae50989ebbb15),
    Case(widths: ragged, batchSize: 1, expected: 0xb576f3074c75b2f5),
    Case(widths: ragged, batchSize: 7, expected: 0xbe0dfe47db83fa59),
    Case(widths: ragged, batchSize: 16, frozenLayerCount: 1, expected: 0x52267868e8ff94cd),
    Case(widths: ragged, batchSize: 64, expected: 0xf07cdb352176470b),
  ]

  @Test(arguments: cases)
  func trainedParametersKeepTheirBits(_ testCase: Case) throws {
    let architecture = try MLPArchitecture(widths: testCase.widths)
    let classCount = architecture.classCount
    let samples = classCount == 2 ? Self.samples
      : randomSamples(count: 203, width: 9, classCount: classCount, seed: 5)
    let start = parametersWithBiases(architecture, seed: 11)
    let parameters = start.copy()
    let options = TrainingOptions(optimizer: testCase.optimizer, epochs: 4, batchSize: testCase.batchSize,
                                  seed: 3, frozenLayerCount: testCase.frozenLayerCount)
    // A FedProx-like pull towards the start: the hook path materializes and edits the gradient.
    let hook: GradientHook? = testCase.hook ? { weights, gradient in
      for index in gradient.indices { gradient[index] += 0.01 * (weights[index] - start[index]) }
    } : nil
    let summary = try MLPTrainer(architecture: architecture)
      .train(parameters, on: samples, options: options, gradientHook: hook)
    let losses = summary.epochLosses.map { UInt32(truncatingIfNeeded: $0.bitPattern) ^ UInt32($0.bitPattern >> 32) }
    let sum = Self.checksum(bitPatterns(parameters) + losses)
    #expect(sum == testCase.expected, "checksum 0x\(String(sum, radix: 16))")
  }

  @Test(arguments: [(paper, UInt64(0xe642504636150252)), (ragged, UInt64(0x2e3919e0c55766ba))])
  func gradientOracleKeepsItsBits(widths: [Int], expected: UInt64) throws {
    let architecture = try MLPArchitecture(widths: widths)
    let samples = architecture.classCount == 2 ? Self.samples
      : randomSamples(count: 203, width: 9, classCount: architecture.classCount, seed: 5)
    let gradient = ParameterVector(count: architecture.parameterCount)
    let rows = (0..<37).map { ($0 * 11) % samples.count }
    let loss = try MLPTrainer(architecture: architecture)
      .lossAndGradient(at: parametersWithBiases(architecture, seed: 12), samples: samples, rows: rows,
                       into: gradient)
    let sum = Self.checksum(bitPatterns(gradient) + [UInt32(truncatingIfNeeded: loss.bitPattern)])
    #expect(sum == expected, "checksum 0x\(String(sum, radix: 16))")
  }

  /// The per-sample forward pass skips zero inputs, so a non-finite weight behind a dead unit
  /// changes nothing; the batched pass would multiply it by 0 (NaN), so such a batch takes the
  /// per-sample path. Its result equals that of a finite weight there (which the batched pass
  /// runs), bit for bit.
  @Test func aNonFiniteWeightBehindADeadUnitChangesNothing() throws {
    let architecture = try MLPArchitecture(widths: [9, 16, 16, 1])
    let samples = Self.samples
    let finite = parametersWithBiases(architecture, seed: 13)
    let first = architecture.layers[0], second = architecture.layers[1]
    let deadUnit = 3
    finite[first.biasOffset + deadUnit] = -1e6  // ReLU output 0 for every sample
    let infinite = finite.copy()
    for output in 0..<second.outputWidth {
      finite[second.weightOffset + deadUnit * second.outputWidth + output] = 0.5
      infinite[second.weightOffset + deadUnit * second.outputWidth + output] = .infinity
    }
    let trainer = MLPTrainer(architecture: architecture)
    func lossAndGradient(_ parameters: ParameterVector) throws -> [UInt32] {
      let gradient = ParameterVector(count: architecture.parameterCount)
      let loss = try trainer.lossAndGradient(at: parameters, samples: samples, rows: Array(0..<40), into: gradient)
      return bitPatterns(gradient) + [UInt32(truncatingIfNeeded: loss.bitPattern), UInt32(loss.bitPattern >> 32)]
    }
    let expected = try lossAndGradient(finite)
    #expect(try lossAndGradient(infinite) == expected)
    #expect(expected.dropLast(2).allSatisfy { Float(bitPattern: $0).isFinite })
  }
}
