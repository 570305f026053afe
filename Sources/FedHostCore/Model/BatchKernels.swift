// Minibatch kernels: one layer over several samples as register-blocked matrix products, so each
// weight row is loaded once per block of samples instead of once per sample.
//
// They give the per-sample kernels' bits (Kernels.swift): every output element keeps its
// reduction order — a forward sum starts at the bias and adds inputs in ascending order, a
// propagated delta is one 16-lane accumulator over the columns and `treeSum`, a weight gradient
// adds the samples in sample order. Two differences are provably invisible:
// - The forward pass adds the products of zero inputs, which the per-sample kernel skips.
//   x·w is ±0 for finite w, so a sum changes at most in the sign of a zero, which the ReLU
//   (`Float.maximum(±0, 0)` is +0) removes. Hence these kernels serve ReLU layers only, and
//   callers check that the weights are finite (`allFinite`).
// - A block may repeat its last sample or row to fill its registers: the repeat recomputes and
//   rewrites the same values.

/// `count` vectors of `stride` floats, the `s`-th at `base + s·stride` (one per sample).
struct SampleRows {
  let base: UnsafeMutablePointer<Float>
  let stride: Int

  @inline(__always) subscript(sample: Int) -> UnsafeMutablePointer<Float> { base + sample &* stride }
}

/// False if any of `count` floats is infinite or NaN (`x − x` is NaN exactly for those).
@inline(__always)
func allFinite(_ values: UnsafePointer<Float>, count: Int) -> Bool {
  var sum0 = Lanes.zero
  var sum1 = Lanes.zero
  var index = 0
  while index + 2 * laneCount <= count {
    let first = values.lanes(at: index)
    let second = values.lanes(at: index + laneCount)
    sum0 += first - first
    sum1 += second - second
    index += 2 * laneCount
  }
  var tail: Float = 0
  while index < count {
    tail += values[index] - values[index]
    index += 1
  }
  return !(treeSum(sum0 + sum1) + tail).isNaN
}

/// `output[s] = ReLU(input[s] · W + b)` for `count` samples of one layer whose width is a
/// multiple of 16. Blocks of 4 samples × 16 outputs stay in registers across the input loop;
/// the column strip of W they read (inputWidth × 64 bytes) stays in L1 across the blocks.
@inline(__always)
func batchedReLUForward(_ layer: MLPArchitecture.Layer, inputs: SampleRows, count: Int,
                        parameters: UnsafePointer<Float>, outputs: SampleRows) {
  let outputCount = layer.outputWidth
  let inputCount = layer.inputWidth
  let weights = parameters + layer.weightOffset
  let bias = parameters + layer.biasOffset
  let last = count - 1
  for column in stride(from: 0, to: outputCount, by: laneCount) {
    let start = bias.lanes(at: column)
    var first = 0
    while first < count {
      let x0 = inputs[first]
      let x1 = inputs[min(first + 1, last)]
      let x2 = inputs[min(first + 2, last)]
      let x3 = inputs[min(first + 3, last)]
      var sum0 = start
      var sum1 = start
      var sum2 = start
      var sum3 = start
      var row = UnsafePointer(weights + column)
      for inputIndex in 0..<inputCount {
        let w = row.lanes(at: 0)
        sum0.addProduct(Lanes(repeating: x0[inputIndex]), w)
        sum1.addProduct(Lanes(repeating: x1[inputIndex]), w)
        sum2.addProduct(Lanes(repeating: x2[inputIndex]), w)
        sum3.addProduct(Lanes(repeating: x3[inputIndex]), w)
        row += outputCount
      }
      outputs[first].store(pointwiseMax(sum0, .zero), at: column)
      outputs[min(first + 1, last)].store(pointwiseMax(sum1, .zero), at: column)
      outputs[min(first + 2, last)].store(pointwiseMax(sum2, .zero), at: column)
      outputs[min(first + 3, last)].store(pointwiseMax(sum3, .zero), at: column)
      first += 4
    }
  }
}

/// Adds `Σ_s input[s] ⊗ delta[s]` (samples in order) to the layer's weight gradient and
/// `Σ_s delta[s]` to its bias gradient, for a layer whose width is a multiple of 16. Blocks of
/// 4 rows × 16 columns of the gradient stay in registers across the samples.
@inline(__always)
func batchedGradientAccumulation(_ layer: MLPArchitecture.Layer, inputs: SampleRows,
                                 deltas: SampleRows, count: Int,
                                 gradient: UnsafeMutablePointer<Float>) {
  let outputCount = layer.outputWidth
  let inputCount = layer.inputWidth
  let weights = gradient + layer.weightOffset
  var row = 0
  while row + 4 <= inputCount {
    let rows = weights + row &* outputCount
    for column in stride(from: 0, to: outputCount, by: laneCount) {
      var g0 = rows.lanes(at: column)
      var g1 = rows.lanes(at: outputCount + column)
      var g2 = rows.lanes(at: 2 * outputCount + column)
      var g3 = rows.lanes(at: 3 * outputCount + column)
      for sample in 0..<count {
        let d = deltas[sample].lanes(at: column)
        let x = inputs[sample] + row
        g0.addProduct(Lanes(repeating: x[0]), d)
        g1.addProduct(Lanes(repeating: x[1]), d)
        g2.addProduct(Lanes(repeating: x[2]), d)
        g3.addProduct(Lanes(repeating: x[3]), d)
      }
      rows.store(g0, at: column)
      rows.store(g1, at: outputCount + column)
      rows.store(g2, at: 2 * outputCount + column)
      rows.store(g3, at: 3 * outputCount + column)
    }
    row += 4
  }
  // The remaining rows, and the biases as a row whose input is 1.
  @inline(__always) func accumulateRow(_ target: UnsafeMutablePointer<Float>, input: (Int) -> Float) {
    for column in stride(from: 0, to: outputCount, by: laneCount) {
      var g = target.lanes(at: column)
      for sample in 0..<count { g.addProduct(Lanes(repeating: input(sample)), deltas[sample].lanes(at: column)) }
      target.store(g, at: column)
    }
  }
  while row < inputCount {
    let inputIndex = row
    accumulateRow(weights + row &* outputCount) { inputs[$0][inputIndex] }
    row += 1
  }
  accumulateRow(gradient + layer.biasOffset) { _ in 1 }
}

/// `belowDelta[s] = (W · delta[s]) ⊙ ReLU'(input[s])` for a layer whose width is a multiple of
/// 16, each element reduced as `fusedRows` does. Blocks of 2 rows × 2 samples: the two rows
/// (2 × outputWidth floats) stay in L1 across the samples.
@inline(__always)
func batchedDeltaPropagation(_ layer: MLPArchitecture.Layer, inputs: SampleRows, deltas: SampleRows,
                             count: Int, parameters: UnsafePointer<Float>, belowDeltas: SampleRows) {
  let outputCount = layer.outputWidth
  let inputCount = layer.inputWidth
  let weights = parameters + layer.weightOffset
  var row = 0
  while row < inputCount {
    let rowA = row
    let rowB = min(row + 1, inputCount - 1)
    let weightsA = weights + rowA &* outputCount
    let weightsB = weights + rowB &* outputCount
    var first = 0
    while first < count {
      let sampleA = first
      let sampleB = min(first + 1, count - 1)
      let deltaA = UnsafePointer(deltas[sampleA])
      let deltaB = UnsafePointer(deltas[sampleB])
      var aa = Lanes.zero
      var ab = Lanes.zero
      var ba = Lanes.zero
      var bb = Lanes.zero
      for column in stride(from: 0, to: outputCount, by: laneCount) {
        let wA = weightsA.lanes(at: column)
        let wB = weightsB.lanes(at: column)
        let dA = deltaA.lanes(at: column)
        let dB = deltaB.lanes(at: column)
        aa.addProduct(wA, dA)
        ab.addProduct(wA, dB)
        ba.addProduct(wB, dA)
        bb.addProduct(wB, dB)
      }
      @inline(__always) func write(_ dot: Lanes, sample: Int, row: Int) {
        belowDeltas[sample][row] = reluGated(treeSum(dot), input: inputs[sample][row])
      }
      write(aa, sample: sampleA, row: rowA)
      write(ab, sample: sampleB, row: rowA)
      write(ba, sample: sampleA, row: rowB)
      write(bb, sample: sampleB, row: rowB)
      first += 2
    }
    row += 2
  }
}
