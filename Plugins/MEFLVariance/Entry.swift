import PluginAPI
import PluginKit
import Synchronization

/// MEFL (Tang et al., Entropy 2025), as reconstructed in docs algorithms.md §1.
///
/// Server — EOA (§1.3). Deltas Δ_k = −g_k. The EMA direction is kept in delta convention
/// (m_Δ = −m), which leaves every cosine and distance unchanged. Per round:
///  1. reference r = m_Δ if initialized and nonzero, else this round's FedAvg mean delta;
///  2. s_k = max(cos(Δ_k, r), s_min);
///  3. u_k: V1 ‖Δ_k − r‖²/d_k; V2 μ_k ← λμ_k + (1−λ)Δ_k (μ_k starts at 0), u_k = ‖Δ_k − μ_k‖²/d_k;
///     V3 the client's reported "grad_var";
///  4. v_k = u_k the first time, else γ v_k + (1−γ) u_k;
///  5. ω_k = s_k / (v_k + ε), ε = ε_rel·median(v over this round's clients) + ε_abs
///     (× n_k if weight_by_samples);
///  6. q_k = ω_k/Σω, or FedAvg's p_k when Σω is not positive and finite;
///  7. D_Δ = Σ q_k Δ_k (per element over covering clients), global ← global + η_g·D_Δ;
///  8. afterwards (A3) m_Δ = D_Δ the first time, else β_m m_Δ + (1−β_m) D_Δ.
/// d_k is the number of elements client k covers; cosines and distances run over them only.
///
/// Client — Meta-GDP (§1.2), first-order Meta-SGD through `train_local`:
///   φ_0 = θ; φ_{j+1} = φ_j − α ⊙ ∇L_support(φ_j; b_j) for J steps on seeded mini-batches;
///   G_θ = ∇L_query(φ_J); G_α = −G_θ ⊙ Σ_j ∇L_support(φ_j; b_j); θ ← θ − β_loc·G_θ.
/// α is ONE vector per plugin instance (FedMeta's federated α), initialized to the constant
/// alpha_init. It is only READ during `train_local`, which runs concurrently for many
/// clients: each call stores its G_α, and `aggregate` applies
///   α ← α − η_g·β_loc·Σ_k q̃_k G_α,k
/// with the EOA weights q renormalized over the clients that sent one — the α half of
/// §1.3 step 7 (Δα_k = −β_loc·G_α,k). Mini-batches come from a generator per
/// (seed, round, client), so the result is the same for any thread count.
final class MEFLVariancePlugin: FedHostPlugin, @unchecked Sendable {
  static let metadata = PluginMetadata(
    id: "org.fedhost.mefl-variance", name: "MEFL-EOA + Meta-GDP", version: "1.0.0",
    summary: "MEFL: server weights clients by max(cos to the EMA direction, floor) / (EMA variance + eps); "
      + "clients run first-order Meta-SGD with a shared, server-updated learning-rate vector alpha.",
    capabilities: [.aggregate, .trainLocal, .state],
    configKeys: [
      .string("variance_mode", default: "v1", choices: ["v1", "v2", "v3"],
              "variance observation: v1 distance to the reference, v2 distance to the client's EMA, v3 client-reported grad_var"),
      .number("direction_ema", default: 0.9, in: 0...1, "beta_m: EMA factor of the global update direction m"),
      .number("variance_ema", default: 0.9, in: 0...1, "gamma: EMA factor of each client's variance v_k"),
      .number("mean_ema", default: 0.9, in: 0...1, "lambda: EMA factor of each client's mean delta (v2 only)"),
      .number("similarity_floor", default: 0.1, in: 0...1, "s_min: lower bound of the cosine similarity"),
      .number("epsilon_relative", default: 1e-8, in: 0...1, "eps = epsilon_relative * median(v_k) + epsilon_absolute"),
      .number("epsilon_absolute", default: 1e-12, in: 0...1, "absolute part of eps"),
      .number("server_learning_rate", default: 1.0, in: 0...1000, "eta_g: global += eta_g * sum_k q_k delta_k"),
      .boolean("weight_by_samples", default: false, "multiply each raw weight by the client's sample count"),
      .integer("inner_steps", default: 5, in: 1...10_000, "J: inner Meta-SGD steps on support mini-batches"),
      .integer("inner_batch_size", default: 10, in: 1...1_000_000, "rows per support mini-batch"),
      .integer("outer_steps", default: 1, in: 1...1_000, "E_out: meta steps per round"),
      .number("meta_learning_rate", default: 1e-3, in: 0...1000, "beta_loc: theta -= beta_loc * G_theta"),
      .number("alpha_init", default: 0.01, in: -1000...1000, "initial value of every element of alpha"),
      .boolean("learn_alpha", default: true, "update alpha from the clients' alpha-gradients (else keep it fixed)"),
    ],
    stateVersion: 1)

  /// The metric V3 reads: mean over coordinates of the variance of the support gradients.
  static let gradientVarianceMetric = "grad_var"

  private enum VarianceMode: String { case v1, v2, v3 }

  /// What EOA remembers about one client.
  private struct ClientRecord {
    var variance = 0.0
    var seen = false
    /// μ_k (V2 only), empty until the client's first round.
    var meanDelta: [Float] = []
  }

  /// State `train_local` touches from many threads at once.
  private struct SharedState {
    var alpha: [Float] = []
    var pendingAlphaGradients: [UInt32: [Float]] = [:]
  }

  // Config.
  private let varianceMode: VarianceMode
  private let directionDecay, varianceDecay, meanDecay: Double
  private let similarityFloor, epsilonRelative, epsilonAbsolute, serverLearningRate: Double
  private let weightBySamples: Bool
  private let innerSteps, innerBatchSize, outerSteps: Int
  private let metaLearningRate: Float
  private let alphaInit: Float
  private let learnAlpha: Bool
  private let host: PluginHost

  // State, changed only in [serialized] calls (aggregate, load_state).
  private var seed: UInt64
  private var roundCount: UInt64 = 0
  private var direction: [Float] = []
  /// Whether `direction` can serve as the reference (derived, not saved).
  private var directionHasNonzeroElement = false
  /// The previous round's direction buffer, reused for the next one (scratch, not saved).
  private var spareDirection: [Float] = []
  /// V2: the μ_k arrays the previous round replaced, reused for the next one (not saved).
  private var spareMeanDeltas: [[Float]] = []
  private var clients: [UInt32: ClientRecord] = [:]
  private let shared = Mutex(SharedState())

  init(config: PluginConfig, host: PluginHost) throws {
    varianceMode = VarianceMode(rawValue: try config.string("variance_mode")) ?? .v1
    directionDecay = try config.number("direction_ema")
    varianceDecay = try config.number("variance_ema")
    meanDecay = try config.number("mean_ema")
    similarityFloor = try config.number("similarity_floor")
    epsilonRelative = try config.number("epsilon_relative")
    epsilonAbsolute = try config.number("epsilon_absolute")
    serverLearningRate = try config.number("server_learning_rate")
    weightBySamples = try config.boolean("weight_by_samples")
    innerSteps = Int(try config.integer("inner_steps"))
    innerBatchSize = Int(try config.integer("inner_batch_size"))
    outerSteps = Int(try config.integer("outer_steps"))
    metaLearningRate = Float(try config.number("meta_learning_rate"))
    alphaInit = Float(try config.number("alpha_init"))
    learnAlpha = try config.boolean("learn_alpha")
    seed = config.seed
    self.host = host
  }

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
    let epsilon = epsilonRelative * Self.median(records.map(\.variance)) + epsilonAbsolute
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
  private struct SquaredDistanceSum {
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

  private static func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
  }

  // MARK: Client: Meta-GDP

  func trainLocal(_ services: ClientServices, weights theta: UnsafeMutableBufferPointer<Float>) throws {
    let count = theta.count
    let client = services.clientID
    guard services.supportCount > 0 else {
      throw PluginFailure.invalid("client \(client) has no support rows to adapt on")
    }
    let alpha = try shared.withLock { state -> [Float] in
      if state.alpha.isEmpty { state.alpha = [Float](repeating: alphaInit, count: count) }
      guard state.alpha.count == count else {
        throw PluginFailure.invalid("n_params \(count) differs from alpha's \(state.alpha.count)")
      }
      return state.alpha
    }
    // Per-call scratch: nothing here is shared with concurrent calls.
    let adapted = try ScratchBuffer(repeating: Float(0), count: count)
    let gradient = try ScratchBuffer(repeating: Float(0), count: count)
    let supportGradientSum = try ScratchBuffer(repeating: Float(0), count: count)
    let alphaGradient = try ScratchBuffer(repeating: Float(0), count: count)
    var variance = try WelfordVariance(count: varianceMode == .v3 ? count : 0)
    var generator = SeededGenerator(seed: seed, streams: roundCount, UInt64(client))
    let querySplit: DataSplit = services.queryCount > 0 ? .query : .support

    for _ in 0..<outerSteps {
      _ = adapted.buffer.update(fromContentsOf: theta)
      supportGradientSum.buffer.update(repeating: 0)
      for _ in 0..<innerSteps {
        let rows = Self.miniBatch(&generator, rows: services.supportCount, size: innerBatchSize)
        _ = try services.gradient(.support, rows: rows, weights: UnsafeBufferPointer(adapted.buffer),
                                  into: gradient.buffer)
        for index in 0..<count {
          adapted.pointer[index] -= alpha[index] * gradient.pointer[index]
          supportGradientSum.pointer[index] += gradient.pointer[index]
        }
        variance.add(gradient.pointer)
      }
      _ = try services.gradient(querySplit, rows: nil, weights: UnsafeBufferPointer(adapted.buffer),
                                into: gradient.buffer)
      for index in 0..<count {
        theta[index] -= metaLearningRate * gradient.pointer[index]
        alphaGradient.pointer[index] -= gradient.pointer[index] * supportGradientSum.pointer[index]
      }
    }
    guard theta.allSatisfy(\.isFinite) else {
      throw PluginFailure.numeric("client \(client): Meta-SGD produced non-finite weights")
    }
    if varianceMode == .v3 { try services.reportMetric(Self.gradientVarianceMetric, variance.meanVariance) }
    if learnAlpha {
      let gradientCopy = Array(alphaGradient.buffer)
      shared.withLock { $0.pendingAlphaGradients[client] = gradientCopy }
    }
  }

  /// `size` distinct rows of 0..<rows (Floyd's sampling, in draw order); nil (the whole
  /// split) when the split is not larger than a batch.
  private static func miniBatch(_ generator: inout SeededGenerator, rows: Int, size: Int) -> [UInt64]? {
    guard rows > size else { return nil }
    var batch: [UInt64] = []
    batch.reserveCapacity(size)
    for candidateLimit in (rows - size)..<rows {
      let draw = generator.next(below: UInt64(candidateLimit + 1))
      batch.append(batch.contains(draw) ? UInt64(candidateLimit) : draw)
    }
    return batch
  }

  // MARK: State

  func saveState(into writer: inout StateWriter) throws {
    writer.write(seed)
    writer.write(roundCount)
    writer.write(direction)
    writer.write(UInt64(clients.count))
    for client in clients.keys.sorted() {
      guard let record = clients[client] else { continue }
      writer.write(client)
      writer.write(record.variance)
      writer.write(record.seen)
      writer.write(record.meanDelta)
    }
    let (alpha, pending) = shared.withLock { ($0.alpha, $0.pendingAlphaGradients) }
    writer.write(alpha)
    writer.write(UInt64(pending.count))
    for client in pending.keys.sorted() {
      writer.write(client)
      writer.write(pending[client] ?? [])
    }
  }

  func loadState(from reader: inout StateReader) throws {
    // Read everything first: a corrupt state must leave the instance untouched.
    let loadedSeed: UInt64 = try reader.read()
    let loadedRound: UInt64 = try reader.read()
    let loadedDirection: [Float] = try reader.read()
    var loadedClients: [UInt32: ClientRecord] = [:]
    let clientCount: UInt64 = try reader.read()
    for _ in 0..<clientCount {
      let client: UInt32 = try reader.read()
      loadedClients[client] = ClientRecord(variance: try reader.read(), seen: try reader.read(),
                                           meanDelta: try reader.read())
    }
    let loadedAlpha: [Float] = try reader.read()
    var loadedPending: [UInt32: [Float]] = [:]
    let pendingCount: UInt64 = try reader.read()
    for _ in 0..<pendingCount {
      let client: UInt32 = try reader.read()
      loadedPending[client] = try reader.read()
    }
    seed = loadedSeed
    roundCount = loadedRound
    direction = loadedDirection
    directionHasNonzeroElement = loadedDirection.contains { $0 != 0 }
    clients = loadedClients
    shared.withLock { $0 = SharedState(alpha: loadedAlpha, pendingAlphaGradients: loadedPending) }
  }
}

/// Per-coordinate running variance of the support gradients (Welford), for V3's σ²:
/// the population variance of each coordinate, averaged over coordinates.
private struct WelfordVariance {
  private let mean: ScratchBuffer<Double>
  private let squaredDeviations: ScratchBuffer<Double>
  private var samples = 0

  init(count: Int) throws {
    mean = try ScratchBuffer(repeating: 0, count: count)
    squaredDeviations = try ScratchBuffer(repeating: 0, count: count)
  }

  mutating func add(_ values: UnsafePointer<Float>) {
    guard mean.count > 0 else { return }
    samples += 1
    let weight = 1 / Double(samples)
    for index in 0..<mean.count {
      let value = Double(values[index])
      let deviation = value - mean.pointer[index]
      mean.pointer[index] += deviation * weight
      squaredDeviations.pointer[index] += deviation * (value - mean.pointer[index])
    }
  }

  var meanVariance: Double {
    guard samples > 0, mean.count > 0 else { return 0 }
    var total = 0.0
    for index in 0..<mean.count { total += squaredDeviations.pointer[index] }
    return total / Double(samples) / Double(mean.count)
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(MEFLVariancePlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
