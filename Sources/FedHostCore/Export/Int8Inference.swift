import Glibc

/// Integer-only inference of a `QuantizedMLP`, computing exactly what TFLite's int8 kernels compute
/// (with `rounding`, the requantization of the runtime to match; see `FixedPoint.Rounding`):
///
/// - FULLY_CONNECTED (reference `integer_ops::FullyConnected` / `FullyConnectedPerChannel`):
///   `acc = bias[o] + Σᵢ w[o][i]·(x[i] − input zero point)` in int32, then
///   `MultiplyByQuantizedMultiplier(acc, multiplier[o])`, plus the output zero point, clamped to the
///   fused activation range.
/// - LOGISTIC int8: TFLite's 256-entry table, built in float as its `Prepare` builds it.
/// - SOFTMAX int8: TFLite's float exp table and normalization (`optimized_ops::Softmax`).
///
/// The FC kernel folds `−zero point · Σᵢ w[o][i]` into the bias once (the same int32 sum in another
/// order, exact in wrapping int32 arithmetic) and accumulates over weights stored `[input][output]`
/// (see `LayerPlan`). Not thread-safe (owns its scratch): one per thread.
public final class Int8Inference {
  public let model: QuantizedMLP
  public let rounding: FixedPoint.Rounding
  private let plans: [LayerPlan]
  private let logisticTable: [Int8]
  private let softmaxTable: [Float]
  /// Two activation buffers (ping-pong) and the accumulators, sized for the widest padded layer.
  private let activations: UnsafeMutablePointer<Int8>
  private let accumulators: UnsafeMutablePointer<Int32>
  private let bufferStride: Int

  static let lanes = 16

  public init(_ model: QuantizedMLP, rounding: FixedPoint.Rounding = .double) {
    self.model = model
    self.rounding = rounding
    plans = model.layers.map { LayerPlan($0, rounding: rounding) }
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
    let logits = fullyConnectedLayers(input)
    switch model.head {
    case .logistic:
      output[0] = logisticTable[Int(Int32(logits[0]) + 128)]
    case .softmax:
      softmax(logits, width: model.architecture.outputWidth, into: output)
    }
  }

  /// The last FULLY_CONNECTED's output for one sample: the int8 `logits` tensor of the exported graph.
  public func logits(for input: [Int8]) -> [Int8] {
    precondition(input.count == model.architecture.inputWidth)
    let logits = input.withUnsafeBufferPointer { fullyConnectedLayers($0.baseAddress!) }
    return Array(UnsafeBufferPointer(start: logits, count: model.architecture.outputWidth))
  }

  /// Runs every FC layer through the ping-pong buffers; returns where the logits are.
  @inline(__always)
  private func fullyConnectedLayers(_ input: UnsafePointer<Int8>) -> UnsafePointer<Int8> {
    var source = UnsafePointer(activations)
    var target = activations + bufferStride
    activations.update(from: input, count: model.architecture.inputWidth)
    for plan in plans {
      plan.run(source, accumulators: accumulators, output: target)
      source = UnsafePointer(target)
      target = target == activations ? activations + bufferStride : activations
    }
    return source
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
  public static func logisticTable(input: AffineQuantization) -> [Int8] {
    (Int32(-128)...127).map { value in
      let dequantized = input.scale * Float(value - input.zeroPoint)
      let transformed = 1 / (1 + expf(-dequantized))
      let rescaled = (transformed * 256).rounded(.toNearestOrAwayFromZero)
      return Int8(min(max(Int32(rescaled) - 128, -128), 127))
    }
  }

  /// TFLite's `PopulateSoftmaxLookupTable` (β = 1): `table[255 − d] = expf(−scale · d)`.
  public static func softmaxTable(inputScale: Float) -> [Float] {
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

/// One FC layer prepared for the vectorized kernel.
///
/// Weights are stored `[input][output]`, inputs padded to a multiple of 4 rows and outputs to a
/// multiple of 16 units (zeros), so the kernel adds four input rows into int32 accumulators per pass
/// over plain loops that the compiler vectorizes. Requantization runs as one branch-free loop over
/// precomputed per-unit significands and shifts.
private final class LayerPlan {
  let inputWidth: Int
  let paddedInputWidth: Int
  let outputWidth: Int
  let paddedOutputWidth: Int
  let weights: UnsafeMutablePointer<Int8>
  /// `bias[o] − input zero point · Σᵢ w[o][i]`: the zero point folded out of the inner loop.
  let foldedBiases: UnsafeMutablePointer<Int32>
  let significands: UnsafeMutablePointer<Int32>
  let leftShifts: UnsafeMutablePointer<Int32>
  let rightShifts: UnsafeMutablePointer<Int32>
  let outputZeroPoint: Int32
  let lowest: Int32
  let highest: Int32
  let rounding: FixedPoint.Rounding

  init(_ layer: QuantizedMLP.Layer, rounding: FixedPoint.Rounding) {
    self.rounding = rounding
    inputWidth = layer.inputWidth
    paddedInputWidth = (layer.inputWidth + 3) / 4 * 4
    outputWidth = layer.outputWidth
    let lanes = Int8Inference.lanes
    paddedOutputWidth = (layer.outputWidth + lanes - 1) / lanes * lanes
    weights = .allocate(capacity: paddedInputWidth * paddedOutputWidth)
    weights.initialize(repeating: 0, count: paddedInputWidth * paddedOutputWidth)
    foldedBiases = .allocate(capacity: paddedOutputWidth)
    foldedBiases.initialize(repeating: 0, count: paddedOutputWidth)
    significands = .allocate(capacity: paddedOutputWidth)
    significands.initialize(repeating: 0, count: paddedOutputWidth)
    leftShifts = .allocate(capacity: paddedOutputWidth)
    leftShifts.initialize(repeating: 0, count: paddedOutputWidth)
    rightShifts = .allocate(capacity: paddedOutputWidth)
    rightShifts.initialize(repeating: 0, count: paddedOutputWidth)
    for (unit, multiplier) in layer.multipliers.enumerated() {
      var weightSum: Int32 = 0
      for row in 0..<inputWidth {
        let weight = layer.weights[unit * inputWidth + row]
        weights[row * paddedOutputWidth + unit] = weight
        weightSum &+= Int32(weight)
      }
      foldedBiases[unit] = layer.biases[unit] &- layer.input.zeroPoint &* weightSum
      significands[unit] = multiplier.significand
      leftShifts[unit] = max(multiplier.shift, 0)
      rightShifts[unit] = max(-multiplier.shift, 0)
    }
    outputZeroPoint = layer.output.zeroPoint
    lowest = layer.activationRange.lowerBound
    highest = layer.activationRange.upperBound
  }

  deinit {
    weights.deallocate()
    foldedBiases.deallocate()
    significands.deallocate()
    leftShifts.deallocate()
    rightShifts.deallocate()
  }

  /// Reads `paddedInputWidth` values of `input` (those beyond `inputWidth` meet zero weights, so
  /// their values do not matter) and writes `paddedOutputWidth` values to `output`.
  @inline(__always)
  func run(_ input: UnsafePointer<Int8>, accumulators: UnsafeMutablePointer<Int32>,
           output: UnsafeMutablePointer<Int8>) {
    let width = paddedOutputWidth
    accumulators.update(from: foldedBiases, count: width)
    var row = 0
    while row < paddedInputWidth {
      let x0 = Int32(input[row]), x1 = Int32(input[row + 1]), x2 = Int32(input[row + 2]), x3 = Int32(input[row + 3])
      let w0 = weights + row * width
      let w1 = w0 + width, w2 = w1 + width, w3 = w2 + width
      for unit in 0..<width {
        accumulators[unit] &+= Int32(w0[unit]) &* x0 &+ Int32(w1[unit]) &* x1
          &+ Int32(w2[unit]) &* x2 &+ Int32(w3[unit]) &* x3
      }
      row += 4
    }
    switch rounding {
    case .double: requantizeDoubleRounding(accumulators, into: output)
    case .single: requantizeSingleRounding(accumulators, into: output)
    }
  }

  /// `FixedPoint.multiply(_:by:rounding: .double)` over all units, without branches (masking
  /// shifts are exact here: every shift amount is in 0...31) so that it vectorizes. The saturating
  /// case of the doubling multiply needs a significand of −2^31, which a positive multiplier never has.
  @inline(__always)
  private func requantizeDoubleRounding(_ accumulators: UnsafeMutablePointer<Int32>, into output: UnsafeMutablePointer<Int8>) {
    for unit in 0..<paddedOutputWidth {
      let product = Int64(accumulators[unit] &<< leftShifts[unit]) &* Int64(significands[unit])
      let nudged = product &+ (product >= 0 ? 1 << 30 : 1 - (1 << 30))
      // Division by 2^31 truncating toward zero, as C++'s `/`.
      let high = Int32(truncatingIfNeeded: (nudged &+ (nudged < 0 ? (1 << 31) - 1 : 0)) >> 31)
      let exponent = rightShifts[unit]
      let mask = Int32(truncatingIfNeeded: (Int64(1) &<< Int64(exponent)) &- 1)
      let threshold = (mask >> 1) &+ (high < 0 ? 1 : 0)
      let scaled = (high &>> exponent) &+ ((high & mask) > threshold ? 1 : 0) &+ outputZeroPoint
      output[unit] = Int8(truncatingIfNeeded: min(max(scaled, lowest), highest))
    }
  }

  @inline(__always)
  private func requantizeSingleRounding(_ accumulators: UnsafeMutablePointer<Int32>, into output: UnsafeMutablePointer<Int8>) {
    for unit in 0..<paddedOutputWidth {
      let totalShift = Int64(31 - leftShifts[unit] + rightShifts[unit])
      let product = Int64(accumulators[unit]) &* Int64(significands[unit]) &+ (Int64(1) &<< (totalShift &- 1))
      let scaled = Int32(truncatingIfNeeded: product &>> totalShift) &+ outputZeroPoint
      output[unit] = Int8(truncatingIfNeeded: min(max(scaled, lowest), highest))
    }
  }
}
