import Glibc
#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

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
/// order, exact in wrapping int32 arithmetic) and accumulates input pairs with a 16-bit
/// multiply-add (see `LayerPlan`). Not thread-safe (owns its scratch): one per thread.
public final class Int8Inference {
  public let model: QuantizedMLP
  public let rounding: FixedPoint.Rounding
  private let plans: [LayerPlan]
  private let logisticTable: [Int8]
  private let softmaxTable: [Float]
  /// Two activation buffers (ping-pong; int8 values held in 16 bits, the width the kernel
  /// multiplies in) and the accumulators, each sized for the widest padded layer or the model's
  /// input pairs, whichever is wider.
  private let activations: UnsafeMutablePointer<Int16>
  private let accumulators: UnsafeMutablePointer<Int32>
  private let bufferStride: Int

  public init(_ model: QuantizedMLP, rounding: FixedPoint.Rounding = .double) {
    self.model = model
    self.rounding = rounding
    plans = model.layers.map { LayerPlan($0, rounding: rounding) }
    bufferStride = max(plans.map(\.paddedOutputWidth).max()!, 2 * plans[0].pairCount)
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
      output[0] = logisticTable[Int(logits[0]) + 128]
    case .softmax:
      softmax(logits, width: model.architecture.outputWidth, into: output)
    }
  }

  /// The last FULLY_CONNECTED's output for one sample: the int8 `logits` tensor of the exported graph.
  public func logits(for input: [Int8]) -> [Int8] {
    precondition(input.count == model.architecture.inputWidth)
    let logits = input.withUnsafeBufferPointer { fullyConnectedLayers($0.baseAddress!) }
    return UnsafeBufferPointer(start: logits, count: model.architecture.outputWidth).map { Int8(truncatingIfNeeded: $0) }
  }

  /// Runs every FC layer through the ping-pong buffers; returns where the logits are.
  @inline(__always)
  private func fullyConnectedLayers(_ input: UnsafePointer<Int8>) -> UnsafePointer<Int16> {
    var source = UnsafePointer(activations)
    var target = activations + bufferStride
    for index in 0..<model.architecture.inputWidth { activations[index] = Int16(input[index]) }
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
  private func softmax(_ logits: UnsafePointer<Int16>, width: Int, into output: UnsafeMutablePointer<Int8>) {
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
/// The kernel multiplies 16-bit values pairwise and adds each pair into one int32 (x86's
/// `vpmaddwd`, the instruction TFLite's optimized int8 kernels also rely on): int8 × int8 products
/// fit 16 bits, so nothing is lost. Inputs are taken two at a time: one pair, broadcast, meets the
/// weights of those two inputs for 8 outputs. Weights stay int8 in memory (widened in registers:
/// half the bytes to stream from cache, which measured faster than storing them widened). They are
/// packed per group of 32 outputs (four accumulators of 8), per input pair, per block of 8
/// outputs, interleaved by input: `[w[o][2p], w[o][2p+1]]` for the block's 8 outputs. Padding (an
/// odd last input, outputs up to a multiple of 32) holds zero weights. Requantization runs as one
/// branch-free loop over precomputed per-unit significands and shifts.
private final class LayerPlan {
  static let outputsPerBlock = 8
  static let blocksPerGroup = 4
  static let outputsPerGroup = outputsPerBlock * blocksPerGroup

  let inputWidth: Int
  let pairCount: Int
  let outputWidth: Int
  let paddedOutputWidth: Int
  let weights: UnsafeMutablePointer<SIMD16<Int8>>
  /// `bias[o] − input zero point · Σᵢ w[o][i]`: the zero point folded out of the inner loop.
  let foldedBiases: UnsafeMutablePointer<Int32>
  let significands: UnsafeMutablePointer<Int32>
  let leftShifts: UnsafeMutablePointer<Int32>
  let rightShifts: UnsafeMutablePointer<Int32>
  /// `2^rightShift − 1`: the bits the final rounding division drops.
  let remainderMasks: UnsafeMutablePointer<Int32>
  let outputZeroPoint: Int32
  let lowest: Int32
  let highest: Int32
  let rounding: FixedPoint.Rounding

  /// Outputs requantized: whole vectors of 8 covering the real outputs and the next layer's odd
  /// padding input, not the kernel's padding to 32 (whose results nothing reads).
  private var requantizedWidth: Int { (outputWidth + 7) / 8 * 8 }
  private var groupCount: Int { paddedOutputWidth / Self.outputsPerGroup }

  init(_ layer: QuantizedMLP.Layer, rounding: FixedPoint.Rounding) {
    self.rounding = rounding
    inputWidth = layer.inputWidth
    pairCount = (layer.inputWidth + 1) / 2
    outputWidth = layer.outputWidth
    let group = Self.outputsPerGroup
    paddedOutputWidth = (layer.outputWidth + group - 1) / group * group
    let blockCount = paddedOutputWidth / Self.outputsPerBlock
    weights = .allocate(capacity: blockCount * pairCount)
    weights.initialize(repeating: .zero, count: blockCount * pairCount)
    foldedBiases = .allocate(capacity: paddedOutputWidth)
    foldedBiases.initialize(repeating: 0, count: paddedOutputWidth)
    significands = .allocate(capacity: paddedOutputWidth)
    significands.initialize(repeating: 0, count: paddedOutputWidth)
    leftShifts = .allocate(capacity: paddedOutputWidth)
    leftShifts.initialize(repeating: 0, count: paddedOutputWidth)
    rightShifts = .allocate(capacity: paddedOutputWidth)
    rightShifts.initialize(repeating: 0, count: paddedOutputWidth)
    remainderMasks = .allocate(capacity: paddedOutputWidth)
    remainderMasks.initialize(repeating: 0, count: paddedOutputWidth)
    let packed = UnsafeMutableRawPointer(weights).assumingMemoryBound(to: Int8.self)
    for (unit, multiplier) in layer.multipliers.enumerated() {
      let (groupIndex, withinGroup) = unit.quotientAndRemainder(dividingBy: group)
      let (block, lane) = withinGroup.quotientAndRemainder(dividingBy: Self.outputsPerBlock)
      var weightSum: Int32 = 0
      for input in 0..<inputWidth {
        let weight = layer.weights[unit * inputWidth + input]
        let vector = (groupIndex * pairCount + input / 2) * Self.blocksPerGroup + block
        packed[vector * 16 + 2 * lane + input % 2] = weight
        weightSum &+= Int32(weight)
      }
      foldedBiases[unit] = layer.biases[unit] &- layer.input.zeroPoint &* weightSum
      significands[unit] = multiplier.significand
      leftShifts[unit] = max(multiplier.shift, 0)
      rightShifts[unit] = max(-multiplier.shift, 0)
      remainderMasks[unit] = (1 &<< rightShifts[unit]) &- 1
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
    remainderMasks.deallocate()
  }

  /// Reads `2 · pairCount` values of `input` (one beyond `inputWidth` when it is odd meets zero
  /// weights, so its value does not matter), fills `paddedOutputWidth` accumulators and writes
  /// `requantizedWidth` values to `output`.
  @inline(__always)
  func run(_ input: UnsafePointer<Int16>, accumulators: UnsafeMutablePointer<Int32>,
           output: UnsafeMutablePointer<Int16>) {
    // An input pair as one 32-bit lane, ready to broadcast.
    let pairs = UnsafeRawPointer(input)
    let biases = UnsafeRawPointer(foldedBiases)
    let sums = UnsafeMutableRawPointer(accumulators)
    var vector = weights
    for group in 0..<groupCount {
      let first = group * Self.outputsPerGroup * 4
      var sum0 = biases.loadUnaligned(fromByteOffset: first, as: SIMD8<Int32>.self)
      var sum1 = biases.loadUnaligned(fromByteOffset: first + 32, as: SIMD8<Int32>.self)
      var sum2 = biases.loadUnaligned(fromByteOffset: first + 64, as: SIMD8<Int32>.self)
      var sum3 = biases.loadUnaligned(fromByteOffset: first + 96, as: SIMD8<Int32>.self)
      for pair in 0..<pairCount {
        let x = unsafeBitCast(SIMD8<Int32>(repeating: pairs.loadUnaligned(fromByteOffset: 4 * pair, as: Int32.self)),
                              to: SIMD16<Int16>.self)
        sum0 &+= multiplyAddPairs(x, widen(vector[0]))
        sum1 &+= multiplyAddPairs(x, widen(vector[1]))
        sum2 &+= multiplyAddPairs(x, widen(vector[2]))
        sum3 &+= multiplyAddPairs(x, widen(vector[3]))
        vector += Self.blocksPerGroup
      }
      sums.storeBytes(of: sum0, toByteOffset: first, as: SIMD8<Int32>.self)
      sums.storeBytes(of: sum1, toByteOffset: first + 32, as: SIMD8<Int32>.self)
      sums.storeBytes(of: sum2, toByteOffset: first + 64, as: SIMD8<Int32>.self)
      sums.storeBytes(of: sum3, toByteOffset: first + 96, as: SIMD8<Int32>.self)
    }
    switch rounding {
    case .double: requantizeDoubleRounding(accumulators, into: output)
    case .single: requantizeSingleRounding(accumulators, into: output)
    }
  }

  /// `FixedPoint.multiply(_:by:rounding: .double)` over all units, without branches so that it
  /// vectorizes. TFLite's doubling high multiply adds ±2^30 by the product's sign and divides by
  /// 2^31 toward zero; for either sign that is `floor((product + 2^30) / 2^31)`, one add and one
  /// shift (whose low 32 bits a logical shift also gives). Its saturating case needs a significand
  /// of −2^31, which a positive multiplier never has. Shift amounts are in 0...31, so masking
  /// shifts are exact.
  @inline(__always)
  private func requantizeDoubleRounding(_ accumulators: UnsafeMutablePointer<Int32>, into output: UnsafeMutablePointer<Int16>) {
    for unit in 0..<requantizedWidth {
      let product = Int64(accumulators[unit] &<< leftShifts[unit]) &* Int64(significands[unit])
      let high = Int32(truncatingIfNeeded: (product &+ (1 << 30)) &>> 31)
      let mask = remainderMasks[unit]
      let threshold = (mask &>> 1) &+ (high < 0 ? 1 : 0)
      let scaled = (high &>> rightShifts[unit]) &+ ((high & mask) > threshold ? 1 : 0) &+ outputZeroPoint
      output[unit] = Int16(truncatingIfNeeded: min(max(scaled, lowest), highest))
    }
  }

  @inline(__always)
  private func requantizeSingleRounding(_ accumulators: UnsafeMutablePointer<Int32>, into output: UnsafeMutablePointer<Int16>) {
    for unit in 0..<requantizedWidth {
      let totalShift = Int64(31 - leftShifts[unit] + rightShifts[unit])
      let product = Int64(accumulators[unit]) &* Int64(significands[unit]) &+ (Int64(1) &<< (totalShift &- 1))
      let scaled = Int32(truncatingIfNeeded: product &>> totalShift) &+ outputZeroPoint
      output[unit] = Int16(truncatingIfNeeded: min(max(scaled, lowest), highest))
    }
  }
}

/// `x[2k]·w[2k] + x[2k+1]·w[2k+1]` for k in 0..<8, in int32 (exact: the operands are int8 values).
@inline(__always)
private func multiplyAddPairs(_ x: SIMD16<Int16>, _ w: SIMD16<Int16>) -> SIMD8<Int32> {
  #if arch(x86_64)
  unsafeBitCast(_mm256_madd_epi16(unsafeBitCast(x, to: __m256i.self), unsafeBitCast(w, to: __m256i.self)),
                to: SIMD8<Int32>.self)
  #else
  SIMD8<Int32>(truncatingIfNeeded: x.evenHalf) &* SIMD8<Int32>(truncatingIfNeeded: w.evenHalf)
    &+ SIMD8<Int32>(truncatingIfNeeded: x.oddHalf) &* SIMD8<Int32>(truncatingIfNeeded: w.oddHalf)
  #endif
}

/// Sign-extends 16 int8 weights to 16 bits.
@inline(__always)
private func widen(_ w: SIMD16<Int8>) -> SIMD16<Int16> {
  #if arch(x86_64)
  unsafeBitCast(_mm256_cvtepi8_epi16(unsafeBitCast(w, to: __m128i.self)), to: SIMD16<Int16>.self)
  #else
  SIMD16<Int16>(truncatingIfNeeded: w)
  #endif
}
