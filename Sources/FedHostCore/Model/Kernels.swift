// The hot loops of training and inference: explicit SIMD16<Float>, raw pointers, no allocation.
// Every helper is @inline(__always): SIMD values crossing a real call get split into quarters.
import Glibc

typealias Lanes = SIMD16<Float>
let laneCount = Lanes.scalarCount

extension UnsafeMutablePointer<Float> {
  @inline(__always) func lanes(at offset: Int) -> Lanes {
    UnsafeRawPointer(self + offset).loadUnaligned(as: Lanes.self)
  }

  @inline(__always) func store(_ value: Lanes, at offset: Int) {
    UnsafeMutableRawPointer(self + offset).storeBytes(of: value, as: Lanes.self)
  }
}

extension UnsafePointer<Float> {
  @inline(__always) func lanes(at offset: Int) -> Lanes {
    UnsafeRawPointer(self + offset).loadUnaligned(as: Lanes.self)
  }
}

/// Pairwise horizontal sum: 4 dependent adds instead of `sum()`'s 15.
@inline(__always) func treeSum(_ value: Lanes) -> Float {
  let eight = value.lowHalf + value.highHalf
  let four = eight.lowHalf + eight.highHalf
  let two = four.lowHalf + four.highHalf
  return two[0] + two[1]
}

/// An optimizer's per-element rule, fed the two factors of each gradient element
/// (`gradient = input × delta`; biases and materialized gradients pass `input = 1`).
protocol ElementUpdate {
  /// False for rules that only read the weights (gradient accumulation): nothing is stored back.
  static var writesWeights: Bool { get }
  func updated(_ weights: Lanes, input: Lanes, delta: Lanes, at index: Int) -> Lanes
  func updated(_ weight: Float, input: Float, delta: Float, at index: Int) -> Float
}

/// One Adam step (Keras formulation, see `Optimizer.adam`); moments live in `m` and `v` at the
/// parameter's flat index. `g² − v` is one fused multiply-add, as in the C reference's compiled
/// code (one rounding fewer, one instruction fewer).
struct AdamStep: ElementUpdate {
  static var writesWeights: Bool { true }
  let m: UnsafeMutablePointer<Float>
  let v: UnsafeMutablePointer<Float>
  let stepSize: Float
  let firstDecay: Float
  let secondDecay: Float
  let epsilon: Float

  init(beta1: Float, beta2: Float, epsilon: Float, learningRate: Float, step: Int,
       m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) {
    let t = Double(step)
    let correction = (1 - pow(Double(beta2), t)).squareRoot() / (1 - pow(Double(beta1), t))
    stepSize = Float(Double(learningRate) * correction)
    firstDecay = 1 - beta1
    secondDecay = 1 - beta2
    self.epsilon = epsilon
    self.m = m
    self.v = v
  }

  @inline(__always)
  func updated(_ weights: Lanes, input: Lanes, delta: Lanes, at index: Int) -> Lanes {
    let gradient = input * delta
    var first = m.lanes(at: index)
    var second = v.lanes(at: index)
    first.addProduct(gradient - first, Lanes(repeating: firstDecay))
    // `second * -1`, not `-second`: SIMD's prefix minus is `0 - x`, which keeps the FMA from
    // folding into one vfmsub.
    second.addProduct((second * -1).addingProduct(gradient, gradient), Lanes(repeating: secondDecay))
    m.store(first, at: index)
    v.store(second, at: index)
    return weights - first * stepSize / (second.squareRoot() + epsilon)
  }

  @inline(__always)
  func updated(_ weight: Float, input: Float, delta: Float, at index: Int) -> Float {
    let gradient = input * delta
    let first = m[index].addingProduct(gradient - m[index], firstDecay)
    let second = v[index].addingProduct((-v[index]).addingProduct(gradient, gradient), secondDecay)
    m[index] = first
    v[index] = second
    return weight - first * stepSize / (second.squareRoot() + epsilon)
  }
}

struct SGDStep: ElementUpdate {
  static var writesWeights: Bool { true }
  let learningRate: Float

  @inline(__always)
  func updated(_ weights: Lanes, input: Lanes, delta: Lanes, at index: Int) -> Lanes {
    weights - learningRate * (input * delta)
  }

  @inline(__always)
  func updated(_ weight: Float, input: Float, delta: Float, at index: Int) -> Float {
    weight - learningRate * (input * delta)
  }
}

/// Adds each gradient element into `gradient` (a fused multiply-add, so a batch of one gives
/// exactly `input × delta`, the value the fused update rules use).
struct GradientAccumulation: ElementUpdate {
  static var writesWeights: Bool { false }
  let gradient: UnsafeMutablePointer<Float>

  @inline(__always)
  func updated(_ weights: Lanes, input: Lanes, delta: Lanes, at index: Int) -> Lanes {
    gradient.store(gradient.lanes(at: index).addingProduct(input, delta), at: index)
    return weights
  }

  @inline(__always)
  func updated(_ weight: Float, input: Float, delta: Float, at index: Int) -> Float {
    gradient[index] = gradient[index].addingProduct(input, delta)
    return weight
  }
}

/// 1 for a nonzero `value` (either sign), 0 for ±0, without a branch: on ReLU outputs a branch on
/// zero mispredicts about half the time.
@inline(__always) func nonzeroCount(_ value: Float) -> Int {
  Int(((value.bitPattern & 0x7fff_ffff) &+ 0x7fff_ffff) >> 31)
}

/// `sum` where the ReLU input `x` is positive, +0 elsewhere, without a branch: a branch on a ReLU
/// output mispredicts about half the time, and each miss stalls the backward row loop.
@inline(__always) func reluGated(_ sum: Float, input x: Float) -> Float {
  let keep = UInt32(truncatingIfNeeded: 0 &- Int32(x > 0 ? 1 : 0))
  return Float(bitPattern: sum.bitPattern & keep)
}

/// `output = input · W + b` for one layer (W stored [input][output]), ReLU'd if `relu`.
/// Rows of W whose input is zero (about half of a ReLU layer's outputs) only add zeros, so the
/// nonzero inputs are listed in `active` (scratch of `inputWidth` entries) and only their rows read.
/// Outputs are computed in blocks of 64 held in registers across the whole input loop.
@inline(__always)
func denseForward(_ layer: MLPArchitecture.Layer, input: UnsafePointer<Float>,
                  parameters: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                  relu: Bool, active: UnsafeMutablePointer<Int>) {
  let outputCount = layer.outputWidth
  let weights = parameters + layer.weightOffset
  let bias = parameters + layer.biasOffset
  var activeCount = 0
  for inputIndex in 0..<layer.inputWidth {
    active[activeCount] = inputIndex
    activeCount &+= nonzeroCount(input[inputIndex])
  }
  @inline(__always) func activate(_ value: Lanes) -> Lanes {
    relu ? pointwiseMax(value, .zero) : value
  }
  var column = 0
  while column + 4 * laneCount <= outputCount {
    var sum0 = bias.lanes(at: column)
    var sum1 = bias.lanes(at: column + laneCount)
    var sum2 = bias.lanes(at: column + 2 * laneCount)
    var sum3 = bias.lanes(at: column + 3 * laneCount)
    for index in 0..<activeCount {
      let inputIndex = active[index]
      let x = Lanes(repeating: input[inputIndex])
      let row = weights + (inputIndex &* outputCount &+ column)
      sum0.addProduct(x, row.lanes(at: 0))
      sum1.addProduct(x, row.lanes(at: laneCount))
      sum2.addProduct(x, row.lanes(at: 2 * laneCount))
      sum3.addProduct(x, row.lanes(at: 3 * laneCount))
    }
    output.store(activate(sum0), at: column)
    output.store(activate(sum1), at: column + laneCount)
    output.store(activate(sum2), at: column + 2 * laneCount)
    output.store(activate(sum3), at: column + 3 * laneCount)
    column += 4 * laneCount
  }
  while column + laneCount <= outputCount {
    var sum = bias.lanes(at: column)
    for index in 0..<activeCount {
      let inputIndex = active[index]
      sum.addProduct(Lanes(repeating: input[inputIndex]),
                     (weights + (inputIndex &* outputCount &+ column)).lanes(at: 0))
    }
    output.store(activate(sum), at: column)
    column += laneCount
  }
  guard column < outputCount else { return }
  // Narrow tail (fewer than 16 outputs): accumulate in memory, one input row at a time.
  for outputIndex in column..<outputCount { output[outputIndex] = bias[outputIndex] }
  for index in 0..<activeCount {
    let inputIndex = active[index]
    let x = input[inputIndex]
    let row = weights + inputIndex &* outputCount
    for outputIndex in column..<outputCount {
      output[outputIndex] = output[outputIndex].addingProduct(x, row[outputIndex])
    }
  }
  if relu {
    for outputIndex in column..<outputCount { output[outputIndex] = max(output[outputIndex], 0) }
  }
}

/// Backward pass through one layer fused with `rule`: the input's delta (`W·delta` with the old
/// weights, masked by ReLU' of the input) and the update of W and b by `gradient = input ⊗ delta`.
/// `inputDelta` nil skips the propagation (first trained layer). `delta` is readable up to the
/// next multiple of 16 floats. `scratch` holds `2 × (layer.parameterCount + 16)` floats, used by
/// layers whose width is not a multiple of 16.
@inline(__always)
func denseBackward<Rule: ElementUpdate>(
  _ layer: MLPArchitecture.Layer, input: UnsafePointer<Float>, delta: UnsafePointer<Float>,
  inputDelta: UnsafeMutablePointer<Float>?, parameters: UnsafeMutablePointer<Float>, rule: Rule,
  scratch: UnsafeMutablePointer<Float>
) {
  if layer.outputWidth % laneCount == 0 {
    fusedRows(layer, input: input, delta: delta, inputDelta: inputDelta, parameters: parameters,
              rule: rule)
    applyElementwise(rule, parameters: parameters, range: layer.biasOffset..<layer.end,
                     gradient: delta)
  } else {
    narrowBackward(layer, input: input, delta: delta, inputDelta: inputDelta,
                   parameters: parameters, rule: rule, scratch: scratch)
  }
}

/// One sweep over W, row by row: load each row once, accumulate `W·delta` with the old weights
/// and hand `input × delta` to the rule, which writes the new weights.
@inline(__always)
private func fusedRows<Rule: ElementUpdate>(
  _ layer: MLPArchitecture.Layer, input: UnsafePointer<Float>, delta: UnsafePointer<Float>,
  inputDelta: UnsafeMutablePointer<Float>?, parameters: UnsafeMutablePointer<Float>, rule: Rule
) {
  let outputCount = layer.outputWidth
  for inputIndex in 0..<layer.inputWidth {
    let x = input[inputIndex]
    let xLanes = Lanes(repeating: x)
    let rowStart = layer.weightOffset + inputIndex * outputCount
    let row = parameters + rowStart
    var dot = Lanes.zero
    for column in stride(from: 0, to: outputCount, by: laneCount) {
      let weights = row.lanes(at: column)
      let d = delta.lanes(at: column)
      dot.addProduct(weights, d)
      let updated = rule.updated(weights, input: xLanes, delta: d, at: rowStart &+ column)
      if Rule.writesWeights { row.store(updated, at: column) }
    }
    if let inputDelta { inputDelta[inputIndex] = reluGated(treeSum(dot), input: x) }
  }
}

/// Rows narrower than a vector (or with a ragged end) would be updated element by element, each
/// with a scalar square root and divide as slow as a whole vector's. So: propagate the delta
/// first, then update the layer's weights and biases (contiguous) as one flat range, with the
/// gradient's two factors spelled out per element in `scratch`. They are tiled with whole-vector
/// stores, each row's overwriting the previous row's excess (hence the vector of slack).
@inline(__always)
private func narrowBackward<Rule: ElementUpdate>(
  _ layer: MLPArchitecture.Layer, input: UnsafePointer<Float>, delta: UnsafePointer<Float>,
  inputDelta: UnsafeMutablePointer<Float>?, parameters: UnsafeMutablePointer<Float>, rule: Rule,
  scratch: UnsafeMutablePointer<Float>
) {
  let outputCount = layer.outputWidth
  let inputs = scratch
  let deltas = scratch + layer.parameterCount + laneCount
  @inline(__always) func tile(_ x: Float, at offset: Int) {
    for column in stride(from: 0, to: outputCount, by: laneCount) {
      inputs.store(Lanes(repeating: x), at: offset + column)
      deltas.store(delta.lanes(at: column), at: offset + column)
    }
  }
  for inputIndex in 0..<layer.inputWidth {
    let x = input[inputIndex]
    let row = parameters + layer.weightOffset + inputIndex * outputCount
    if let inputDelta {
      var dot = Lanes.zero
      var column = 0
      while column + laneCount <= outputCount {
        dot.addProduct(row.lanes(at: column), delta.lanes(at: column))
        column += laneCount
      }
      var sum = treeSum(dot)
      while column < outputCount {
        sum = sum.addingProduct(row[column], delta[column])
        column += 1
      }
      inputDelta[inputIndex] = reluGated(sum, input: x)
    }
    tile(x, at: inputIndex * outputCount)
  }
  tile(1, at: layer.weightCount)
  applyElementwise(rule, parameters: parameters, range: layer.weightOffset..<layer.end,
                   gradient: deltas, inputs: inputs)
}

/// Applies `rule` to `parameters[range]` with the gradient `scale × gradient` (a materialized
/// gradient), or `inputs × gradient` elementwise when `inputs` is given. Both point at the
/// element for `range.lowerBound`.
@inline(__always)
func applyElementwise<Rule: ElementUpdate>(_ rule: Rule, parameters: UnsafeMutablePointer<Float>,
                                           range: Range<Int>, gradient: UnsafePointer<Float>,
                                           inputs: UnsafePointer<Float>? = nil, scale: Float = 1) {
  let one = Lanes(repeating: scale)
  var index = range.lowerBound
  while index + laneCount <= range.upperBound {
    let offset = index &- range.lowerBound
    let updated = rule.updated(parameters.lanes(at: index), input: inputs?.lanes(at: offset) ?? one,
                               delta: gradient.lanes(at: offset), at: index)
    if Rule.writesWeights { parameters.store(updated, at: index) }
    index += laneCount
  }
  while index < range.upperBound {
    let offset = index &- range.lowerBound
    let updated = rule.updated(parameters[index], input: inputs?[offset] ?? scale,
                               delta: gradient[offset], at: index)
    if Rule.writesWeights { parameters[index] = updated }
    index += 1
  }
}
