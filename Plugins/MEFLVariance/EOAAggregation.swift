import PluginAPI
import PluginKit
import Synchronization

/// MEFL's server: EOA, the EMA-variance-weighted aggregation (the class documentation has the
/// equations), and the server half of Meta-GDP's alpha update.
extension MEFLVariancePlugin {
  // MARK: Server: EOA

  func aggregate(_ round: AggregationRound) throws {
    let count = round.parameterCount
    let updates = round.updates
    guard direction.isEmpty || direction.count == count else {
      throw PluginFailure.invalid("n_params changed from \(direction.count) to \(count) between rounds")
    }
    let sampleWeights = FederatedAveraging.sampleWeights(updates)
    // The longest block either sweep uses (scratch sizes).
    let scratchLength = blockLength(preferred: WeightedDeltaSum.blockSize, count: count)
    let reportedVariances = try varianceMode == .v3
      ? updates.map { update -> Double in
        let value = try update.requiredMetric(Self.gradientVarianceMetric)
        guard value >= 0 else { throw PluginFailure.invalid("client \(update.clientID): grad_var \(value) is negative") }
        return value
      }
      : []

    // 1–3 in one sweep over the deltas: the comparisons with the reference give the
    // similarities (and V1's distances); V2's mean deltas are updated block by block while
    // the block's deltas are in cache. Records are committed only at the end.
    var records = updates.map { clients[$0.clientID] ?? ClientRecord() }
    // V2: each μ_k is updated into another array (every element is written) that the record
    // adopts when the round commits, so a failed round leaves the old one; a client's first
    // μ_k is 0. The arrays come from the spares the previous round gave back.
    var nextMeanDeltas = varianceMode == .v2 ? updates.map { _ in takeSpareMeanDelta(count: count) } : []
    var meanDistances = [SquaredDistanceSum](repeating: SquaredDistanceSum(), count: updates.count)
    let initialMeanBlock = try ScratchBuffer(repeating: Float(0), count: varianceMode == .v2 ? scratchLength : 0)
    func updateMeanDeltas(_ block: Range<Int>) {
      for index in updates.indices {
        records[index].meanDelta.withUnsafeBufferPointer { old in
          nextMeanDeltas[index].withUnsafeMutableBufferPointer { next in
            guard let next = next.baseAddress else { return }
            let previous = old.count == count ? old.baseAddress.map { $0 + block.lowerBound } : nil
            updateMeanDelta(from: previous ?? UnsafePointer(initialMeanBlock.pointer), into: next + block.lowerBound,
                            with: updates[index], over: block, adding: &meanDistances[index])
          }
        }
      }
    }
    let measuringDistance = varianceMode == .v1
    // V2's running sums need the blocks in order on one thread; V1 and V3 sweep in parallel.
    let afterEachBlock = varianceMode == .v2 ? updateMeanDeltas : nil
    let comparisons = try direction.withUnsafeBufferPointer { direction in
      if directionHasNonzeroElement, let reference = direction.baseAddress {
        try round.compareUpdates(with: reference, measuringDistance: measuringDistance, afterEachBlock: afterEachBlock)
      } else {
        try round.compareUpdatesWithWeightedMean(weights: sampleWeights, measuringDistance: measuringDistance,
                                                 afterEachBlock: afterEachBlock)
      }
    }
    let similarities = comparisons.map { max($0.cosine, similarityFloor) }

    // 3–4. Variance observations and their per-client EMAs.
    for (index, update) in updates.enumerated() {
      let observation: Double
      switch varianceMode {
      case .v1:
        observation = comparisons[index].squaredDistance / Double(max(comparisons[index].coveredCount, 1))
      case .v2:
        guard meanDistances[index].sum.isFinite else {
          throw PluginFailure.numeric("client \(update.clientID): the distance to its mean delta is not finite")
        }
        observation = meanDistances[index].mean
      case .v3:
        observation = reportedVariances[index]
      }
      records[index].variance = records[index].seen
        ? varianceDecay * records[index].variance + (1 - varianceDecay) * observation
        : observation
      records[index].seen = true
    }

    // 5–6. Weights.
    let epsilon = epsilonRelative * median(of: records.map(\.variance)) + epsilonAbsolute
    let rawWeights = updates.indices.map { index in
      similarities[index] / (records[index].variance + epsilon)
        * (weightBySamples ? Double(updates[index].sampleCount) : 1)
    }
    let total = rawWeights.reduce(0, +)
    let weights: [Double]
    if total > 0, total.isFinite {
      weights = rawWeights.map { $0 / total }
    } else {
      host.log(.warn, "round \(round.round): EOA weights sum to \(total); using FedAvg weights")
      weights = sampleWeights
    }
    let newAlpha = try alphaAfterRound(updates: updates, weights: weights, count: count)

    // 7–8 in the second sweep: D_Δ block by block, applied to the output and folded into
    // the next direction (A3: after aggregation) right away. The next direction is written
    // into the previous round's buffer, so no round allocates (and faults in) a new one.
    var nextDirection: [Float] = []
    swap(&nextDirection, &spareDirection)
    if nextDirection.count != count { nextDirection = [Float](repeating: 0, count: count) }
    // In the round's parallel tasks: each writes its own elements and reports its own flags.
    let taskResults: [(nonFinite: SIMD8<Float>, nonzero: Bool)] = try direction.withUnsafeBufferPointer { direction in
      try nextDirection.withUnsafeMutableBufferPointer { nextDirection in
        guard let next = nextDirection.baseAddress else { return [] }
        // The first direction is D itself: 0·D + 1·D, exactly D when D is finite (and when
        // it is not, the round fails).
        let previous = direction.isEmpty ? nil : direction.baseAddress
        return try round.mapTasks(blockLength: scratchLength) { blocks -> (nonFinite: SIMD8<Float>, nonzero: Bool) in
          let sum = try WeightedDeltaSum(updates, weights: weights, maxBlockLength: scratchLength)
          let step = try ScratchBuffer(repeating: Float(0), count: scratchLength)
          var nonFinite = SIMD8<Float>()
          var nonzero = false
          for block in blocks {
            nonFinite += sum.computeBlock(block, base: nil, scale: 1, into: step.pointer)
            let applied = applyStep(step.pointer, global: round.global + block.lowerBound,
                                    output: round.output + block.lowerBound,
                                    direction: previous.map { $0 + block.lowerBound } ?? UnsafePointer(step.pointer),
                                    decay: previous == nil ? 0 : directionDecay,
                                    nextDirection: next + block.lowerBound, count: block.count)
            nonFinite += applied.nonFinite
            nonzero = nonzero || applied.nonzero
          }
          return (nonFinite: nonFinite, nonzero: nonzero)
        }
      }
    }
    let nonFinite = taskResults.reduce(SIMD8<Float>()) { $0 + $1.nonFinite }
    let nonzero = taskResults.contains { $0.nonzero }
    guard !nonFinite.sum().isNaN else { throw round.nonFiniteFailure() }

    // Commit: the direction, the records, α, the round.
    spareDirection = direction
    direction = nextDirection
    directionHasNonzeroElement = nonzero
    for (index, update) in updates.enumerated() {
      if varianceMode == .v2 {
        if records[index].meanDelta.count == count { spareMeanDeltas.append(records[index].meanDelta) }
        records[index].meanDelta = nextMeanDeltas[index]
      }
      clients[update.clientID] = records[index]
    }
    shared.withLock { state in
      if let newAlpha { state.alpha = newAlpha }
      state.pendingAlphaGradients.removeAll()
    }
    roundCount += 1
    round.reportWeights(weights)
  }

  /// One block of the server step: output = global + η_g·D (a Float FMA per element) and the
  /// next direction β m + (1−β) D, in Double.
  /// - Returns: lanes that are NaN iff some output is not finite; whether the next direction
  ///   has a nonzero element.
  private func applyStep(_ step: UnsafePointer<Float>, global: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                         direction: UnsafePointer<Float>, decay: Double, nextDirection: UnsafeMutablePointer<Float>,
                         count: Int) -> (nonFinite: SIMD8<Float>, nonzero: Bool)
  {
    let learningRate = SIMD8<Float>(repeating: Float(serverLearningRate))
    let decays = SIMD8<Double>(repeating: decay), complements = SIMD8<Double>(repeating: 1 - decay)
    var check = SIMD8<Float>()
    var nonzero = SIMDMask<SIMD8<Int32>>()
    /// The output and the next direction of eight elements.
    func apply(_ delta: SIMD8<Float>, _ global: SIMD8<Float>, _ previous: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
      let result = global.addingProduct(learningRate, delta)
      let next = SIMD8<Float>(decays * SIMD8<Double>(previous) + complements * SIMD8<Double>(delta))
      check += result - result
      nonzero .|= next .!= 0
      return (result, next)
    }
    func load(_ source: UnsafePointer<Float>, _ index: Int) -> SIMD8<Float> {
      UnsafeRawPointer(source + index).loadUnaligned(as: SIMD8<Float>.self)
    }
    var index = 0
    while index + 8 <= count {
      let (result, next) = apply(load(step, index), load(global, index), load(direction, index))
      UnsafeMutableRawPointer(output + index).storeBytes(of: result, as: SIMD8<Float>.self)
      UnsafeMutableRawPointer(nextDirection + index).storeBytes(of: next, as: SIMD8<Float>.self)
      index += 8
    }
    // The last one to seven elements, zero-padded (zeros change neither result).
    if index < count {
      func padded(_ source: UnsafePointer<Float>) -> SIMD8<Float> {
        var values = SIMD8<Float>()
        for lane in 0..<(count - index) { values[lane] = source[index + lane] }
        return values
      }
      let (result, next) = apply(padded(step), padded(global), padded(direction))
      for lane in 0..<(count - index) {
        output[index + lane] = result[lane]
        nextDirection[index + lane] = next[lane]
      }
    }
    return (check, any(nonzero))
  }

  /// A μ_k array of `count` floats to overwrite: a spare, or a new one.
  private func takeSpareMeanDelta(count: Int) -> [Float] {
    while let spare = spareMeanDeltas.popLast() {
      if spare.count == count { return spare }
    }
    return [Float](repeating: 0, count: count)
  }

  /// Σ‖Δ − μ‖² over the covered elements of the blocks seen so far, in four lanes (element
  /// e into lane e mod 4; blocks start at multiples of 4), and how many elements that is.
  struct SquaredDistanceSum {
    var lanes = SIMD4<Double>()
    var count = 0
    var sum: Double { lanes[0] + lanes[1] + lanes[2] + lanes[3] }
    var mean: Double { sum / Double(max(count, 1)) }
  }

  /// V2 on one block: μ ← λμ + (1−λ)Δ on the covered elements (in Double, rounded to Float),
  /// from `previous` into `next` (both at the block's first element); adds ‖Δ − μ‖² there,
  /// with the updated μ before rounding, to `distance`.
  private func updateMeanDelta(from previous: UnsafePointer<Float>, into next: UnsafeMutablePointer<Float>,
                               with update: ClientUpdateView, over block: Range<Int>,
                               adding distance: inout SquaredDistanceSum) {
    let decay = SIMD4<Double>(repeating: meanDecay), complement = SIMD4<Double>(repeating: 1 - meanDecay)
    let delta = UnsafeRawPointer(update.delta + block.lowerBound)
    let coverage = update.coverage.map { UnsafeRawPointer($0 + block.lowerBound) }
    let previous = UnsafeRawPointer(previous), next = UnsafeMutableRawPointer(next)
    var lanes = distance.lanes
    var covered = SIMD4<Int64>()
    /// The new μ of four elements; `ones` is 1 where an element is covered, else 0 (its Δ
    /// may be NaN, or it is padding).
    func updated(_ values: SIMD4<Double>, _ previous: SIMD4<Float>, _ ones: SIMD4<Int64>) -> SIMD4<Float> {
      let updated = decay * SIMD4<Double>(previous) + complement * values
      let difference = SIMD4<Double>().replacing(with: values - updated, where: ones .!= 0)
      lanes = lanes.addingProduct(difference, difference)
      covered &+= ones
      return SIMD4<Float>(updated).replacing(with: previous, where: SIMD4<Int32>(truncatingIfNeeded: ones) .== 0)
    }
    func isCovered(_ index: Int) -> Bool { coverage.map { $0.load(fromByteOffset: index, as: UInt8.self) != 0 } ?? true }
    let quads = block.count & ~3
    var index = 0
    while index < quads {
      var ones = SIMD4<Int64>(repeating: 1)
      if let coverage {
        let flags = SIMD4<Int64>(truncatingIfNeeded: coverage.loadUnaligned(fromByteOffset: index, as: SIMD4<UInt8>.self))
        ones.replace(with: 0, where: flags .== 0)
      }
      let mean = updated(SIMD4<Double>(delta.loadUnaligned(fromByteOffset: index * 4, as: SIMD4<Float>.self)),
                         previous.loadUnaligned(fromByteOffset: index * 4, as: SIMD4<Float>.self), ones)
      next.storeBytes(of: mean, toByteOffset: index * 4, as: SIMD4<Float>.self)
      index += 4
    }
    if quads < block.count {
      // The last one to three elements, zero-padded; the padding counts as not covered.
      var values = SIMD4<Double>(), means = SIMD4<Float>(), ones = SIMD4<Int64>()
      for lane in 0..<(block.count - quads) {
        values[lane] = Double(delta.load(fromByteOffset: (quads + lane) * 4, as: Float.self))
        means[lane] = previous.load(fromByteOffset: (quads + lane) * 4, as: Float.self)
        ones[lane] = isCovered(quads + lane) ? 1 : 0
      }
      let mean = updated(values, means, ones)
      for lane in 0..<(block.count - quads) { next.storeBytes(of: mean[lane], toByteOffset: (quads + lane) * 4, as: Float.self) }
    }
    distance.lanes = lanes
    distance.count += Int(covered.wrappedSum())
  }

  /// α − η_g·β_loc·Σ_k q̃_k G_α,k over this round's clients that sent G_α; nil if none did.
  private func alphaAfterRound(updates: [ClientUpdateView], weights: [Double], count: Int) throws -> [Float]? {
    guard learnAlpha else { return nil }
    let (alpha, pending) = shared.withLock { ($0.alpha, $0.pendingAlphaGradients) }
    let contributors = updates.indices.compactMap { index -> (Double, [Float])? in
      guard let gradient = pending[updates[index].clientID], gradient.count == count else { return nil }
      return (weights[index], gradient)
    }
    guard !contributors.isEmpty, alpha.count == count else { return nil }
    let weightTotal = contributors.reduce(0) { $0 + $1.0 }
    guard weightTotal > 0 else { return nil }
    let scale = serverLearningRate * Double(metaLearningRate) / weightTotal
    // Block by block, so that the loops over elements vectorize and the contributors'
    // gradients stream; per element the same sum as before: from 0, in update order.
    let length = blockLength(preferred: WeightedDeltaSum.blockSize, count: count)
    let sums = try ScratchBuffer(repeating: 0.0, count: length)
    let updated = alpha.withUnsafeBufferPointer { alpha in
      [Float](unsafeUninitializedCapacity: count) { updated, initializedCount in
        for block in elementBlocks(0..<count, length: length) {
          let sum = sums.pointer, start = block.lowerBound
          sum.update(repeating: 0, count: block.count)
          for (weight, gradient) in contributors {
            gradient.withUnsafeBufferPointer { gradient in
              for offset in 0..<block.count { sum[offset] += weight * Double(gradient[start + offset]) }
            }
          }
          for offset in 0..<block.count { updated[start + offset] = Float(Double(alpha[start + offset]) - scale * sum[offset]) }
        }
        initializedCount = count
      }
    }
    guard updated.allSatisfy(\.isFinite) else {
      throw PluginFailure.numeric("round \(roundCount): the learning-rate vector alpha would not be finite")
    }
    return updated
  }
}
