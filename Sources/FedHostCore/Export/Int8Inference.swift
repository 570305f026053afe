import Glibc

/// Integer-only inference of a `QuantizedMLP`, computing exactly what TFLite's int8 kernels compute:
///
/// - FULLY_CONNECTED (reference `integer_ops::FullyConnected` / `FullyConnectedPerChannel`):
///   `acc = bias[o] + Σᵢ w[o][i]·(x[i] − input zero point)` in int32, then
///   `MultiplyByQuantizedMultiplier(acc, multiplier[o])`, plus the output zero point, clamped to the
///   fused activation range.
/// - LOGISTIC int8: TFLite's 256-entry table, built in float as its `Prepare` builds it.
/// - SOFTMAX int8: TFLite's float exp table and normalization (`optimized_ops::Softmax`).
///
/// The FC kernel folds `−zero point · Σᵢ w[o][i]` into the bias once (the same int32 sum in another
/// order) and accumulates 16 output units per SIMD register over weights stored `[input][output]`,
/// padded to a multiple of 16 units. Not thread-safe (owns its scratch): one per thread.
public final class Int8Inference {
  public let model: QuantizedMLP
  private let plans: [LayerPlan]
  private let logisticTable: [Int8]
  private let softmaxTable: [Float]
  /// Two activation buffers (ping-pong) and the accumulators, sized for the widest padded layer.
  private let activations: UnsafeMutablePointer<Int8>
  private let accumulators: UnsafeMutablePointer<Int32>
  private let bufferStride: Int

  static let lanes = 16

  public init(_ model: QuantizedMLP) {
    self.model = model
    plans = model.layers.map(LayerPlan.init)
    bufferStride = plans.map(\.paddedOutputWidth).max()! + model.architecture.maxWidth
    activations = .allocate(capacity: 2 * bufferStride)
    activations.initialize(repeating: 0, count: 2 * bufferStride)
    accumulators = .allocate(capacity: bufferStride)
    accumulators.initialize(repeating: 0, count: bufferStride)
    logisticTable = Self.logisticTable(input: model.logits)
    softmaxTable = Self.softmaxTable(inputScale: model.logits.scale)
  }

  deinit {
    activations.deallocate()
    accumulators.deallocate()
  }

  /// Runs one sample: `input` holds `inputWidth` int8 values, `output` receives `outputWidth`
  /// probabilities quantized at scale 1/256, zero point −128. Allocates nothing.
  public func run(_ input: UnsafePointer<Int8>, into output: UnsafeMutablePointer<Int8>) {
    var source = UnsafePointer(activations)
    var target = activations + bufferStride
    (activations).update(from: input, count: model.architecture.inputWidth)
    for plan in plans {
      plan.run(source, accumulators: accumulators, output: target)
      source = UnsafePointer(target)
      target = target == activations ? activations + bufferStride : activations
    }
    let logits = source
    switch model.head {
    case .logistic:
      output[0] = logisticTable[Int(Int32(logits[0]) + 128)]
    case .softmax:
      softmax(logits, width: model.architecture.outputWidth, into: output)
    }
  }

  /// The int8 inputs of every row of `samples`, quantized with the model's input parameters.
  public func quantizedInputs(_ samples: Samples) throws -> [Int8] {
    guard samples.width == model.architecture.inputWidth else {
      throw ModelError.sampleWidthMismatch(expected: model.architecture.inputWidth, actual: samples.width)
    }
    let input = model.input
    return samples.features.map(input.quantize)
  }

  /// The int8 outputs for `count` rows of int8 inputs, row-major.
  public func outputs(forQuantizedInputs inputs: [Int8]) -> [Int8] {
    let inputWidth = model.architecture.inputWidth
    let outputWidth = model.architecture.outputWidth
    let count = inputs.count / inputWidth
    return [Int8](unsafeUninitializedCapacity: count * outputWidth) { output, initialized in
      inputs.withUnsafeBufferPointer { rows in
        for row in 0..<count {
          run(rows.baseAddress! + row * inputWidth, into: output.baseAddress! + row * outputWidth)
        }
      }
      initialized = count * outputWidth
    }
  }

  /// Dequantized output probabilities for every row, laid out as `MLPTrainer.probabilities`.
  public func probabilities(for samples: Samples) throws -> [Float] {
    let output = model.output
    return outputs(forQuantizedInputs: try quantizedInputs(samples)).map(output.dequantize)
  }

  // MARK: Heads

  /// TFLite's int8 LOGISTIC table: dequantize in float, `1 / (1 + expf(−x))`, round half away from
  /// zero at scale 1/256, add the zero point −128, clamp.
  static func logisticTable(input: AffineQuantization) -> [Int8] {
    (Int32(-128)...127).map { value in
      let dequantized = input.scale * Float(value - input.zeroPoint)
      let transformed = 1 / (1 + expf(-dequantized))
      let rescaled = (transformed * 256).rounded(.toNearestOrAwayFromZero)
      return Int8(min(max(Int32(rescaled) - 128, -128), 127))
    }
  }

  /// TFLite's `PopulateSoftmaxLookupTable` (β = 1): `table[255 − d] = expf(−scale · d)`.
  static func softmaxTable(inputScale: Float) -> [Float] {
    let scale = -inputScale
    var table = [Float](repeating: 0, count: 256)
    for distance in 0...255 { table[255 - distance] = expf(scale * Float(distance)) }
    return table
  }

  /// TFLite's int8 SOFTMAX: exp of each logit's distance below the largest from the table, a float
  /// sum in order, each share rounded half away from zero at scale 1/256, plus −128, clamped.
  private func softmax(_ logits: UnsafePointer<Int8>, width: Int, into output: UnsafeMutablePointer<Int8>) {
    var largest = Int32(Int8.min)
    for unit in 0..<width { largest = max(largest, Int32(logits[unit])) }
    let offset = Int(255 - largest)
    var sum: Float = 0
    for unit in 0..<width { sum += softmaxTable[offset + Int(logits[unit])] }
    let inverse = 1 / (sum * AffineQuantization.probability.scale)
    for unit in 0..<width {
      let share = (softmaxTable[offset + Int(logits[unit])] * inverse).rounded(.toNearestOrAwayFromZero)
      output[unit] = Int8(min(max(Int32(share) - 128, -128), 127))
    }
  }
}

/// One FC layer prepared for the SIMD kernel.
private final class LayerPlan {
  let inputWidth: Int
  let outputWidth: Int
  let paddedOutputWidth: Int
  /// `[input][paddedOutput]`, zero beyond `outputWidth`.
  let weights: UnsafeMutablePointer<Int8>
  /// `bias[o] − input zero point · Σᵢ w[o][i]`, padded.
  let foldedBiases: UnsafeMutablePointer<Int32>
  let multipliers: [FixedPoint.Multiplier]
  let outputZeroPoint: Int32
  let range: ClosedRange<Int32>

  init(_ layer: QuantizedMLP.Layer) {
    inputWidth = layer.inputWidth
    outputWidth = layer.outputWidth
    let lanes = Int8Inference.lanes
    paddedOutputWidth = (layer.outputWidth + lanes - 1) / lanes * lanes
    weights = .allocate(capacity: inputWidth * paddedOutputWidth)
    weights.initialize(repeating: 0, count: inputWidth * paddedOutputWidth)
    foldedBiases = .allocate(capacity: paddedOutputWidth)
    foldedBiases.initialize(repeating: 0, count: paddedOutputWidth)
    for unit in 0..<outputWidth {
      var weightSum: Int32 = 0
      for row in 0..<inputWidth {
        let weight = layer.weights[unit * inputWidth + row]
        weights[row * paddedOutputWidth + unit] = weight
        weightSum &+= Int32(weight)
      }
      foldedBiases[unit] = layer.biases[unit] &- layer.input.zeroPoint &* weightSum
    }
    multipliers = layer.multipliers
    outputZeroPoint = layer.output.zeroPoint
    range = layer.activationRange
  }

  deinit {
    weights.deallocate()
    foldedBiases.deallocate()
  }

  @inline(__always)
  func run(_ input: UnsafePointer<Int8>, accumulators: UnsafeMutablePointer<Int32>,
           output: UnsafeMutablePointer<Int8>) {
    typealias Lanes = SIMD16<Int32>
    let rawWeights = UnsafeRawPointer(weights)
    let rawBiases = UnsafeRawPointer(foldedBiases)
    let rawAccumulators = UnsafeMutableRawPointer(accumulators)
    var block = 0
    // Two blocks at once: independent accumulator chains keep the multiply pipeline busy.
    while block + 32 <= paddedOutputWidth {
      var first = rawBiases.loadUnaligned(fromByteOffset: block * 4, as: Lanes.self)
      var second = rawBiases.loadUnaligned(fromByteOffset: (block + 16) * 4, as: Lanes.self)
      for row in 0..<inputWidth {
        let value = Lanes(repeating: Int32(input[row]))
        let offset = row * paddedOutputWidth + block
        first &+= Lanes(truncatingIfNeeded: rawWeights.loadUnaligned(fromByteOffset: offset, as: SIMD16<Int8>.self)) &* value
        second &+= Lanes(truncatingIfNeeded: rawWeights.loadUnaligned(fromByteOffset: offset + 16, as: SIMD16<Int8>.self)) &* value
      }
      rawAccumulators.storeBytes(of: first, toByteOffset: block * 4, as: Lanes.self)
      rawAccumulators.storeBytes(of: second, toByteOffset: (block + 16) * 4, as: Lanes.self)
      block += 32
    }
    if block < paddedOutputWidth {
      var sum = rawBiases.loadUnaligned(fromByteOffset: block * 4, as: Lanes.self)
      for row in 0..<inputWidth {
        let weights = rawWeights.loadUnaligned(fromByteOffset: row * paddedOutputWidth + block, as: SIMD16<Int8>.self)
        sum &+= Lanes(truncatingIfNeeded: weights) &* Lanes(repeating: Int32(input[row]))
      }
      rawAccumulators.storeBytes(of: sum, toByteOffset: block * 4, as: Lanes.self)
    }
    multipliers.withUnsafeBufferPointer { multipliers in
      for unit in 0..<outputWidth {
        let scaled = FixedPoint.multiply(accumulators[unit], by: multipliers[unit]) &+ outputZeroPoint
        output[unit] = Int8(min(max(scaled, range.lowerBound), range.upperBound))
      }
    }
  }
}
