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
/// parameter's flat index.
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
    second.addProduct(gradient * gradient - second, Lanes(repeating: secondDecay))
    m.store(first, at: index)
    v.store(second, at: index)
    return weights - first * stepSize / (second.squareRoot() + epsilon)
  }

  @inline(__always)
  func updated(_ weight: Float, input: Float, delta: Float, at index: Int) -> Float {
    let gradient = input * delta
    let first = m[index].addingProduct(gradient - m[index], firstDecay)
    let second = v[index].addingProduct(gradient * gradient - v[index], secondDecay)
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

/// `output = input · W + b` for one layer (W stored [input][output]), ReLU'd if `relu`.
/// Outputs are computed in blocks of 64 held in registers across the whole input loop.
@inline(__always)
func denseForward(_ layer: MLPArchitecture.Layer, input: UnsafePointer<Float>,
                  parameters: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                  relu: Bool) {
  let inputCount = layer.inputWidth
  let outputCount = layer.outputWidth
  let weights = parameters + layer.weightOffset
  let bias = parameters + layer.biasOffset
  @inline(__always) func activate(_ value: Lanes) -> Lanes {
    relu ? pointwiseMax(value, .zero) : value
  }
  var column = 0
  while column + 4 * laneCount <= outputCount {
    var sum0 = bias.lanes(at: column)
    var sum1 = bias.lanes(at: column + laneCount)
    var sum2 = bias.lanes(at: column + 2 * laneCount)
    var sum3 = bias.lanes(at: column + 3 * laneCount)
    var row = weights + column
    for inputIndex in 0..<inputCount {
      let x = Lanes(repeating: input[inputIndex])
      sum0.addProduct(x, row.lanes(at: 0))
      sum1.addProduct(x, row.lanes(at: laneCount))
      sum2.addProduct(x, row.lanes(at: 2 * laneCount))
      sum3.addProduct(x, row.lanes(at: 3 * laneCount))
      row += outputCount
    }
    output.store(activate(sum0), at: column)
    output.store(activate(sum1), at: column + laneCount)
    output.store(activate(sum2), at: column + 2 * laneCount)
    output.store(activate(sum3), at: column + 3 * laneCount)
    column += 4 * laneCount
  }
  while column + laneCount <= outputCount {
    var sum = bias.lanes(at: column)
    var row = weights + column
    for inputIndex in 0..<inputCount {
      sum.addProduct(Lanes(repeating: input[inputIndex]), row.lanes(at: 0))
      row += outputCount
    }
    output.store(activate(sum), at: column)
    column += laneCount
  }
  guard column < outputCount else { return }
  // Narrow tail (fewer than 16 outputs): accumulate in memory, one input row at a time.
  for outputIndex in column..<outputCount { output[outputIndex] = bias[outputIndex] }
  for inputIndex in 0..<inputCount {
    let x = input[inputIndex]
    let row = weights + inputIndex * outputCount
    for outputIndex in column..<outputCount {
      output[outputIndex] = output[outputIndex].addingProduct(x, row[outputIndex])
    }
  }
  if relu {
    for outputIndex in column..<outputCount { output[outputIndex] = max(output[outputIndex], 0) }
  }
}

/// Backward pass through one layer fused with `rule`, in one sweep over its weights: for each
/// input row, load W once, accumulate `W·delta` with the old weights (the input's delta, masked
/// by ReLU' of the input) and hand `input × delta` to the rule, which writes the new weights.
/// `inputDelta` nil skips the propagation (first trained layer).
@inline(__always)
func denseBackward<Rule: ElementUpdate>(
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
    var column = 0
    while column + laneCount <= outputCount {
      let weights = row.lanes(at: column)
      let d = delta.lanes(at: column)
      dot.addProduct(weights, d)
      let updated = rule.updated(weights, input: xLanes, delta: d, at: rowStart + column)
      if Rule.writesWeights { row.store(updated, at: column) }
      column += laneCount
    }
    var scalarDot = treeSum(dot)
    while column < outputCount {
      let weight = row[column]
      scalarDot = scalarDot.addingProduct(weight, delta[column])
      let updated = rule.updated(weight, input: x, delta: delta[column], at: rowStart + column)
      if Rule.writesWeights { row[column] = updated }
      column += 1
    }
    if let inputDelta { inputDelta[inputIndex] = x > 0 ? scalarDot : 0 }
  }
  applyElementwise(rule, parameters: parameters, range: layer.biasOffset..<layer.end,
                   gradient: delta)
}

/// Applies `rule` to `parameters[range]` with a materialized gradient; `gradient` points at the
/// element for `range.lowerBound`.
@inline(__always)
func applyElementwise<Rule: ElementUpdate>(_ rule: Rule, parameters: UnsafeMutablePointer<Float>,
                                           range: Range<Int>, gradient: UnsafePointer<Float>) {
  let one = Lanes(repeating: 1)
  var index = range.lowerBound
  while index + laneCount <= range.upperBound {
    let updated = rule.updated(parameters.lanes(at: index), input: one,
                               delta: gradient.lanes(at: index - range.lowerBound), at: index)
    if Rule.writesWeights { parameters.store(updated, at: index) }
    index += laneCount
  }
  while index < range.upperBound {
    let updated = rule.updated(parameters[index], input: 1,
                               delta: gradient[index - range.lowerBound], at: index)
    if Rule.writesWeights { parameters[index] = updated }
    index += 1
  }
}
