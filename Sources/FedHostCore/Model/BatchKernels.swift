// Minibatch kernels: one layer over several samples as register-blocked matrix products, so each
// weight row is loaded once per block of samples instead of once per sample.
//
// They give the per-sample kernels' bits (Kernels.swift): every output element keeps its
// reduction order — a forward sum starts at the bias and adds inputs in ascending order, a
// propagated delta is one 16-lane accumulator over the columns and `treeSum`, a weight gradient
// adds the samples in sample order. Three differences are provably invisible:
// - The forward pass adds the products of zero inputs, which the per-sample kernel skips.
//   x·w is ±0 for finite w, so a sum changes at most in the sign of a zero, which the ReLU
//   (`Float.maximum(±0, 0)` is +0) removes. Hence these kernels serve ReLU layers only, and
//   callers check that the layer's weights and biases are finite (`allFinite`).
// - The ReLU is `relu`, not `pointwiseMax(_, .zero)`: they differ only on a signaling NaN, which
//   no sum here can be (every sum went through a multiply-add, and the biases are finite).
// - A block may repeat its last sample or row to fill its registers: the repeat recomputes and
//   rewrites the same values.
//
// The blocks (up to 16 accumulators of 16 lanes) are sized for AVX-512's 32 vector registers,
// where a 16-lane vector is one register; with AVX2 alone they spill (not measured).

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

/// `x` where it is above 0, +0 elsewhere (NaN included), as `Float.maximum(x, 0)` but for a
/// signaling NaN. The stdlib's generic `pointwiseMax` is not always inlined, and its out-of-line
/// copy is a scalar loop: 40 % of batch-16 training's time, measured with perf.
@inline(__always) func relu(_ x: Lanes) -> Lanes { x.replacing(with: 0, where: .!(x .> 0)) }

/// `output[s] = ReLU(input[s] · W + b)` for `count` samples of one layer whose width is a
/// multiple of 16. Blocks of 8 samples × 16 outputs stay in registers across the input loop (8
/// independent chains keep the FMA pipes busy); the column strip of W they read
/// (inputWidth × 64 bytes) stays in L1 across the blocks.
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
      let x0 = inputs[first], x1 = inputs[min(first + 1, last)]
      let x2 = inputs[min(first + 2, last)], x3 = inputs[min(first + 3, last)]
      let x4 = inputs[min(first + 4, last)], x5 = inputs[min(first + 5, last)]
      let x6 = inputs[min(first + 6, last)], x7 = inputs[min(first + 7, last)]
      var sum0 = start, sum1 = start, sum2 = start, sum3 = start
      var sum4 = start, sum5 = start, sum6 = start, sum7 = start
      var row = UnsafePointer(weights + column)
      for inputIndex in 0..<inputCount {
        let w = row.lanes(at: 0)
        sum0.addProduct(Lanes(repeating: x0[inputIndex]), w)
        sum1.addProduct(Lanes(repeating: x1[inputIndex]), w)
        sum2.addProduct(Lanes(repeating: x2[inputIndex]), w)
        sum3.addProduct(Lanes(repeating: x3[inputIndex]), w)
        sum4.addProduct(Lanes(repeating: x4[inputIndex]), w)
        sum5.addProduct(Lanes(repeating: x5[inputIndex]), w)
        sum6.addProduct(Lanes(repeating: x6[inputIndex]), w)
        sum7.addProduct(Lanes(repeating: x7[inputIndex]), w)
        row += outputCount
      }
      outputs[first].store(relu(sum0), at: column)
      outputs[min(first + 1, last)].store(relu(sum1), at: column)
      outputs[min(first + 2, last)].store(relu(sum2), at: column)
      outputs[min(first + 3, last)].store(relu(sum3), at: column)
      outputs[min(first + 4, last)].store(relu(sum4), at: column)
      outputs[min(first + 5, last)].store(relu(sum5), at: column)
      outputs[min(first + 6, last)].store(relu(sum6), at: column)
      outputs[min(first + 7, last)].store(relu(sum7), at: column)
      first += 8
    }
  }
}

/// Adds `Σ_s input[s] ⊗ delta[s]` (samples in order) to the layer's weight gradient and
/// `Σ_s delta[s]` to its bias gradient, for a layer whose width is a multiple of 16. Blocks of
/// 8 rows × 16 columns of the gradient stay in registers across the samples.
@inline(__always)
func batchedGradientAccumulation(_ layer: MLPArchitecture.Layer, inputs: SampleRows,
                                 deltas: SampleRows, count: Int,
                                 gradient: UnsafeMutablePointer<Float>) {
  let outputCount = layer.outputWidth
  let inputCount = layer.inputWidth
  let weights = gradient + layer.weightOffset
  var row = 0
  while row + 8 <= inputCount {
    let rows = weights + row &* outputCount
    for column in stride(from: 0, to: outputCount, by: laneCount) {
      var g0 = rows.lanes(at: column)
      var g1 = rows.lanes(at: outputCount + column)
      var g2 = rows.lanes(at: 2 * outputCount + column)
      var g3 = rows.lanes(at: 3 * outputCount + column)
      var g4 = rows.lanes(at: 4 * outputCount + column)
      var g5 = rows.lanes(at: 5 * outputCount + column)
      var g6 = rows.lanes(at: 6 * outputCount + column)
      var g7 = rows.lanes(at: 7 * outputCount + column)
      for sample in 0..<count {
        let d = deltas[sample].lanes(at: column)
        let x = inputs[sample] + row
        g0.addProduct(Lanes(repeating: x[0]), d)
        g1.addProduct(Lanes(repeating: x[1]), d)
        g2.addProduct(Lanes(repeating: x[2]), d)
        g3.addProduct(Lanes(repeating: x[3]), d)
        g4.addProduct(Lanes(repeating: x[4]), d)
        g5.addProduct(Lanes(repeating: x[5]), d)
        g6.addProduct(Lanes(repeating: x[6]), d)
        g7.addProduct(Lanes(repeating: x[7]), d)
      }
      rows.store(g0, at: column)
      rows.store(g1, at: outputCount + column)
      rows.store(g2, at: 2 * outputCount + column)
      rows.store(g3, at: 3 * outputCount + column)
      rows.store(g4, at: 4 * outputCount + column)
      rows.store(g5, at: 5 * outputCount + column)
      rows.store(g6, at: 6 * outputCount + column)
      rows.store(g7, at: 7 * outputCount + column)
    }
    row += 8
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

/// `treeSum` of 16 vectors at once, lane `q` holding `treeSum(v[q])`: the same additions of the
/// same pairs, done for all 16 in 15 vector adds and their shuffles.
@inline(__always)
func treeSums(_ v: (Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes,
                    Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes, Lanes)) -> Lanes {
  typealias Eight = SIMD8<Float>
  // Step 1 (16 → 8 lanes per vector): lanes 0–7 of the result are a's, 8–15 b's.
  @inline(__always) func halves(_ a: Lanes, _ b: Lanes) -> Lanes {
    Lanes(lowHalf: a.lowHalf, highHalf: b.lowHalf) + Lanes(lowHalf: a.highHalf, highHalf: b.highHalf)
  }
  // Step 2 (8 → 4), on vectors holding two 8-lane partial sums each.
  @inline(__always) func quarters(_ a: Lanes, _ b: Lanes) -> Lanes {
    Lanes(lowHalf: Eight(lowHalf: a.lowHalf.lowHalf, highHalf: a.highHalf.lowHalf),
          highHalf: Eight(lowHalf: b.lowHalf.lowHalf, highHalf: b.highHalf.lowHalf))
      + Lanes(lowHalf: Eight(lowHalf: a.lowHalf.highHalf, highHalf: a.highHalf.highHalf),
              highHalf: Eight(lowHalf: b.lowHalf.highHalf, highHalf: b.highHalf.highHalf))
  }
  // Step 3 (4 → 2), on vectors of four 4-lane sums: pairs of floats moved as doubles.
  @inline(__always) func eighths(_ a: Lanes, _ b: Lanes) -> Lanes {
    let pairsA = unsafeBitCast(a, to: SIMD8<Double>.self)
    let pairsB = unsafeBitCast(b, to: SIMD8<Double>.self)
    return unsafeBitCast(SIMD8<Double>(lowHalf: pairsA.evenHalf, highHalf: pairsB.evenHalf), to: Lanes.self)
      + unsafeBitCast(SIMD8<Double>(lowHalf: pairsA.oddHalf, highHalf: pairsB.oddHalf), to: Lanes.self)
  }
  // Step 4 (2 → 1), on vectors of eight 2-lane sums.
  @inline(__always) func last(_ a: Lanes, _ b: Lanes) -> Lanes {
    Lanes(lowHalf: a.evenHalf, highHalf: b.evenHalf) + Lanes(lowHalf: a.oddHalf, highHalf: b.oddHalf)
  }
  let low = eighths(quarters(halves(v.0, v.1), halves(v.2, v.3)), quarters(halves(v.4, v.5), halves(v.6, v.7)))
  let high = eighths(quarters(halves(v.8, v.9), halves(v.10, v.11)),
                     quarters(halves(v.12, v.13), halves(v.14, v.15)))
  return last(low, high)
}

/// `belowDelta[s] = (W · delta[s]) ⊙ ReLU'(input[s])` for a layer whose width is a multiple of
/// 16, each element reduced as `fusedRows` does. Blocks of 4 samples × 4 rows: 16 accumulators,
/// reduced together by `treeSums`, gated and stored as 4 rows per sample. The block's rows
/// (4 × outputWidth floats) stay in L1 across the samples.
@inline(__always)
func batchedDeltaPropagation(_ layer: MLPArchitecture.Layer, inputs: SampleRows, deltas: SampleRows,
                             count: Int, parameters: UnsafePointer<Float>, belowDeltas: SampleRows) {
  let outputCount = layer.outputWidth
  let inputCount = layer.inputWidth
  let weights = parameters + layer.weightOffset
  let lastRow = inputCount - 1
  let lastSample = count - 1
  var row = 0
  while row < inputCount {
    let rowIndices = SIMD4(row, min(row + 1, lastRow), min(row + 2, lastRow), min(row + 3, lastRow))
    let w0 = weights + rowIndices[0] &* outputCount, w1 = weights + rowIndices[1] &* outputCount
    let w2 = weights + rowIndices[2] &* outputCount, w3 = weights + rowIndices[3] &* outputCount
    var first = 0
    while first < count {
      let samples = SIMD4(first, min(first + 1, lastSample), min(first + 2, lastSample), min(first + 3, lastSample))
      let d0 = UnsafePointer(deltas[samples[0]]), d1 = UnsafePointer(deltas[samples[1]])
      let d2 = UnsafePointer(deltas[samples[2]]), d3 = UnsafePointer(deltas[samples[3]])
      var a00 = Lanes.zero, a01 = Lanes.zero, a02 = Lanes.zero, a03 = Lanes.zero
      var a10 = Lanes.zero, a11 = Lanes.zero, a12 = Lanes.zero, a13 = Lanes.zero
      var a20 = Lanes.zero, a21 = Lanes.zero, a22 = Lanes.zero, a23 = Lanes.zero
      var a30 = Lanes.zero, a31 = Lanes.zero, a32 = Lanes.zero, a33 = Lanes.zero
      for column in stride(from: 0, to: outputCount, by: laneCount) {
        let r0 = w0.lanes(at: column), r1 = w1.lanes(at: column)
        let r2 = w2.lanes(at: column), r3 = w3.lanes(at: column)
        let e0 = d0.lanes(at: column)
        a00.addProduct(r0, e0); a01.addProduct(r1, e0); a02.addProduct(r2, e0); a03.addProduct(r3, e0)
        let e1 = d1.lanes(at: column)
        a10.addProduct(r0, e1); a11.addProduct(r1, e1); a12.addProduct(r2, e1); a13.addProduct(r3, e1)
        let e2 = d2.lanes(at: column)
        a20.addProduct(r0, e2); a21.addProduct(r1, e2); a22.addProduct(r2, e2); a23.addProduct(r3, e2)
        let e3 = d3.lanes(at: column)
        a30.addProduct(r0, e3); a31.addProduct(r1, e3); a32.addProduct(r2, e3); a33.addProduct(r3, e3)
      }
      // Lanes 4s..4s+3: sample s's four rows, gated by ReLU' of its inputs there.
      let sums = treeSums((a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33))
      @inline(__always) func write(_ dots: SIMD4<Float>, sample: Int) {
        let input = inputs[sample], below = belowDeltas[sample]
        if row + 4 <= inputCount {
          let x = UnsafeRawPointer(input + row).loadUnaligned(as: SIMD4<Float>.self)
          // reluGated, four at a time: the sum where x > 0, +0 elsewhere.
          UnsafeMutableRawPointer(below + row).storeBytes(of: dots.replacing(with: 0, where: .!(x .> 0)),
                                                          as: SIMD4<Float>.self)
        } else {
          for offset in 0..<4 {
            below[rowIndices[offset]] = reluGated(dots[offset], input: input[rowIndices[offset]])
          }
        }
      }
      write(sums.lowHalf.lowHalf, sample: samples[0])
      write(sums.lowHalf.highHalf, sample: samples[1])
      write(sums.highHalf.lowHalf, sample: samples[2])
      write(sums.highHalf.highHalf, sample: samples[3])
      first += 4
    }
    row += 4
  }
}
