import Glibc

/// Trains, differentiates and evaluates networks of one `MLPArchitecture`.
///
/// A trainer owns only scratch: activations, deltas, Adam moments, a gradient buffer and a working
/// copy of the parameters (`scratchByteCount`, ≈ 4 parameter vectors). Parameters are passed in
/// per call, so one trainer per worker thread serves any number of clients; a client then costs
/// only its data and its delta. A trainer is not thread-safe: use one per thread.
///
/// Every entry point runs with subnormals flushed to zero (`FloatEnvironment`), so results do not
/// depend on the calling thread's mode. With batch size 1 and no gradient hook, training uses a
/// fused backward+update sweep (no gradient buffer); otherwise gradients are materialized, by the
/// batched kernels (`BatchKernels.swift`) in sub-batches of up to `subBatchCapacity` samples.
/// Every path gives the bits of the per-sample kernels, for any batch size.
public final class MLPTrainer {
  public let architecture: MLPArchitecture
  private let layers: [MLPArchitecture.Layer]
  private let isBinary: Bool
  /// Post-activation outputs of every layer (logits for the last), layer `l` at `outputOffsets[l]`.
  private let activations: UnsafeMutablePointer<Float>
  private let outputOffsets: [Int]
  private let activationCount: Int
  /// Two delta buffers of `deltaCapacity` floats (`maxWidth` rounded up to whole vectors, which
  /// `denseBackward` may read), swapped layer by layer during backward.
  private let deltaCapacity: Int
  private let outputDelta: UnsafeMutablePointer<Float>
  private let inputDelta: UnsafeMutablePointer<Float>
  /// Indices of a layer's nonzero inputs during the forward pass (`maxWidth` entries).
  private let activeInputs: UnsafeMutablePointer<Int>
  /// Gradient factors of the largest layer whose width is not a multiple of 16 (`denseBackward`).
  private let factorScratch: UnsafeMutablePointer<Float>
  private let factorScratchCount: Int
  private let firstMoment: ParameterVector
  private let secondMoment: ParameterVector
  private let gradient: ParameterVector
  private let working: ParameterVector

  /// Samples the batched kernels take in one pass: their activations and deltas (≈ 70 KB for
  /// the paper model) stay in L1/L2, and every weight is read once per pass.
  static let subBatchCapacity = 16
  /// A pass's inputs, `subBatchCapacity` rows of `inputWidth` floats.
  private let batchInputs: UnsafeMutablePointer<Float>
  /// A pass's activations: layer `l` holds `subBatchCapacity` rows of `batchStrides[l]` floats
  /// (its width rounded up to whole vectors) from `batchOffsets[l]`.
  private let batchActivations: UnsafeMutablePointer<Float>
  private let batchStrides: [Int]
  private let batchOffsets: [Int]
  private let batchActivationCount: Int
  /// Two delta buffers of `subBatchCapacity` rows of `deltaCapacity` floats, swapped per layer.
  private let batchDeltas: UnsafeMutablePointer<Float>
  /// Layers whose forward pass runs batched: hidden (ReLU) layers of whole vectors.
  private let forwardBatched: [Bool]
  /// During `train`: each class's loss weight (`TrainingOptions.classWeights`), or nil.
  private var classWeights: [Float]?

  public init(architecture: MLPArchitecture) {
    self.architecture = architecture
    layers = architecture.layers
    isBinary = architecture.outputWidth == 1
    var offsets = [Int]()
    var total = 0
    for layer in layers {
      offsets.append(total)
      total += layer.outputWidth
    }
    outputOffsets = offsets
    activationCount = total
    activations = .allocate(capacity: total)
    activations.initialize(repeating: 0, count: total)
    deltaCapacity = (architecture.maxWidth + laneCount - 1) / laneCount * laneCount
    outputDelta = .allocate(capacity: deltaCapacity)
    outputDelta.initialize(repeating: 0, count: deltaCapacity)
    inputDelta = .allocate(capacity: deltaCapacity)
    inputDelta.initialize(repeating: 0, count: deltaCapacity)
    activeInputs = .allocate(capacity: architecture.maxWidth)
    activeInputs.initialize(repeating: 0, count: architecture.maxWidth)
    factorScratchCount = layers.map {
      $0.outputWidth % laneCount == 0 ? 0 : 2 * ($0.parameterCount + laneCount)
    }.max()!
    factorScratch = .allocate(capacity: max(factorScratchCount, 1))
    factorScratch.initialize(repeating: 0, count: max(factorScratchCount, 1))
    firstMoment = ParameterVector(count: architecture.parameterCount)
    secondMoment = ParameterVector(count: architecture.parameterCount)
    gradient = ParameterVector(count: architecture.parameterCount)
    working = ParameterVector(count: architecture.parameterCount)
    let capacity = Self.subBatchCapacity
    batchInputs = .allocate(capacity: capacity * architecture.inputWidth)
    batchInputs.initialize(repeating: 0, count: capacity * architecture.inputWidth)
    let strides = layers.map { ($0.outputWidth + laneCount - 1) / laneCount * laneCount }
    var batchTotal = 0
    var starts = [Int]()
    for stride in strides {
      starts.append(batchTotal)
      batchTotal += capacity * stride
    }
    batchStrides = strides
    batchOffsets = starts
    batchActivationCount = batchTotal
    batchActivations = .allocate(capacity: batchTotal)
    batchActivations.initialize(repeating: 0, count: batchTotal)
    batchDeltas = .allocate(capacity: 2 * capacity * deltaCapacity)
    batchDeltas.initialize(repeating: 0, count: 2 * capacity * deltaCapacity)
    forwardBatched = architecture.layers.indices.map {
      $0 < architecture.layerCount - 1 && architecture.layers[$0].outputWidth % laneCount == 0
    }
  }

  deinit {
    activations.deallocate()
    outputDelta.deallocate()
    inputDelta.deallocate()
    activeInputs.deallocate()
    factorScratch.deallocate()
    batchInputs.deallocate()
    batchActivations.deallocate()
    batchDeltas.deallocate()
  }

  /// Bytes of scratch this trainer holds (the per-worker memory cost).
  public var scratchByteCount: Int {
    (4 * architecture.parameterCount + activationCount + 2 * deltaCapacity + factorScratchCount
      + Self.subBatchCapacity * (architecture.inputWidth + 2 * deltaCapacity) + batchActivationCount)
      * MemoryLayout<Float>.stride
      + architecture.maxWidth * MemoryLayout<Int>.stride
  }

  // MARK: Training

  /// Trains `parameters` in place on `samples`. Adam starts from zero moments at step 0.
  /// `afterEpoch(epoch, parameters)` runs after every epoch; returning false stops training
  /// (early stopping).
  public func train(_ parameters: ParameterVector, on samples: Samples,
                    options: TrainingOptions = TrainingOptions(),
                    gradientHook: GradientHook? = nil,
                    afterEpoch: ((_ epoch: Int, _ parameters: ParameterVector) throws -> Bool)? = nil)
    throws -> TrainingSummary
  {
    try architecture.validate(parameters)
    try validate(samples)
    guard samples.count > 0 else { throw ModelError.noSamples }
    try options.validate(for: architecture)
    return try FloatEnvironment.withSubnormalsFlushed {
      switch options.optimizer {
      case .adam(let learningRate, let beta1, let beta2, let epsilon):
        firstMoment.zero()
        secondMoment.zero()
        return try train(parameters.pointer, on: samples, options: options, hook: gradientHook,
                         afterEpoch: afterEpoch.map { observer in { try observer($0, parameters) } }) {
          step in
          AdamStep(beta1: beta1, beta2: beta2, epsilon: epsilon, learningRate: learningRate,
                   step: step, m: firstMoment.pointer, v: secondMoment.pointer)
        }
      case .sgd(let learningRate):
        return try train(parameters.pointer, on: samples, options: options, hook: gradientHook,
                         afterEpoch: afterEpoch.map { observer in { try observer($0, parameters) } }) {
          _ in SGDStep(learningRate: learningRate)
        }
      }
    }
  }

  /// Trains a copy of `start` (in this trainer's working buffer) and returns trained − start.
  /// The hook sees the working copy. `start` is not modified.
  public func trainDelta(from start: ParameterVector, on samples: Samples,
                         options: TrainingOptions = TrainingOptions(),
                         gradientHook: GradientHook? = nil) throws -> TrainingResult {
    try architecture.validate(start)
    working.assign(from: start)
    let summary = try train(working, on: samples, options: options, gradientHook: gradientHook)
    let delta = ParameterVector(count: start.count)
    for index in 0..<start.count { delta[index] = working[index] - start[index] }
    return TrainingResult(delta: delta, summary: summary)
  }

  private func train<Rule: ElementUpdate>(
    _ parameters: UnsafeMutablePointer<Float>, on samples: Samples, options: TrainingOptions,
    hook: GradientHook?, afterEpoch: ((Int) throws -> Bool)?, rule makeRule: (_ step: Int) -> Rule
  ) throws -> TrainingSummary {
    let count = samples.count
    classWeights = options.classWeights
    defer { classWeights = nil }
    let firstTrainedLayer = options.frozenLayerCount
    let trained = architecture.prefixParameterCount(layers: firstTrainedLayer)
      ..< architecture.parameterCount
    let fused = options.batchSize == 1 && hook == nil
    var order = Array(0..<count)
    var generator = SeededGenerator(seed: options.seed)
    var epochLosses = [Double]()
    var step = 0
    try samples.features.withUnsafeBufferPointer { features in
      for epoch in 0..<options.epochs {
        if options.shuffle { generator.shuffle(&order) }
        var lossSum = 0.0
        var batchStart = 0
        while batchStart < count {
          let batch = order[batchStart..<min(batchStart + options.batchSize, count)]
          batchStart = batch.endIndex
          step += 1
          if fused {
            let row = batch.first!
            let input = features.baseAddress! + row * samples.width
            lossSum += forwardAndOutputDelta(input, parameters: parameters, label: samples.labels[row])
            backward(input, parameters: parameters, firstTrainedLayer: firstTrainedLayer,
                     rule: makeRule(step))
            continue
          }
          // Without a hook to see the mean, the step takes it: a power-of-two batch's division is
          // exactly a multiplication, done in the step's own sweep instead of one more.
          let scale = hook == nil ? exactReciprocal(of: batch.count) : nil
          lossSum += accumulateGradient(parameters, samples: samples, features: features,
                                        rows: batch, firstTrainedLayer: firstTrainedLayer,
                                        averaging: scale == nil)
          try hook?(UnsafeBufferPointer(start: parameters, count: architecture.parameterCount),
                    gradient.buffer)
          applyElementwise(makeRule(step), parameters: parameters, range: trained,
                           gradient: gradient.pointer + trained.lowerBound, scale: scale ?? 1)
        }
        epochLosses.append(lossSum / Double(count))
        if let afterEpoch, try !afterEpoch(epoch) { break }
      }
    }
    return TrainingSummary(epochLosses: epochLosses, steps: step)
  }

  // MARK: Gradient oracle

  /// Mean loss and its gradient at `weights` over `rows` of `samples` (nil: every row), written
  /// to `gradient`. Parameters of the first `frozenLayerCount` layers get a zero gradient.
  /// `weights` is only read.
  public func lossAndGradient(weights: UnsafeBufferPointer<Float>, samples: Samples,
                              rows: [Int]? = nil, frozenLayerCount: Int = 0,
                              gradient output: UnsafeMutableBufferPointer<Float>) throws -> Double {
    for buffer in [weights.count, output.count] where buffer != architecture.parameterCount {
      throw ModelError.parameterCountMismatch(expected: architecture.parameterCount, actual: buffer)
    }
    try validate(samples)
    try TrainingOptions(frozenLayerCount: frozenLayerCount).validate(for: architecture)
    let rows = rows ?? Array(0..<samples.count)
    guard !rows.isEmpty else { throw ModelError.noSamples }
    if let bad = rows.first(where: { !(0..<samples.count).contains($0) }) {
      throw ModelError.rowOutOfRange(row: bad, count: samples.count)
    }
    let loss = FloatEnvironment.withSubnormalsFlushed {
      samples.features.withUnsafeBufferPointer { features in
        // Gradient accumulation only reads the weights (GradientAccumulation.writesWeights).
        accumulateGradient(UnsafeMutablePointer(mutating: weights.baseAddress!), samples: samples,
                           features: features, rows: rows, firstTrainedLayer: frozenLayerCount)
      }
    }
    output.baseAddress!.update(from: gradient.pointer, count: architecture.parameterCount)
    return loss / Double(rows.count)
  }

  /// `lossAndGradient(weights:…)` for parameter vectors.
  public func lossAndGradient(at weights: ParameterVector, samples: Samples, rows: [Int]? = nil,
                              frozenLayerCount: Int = 0, into output: ParameterVector) throws -> Double {
    try lossAndGradient(weights: UnsafeBufferPointer(weights.buffer), samples: samples, rows: rows,
                        frozenLayerCount: frozenLayerCount, gradient: output.buffer)
  }

  /// Fills `gradient` with the batch-mean gradient over `rows` (zero for frozen layers; the sum
  /// unless `averaging`) and returns the summed loss.
  private func accumulateGradient(
    _ parameters: UnsafeMutablePointer<Float>, samples: Samples,
    features: UnsafeBufferPointer<Float>, rows: some Collection<Int>, firstTrainedLayer: Int,
    averaging: Bool = true
  ) -> Double {
    gradient.zero()
    var lossSum = 0.0
    // The batched forward pass relies on finite weights and biases (see BatchKernels.swift).
    let batched = rows.count > 1 && layers.indices.allSatisfy { index in
      !forwardBatched[index] || allFinite(parameters + layers[index].weightOffset, count: layers[index].parameterCount)
    }
    if batched {
      var passStart = rows.startIndex
      while passStart != rows.endIndex {
        let passEnd = rows.index(passStart, offsetBy: Self.subBatchCapacity, limitedBy: rows.endIndex)
          ?? rows.endIndex
        accumulatePass(parameters, samples: samples, features: features,
                       rows: rows[passStart..<passEnd], firstTrainedLayer: firstTrainedLayer, lossSum: &lossSum)
        passStart = passEnd
      }
    } else {
      let accumulate = GradientAccumulation(gradient: gradient.pointer)
      for row in rows {
        let input = features.baseAddress! + row * samples.width
        lossSum += forwardAndOutputDelta(input, parameters: parameters, label: samples.labels[row])
        backward(input, parameters: parameters, firstTrainedLayer: firstTrainedLayer, rule: accumulate)
      }
    }
    if averaging, rows.count > 1 {
      let divisor = Float(rows.count)
      let start = architecture.prefixParameterCount(layers: firstTrainedLayer)
      for index in start..<architecture.parameterCount { gradient[index] /= divisor }
    }
    return lossSum
  }

  /// 1/n when dividing by n is exactly multiplying by 1/n (n a power of two: the same exact
  /// quotient, rounded and flushed alike), else nil.
  private func exactReciprocal(of n: Int) -> Float? {
    n & (n - 1) == 0 ? 1 / Float(n) : nil
  }

  /// Adds the gradient of up to `subBatchCapacity` rows to `gradient`, layer by layer over all of
  /// them (the batched kernels where a layer is whole vectors wide), and their losses to `lossSum`
  /// one by one (the per-sample order of the sum).
  private func accumulatePass(
    _ parameters: UnsafeMutablePointer<Float>, samples: Samples,
    features: UnsafeBufferPointer<Float>, rows: some Collection<Int>, firstTrainedLayer: Int,
    lossSum: inout Double
  ) {
    let count = rows.count
    let inputs = SampleRows(base: batchInputs, stride: samples.width)
    for (sample, row) in rows.enumerated() {
      inputs[sample].update(from: features.baseAddress! + row * samples.width, count: samples.width)
    }
    func activations(_ index: Int) -> SampleRows {
      index < 0 ? inputs : SampleRows(base: batchActivations + batchOffsets[index], stride: batchStrides[index])
    }
    for (index, layer) in layers.enumerated() {
      if forwardBatched[index] {
        batchedReLUForward(layer, inputs: activations(index - 1), count: count, parameters: parameters,
                           outputs: activations(index))
      } else {
        for sample in 0..<count {
          denseForward(layer, input: activations(index - 1)[sample], parameters: parameters,
                       output: activations(index)[sample], relu: index < layers.count - 1, active: activeInputs)
        }
      }
    }
    var delta = SampleRows(base: batchDeltas, stride: deltaCapacity)
    var belowDelta = SampleRows(base: batchDeltas + Self.subBatchCapacity * deltaCapacity, stride: deltaCapacity)
    let logits = activations(layers.count - 1)
    for (sample, row) in rows.enumerated() {
      lossSum += writeOutputDelta(of: logits[sample], label: samples.labels[row], to: delta[sample])
    }
    let accumulate = GradientAccumulation(gradient: gradient.pointer)
    var index = layers.count - 1
    while index >= firstTrainedLayer {
      let layer = layers[index]
      let layerInputs = activations(index - 1)
      let propagates = index > firstTrainedLayer
      if layer.outputWidth % laneCount == 0 {
        if propagates {
          batchedDeltaPropagation(layer, inputs: layerInputs, deltas: delta, count: count,
                                  parameters: parameters, belowDeltas: belowDelta)
        }
        batchedGradientAccumulation(layer, inputs: layerInputs, deltas: delta, count: count,
                                    gradient: gradient.pointer)
      } else {
        for sample in 0..<count {
          denseBackward(layer, input: layerInputs[sample], delta: delta[sample],
                        inputDelta: propagates ? belowDelta[sample] : nil, parameters: parameters,
                        rule: accumulate, scratch: factorScratch)
        }
      }
      swap(&delta, &belowDelta)
      index -= 1
    }
  }

  // MARK: Inference

  /// Output probabilities for every row: P(class 1) per row for a sigmoid head, the
  /// `outputWidth` softmax probabilities per row (row-major) otherwise.
  public func probabilities(_ parameters: ParameterVector, for samples: Samples) throws -> [Float] {
    try architecture.validate(parameters)
    try validate(samples, checkingLabels: false)
    let width = architecture.outputWidth
    return [Float](unsafeUninitializedCapacity: samples.count * width) { output, initialized in
      forEachRow(of: samples, parameters: parameters) { row, logits in
        writeProbabilities(of: logits, to: output.baseAddress! + row * width)
      }
      initialized = samples.count * width
    }
  }

  /// Probabilities for one sample (`features.count == inputWidth`) into `output`
  /// (`outputWidth` floats). Allocates nothing.
  public func predict(_ parameters: ParameterVector, features: UnsafeBufferPointer<Float>,
                      into output: UnsafeMutableBufferPointer<Float>) throws {
    try architecture.validate(parameters)
    guard features.count == architecture.inputWidth else {
      throw ModelError.sampleWidthMismatch(expected: architecture.inputWidth, actual: features.count)
    }
    guard output.count == architecture.outputWidth else {
      throw ModelError.invalidOption("output buffer needs \(architecture.outputWidth) floats")
    }
    FloatEnvironment.withSubnormalsFlushed {
      writeProbabilities(of: forward(features.baseAddress!, parameters: parameters.pointer),
                         to: output.baseAddress!)
    }
  }

  /// Mean loss and accuracy of `parameters` on `samples`.
  public func evaluate(_ parameters: ParameterVector, on samples: Samples) throws -> Evaluation {
    try architecture.validate(parameters)
    try validate(samples)
    guard samples.count > 0 else { throw ModelError.noSamples }
    var lossSum = 0.0
    var correct = 0
    forEachRow(of: samples, parameters: parameters) { row, logits in
      let label = samples.labels[row]
      lossSum += loss(of: logits, label: label)
      if predictedClass(of: logits) == label { correct += 1 }
    }
    return Evaluation(meanLoss: lossSum / Double(samples.count),
                      accuracy: Double(correct) / Double(samples.count))
  }

  private func forEachRow(of samples: Samples, parameters: ParameterVector,
                          _ body: (_ row: Int, _ logits: UnsafeMutablePointer<Float>) -> Void) {
    FloatEnvironment.withSubnormalsFlushed {
      samples.features.withUnsafeBufferPointer { features in
        for row in 0..<samples.count {
          body(row, forward(features.baseAddress! + row * samples.width,
                            parameters: parameters.pointer))
        }
      }
    }
  }

  // MARK: Kernels glue

  /// Runs every layer and returns the logits.
  @inline(__always)
  private func forward(_ input: UnsafePointer<Float>,
                       parameters: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
    var layerInput = input
    for (index, layer) in layers.enumerated() {
      let output = activations + outputOffsets[index]
      denseForward(layer, input: layerInput, parameters: parameters, output: output,
                   relu: index < layers.count - 1, active: activeInputs)
      layerInput = UnsafePointer(output)
    }
    return activations + outputOffsets[layers.count - 1]
  }

  /// Forward pass, then dLoss/dlogits into `outputDelta`; returns the sample's loss.
  @inline(__always)
  private func forwardAndOutputDelta(_ input: UnsafePointer<Float>,
                                     parameters: UnsafePointer<Float>, label: Int32) -> Double {
    writeOutputDelta(of: forward(input, parameters: parameters), label: label, to: outputDelta)
  }

  /// dLoss/dlogits into `delta`; returns the sample's loss.
  @inline(__always)
  private func writeOutputDelta(of logits: UnsafePointer<Float>, label: Int32,
                                to delta: UnsafeMutablePointer<Float>) -> Double {
    writeProbabilities(of: logits, to: delta)
    delta[Int(isBinary ? 0 : label)] -= isBinary ? Float(label) : 1
    guard let classWeights else { return loss(of: logits, label: label) }
    // A weighted sample's loss and its gradient scale alike (Keras' class_weight).
    let weight = classWeights[Int(label)]
    for index in 0..<architecture.outputWidth { delta[index] *= weight }
    return Double(weight) * loss(of: logits, label: label)
  }

  /// Backward pass from `outputDelta` down to `firstTrainedLayer`, each layer fused with `rule`.
  @inline(__always)
  private func backward<Rule: ElementUpdate>(_ input: UnsafePointer<Float>,
                                             parameters: UnsafeMutablePointer<Float>,
                                             firstTrainedLayer: Int, rule: Rule) {
    var delta = outputDelta
    var belowDelta = inputDelta
    var index = layers.count - 1
    while index >= firstTrainedLayer {
      let layerInput = index == 0 ? input : UnsafePointer(activations + outputOffsets[index - 1])
      denseBackward(layers[index], input: layerInput, delta: delta,
                    inputDelta: index > firstTrainedLayer ? belowDelta : nil,
                    parameters: parameters, rule: rule, scratch: factorScratch)
      swap(&delta, &belowDelta)
      index -= 1
    }
  }

  /// Sigmoid of the single logit, or the softmax of all logits.
  @inline(__always)
  private func writeProbabilities(of logits: UnsafePointer<Float>,
                                  to output: UnsafeMutablePointer<Float>) {
    if isBinary {
      output[0] = 1 / (1 + expf(-logits[0]))
      return
    }
    let width = architecture.outputWidth
    var largest = logits[0]
    for index in 1..<width { largest = max(largest, logits[index]) }
    var total: Float = 0
    for index in 0..<width {
      output[index] = expf(logits[index] - largest)
      total += output[index]
    }
    for index in 0..<width { output[index] /= total }
  }

  /// Cross-entropy of one sample, in float64 from the logits (no clipping, no overflow).
  @inline(__always)
  private func loss(of logits: UnsafePointer<Float>, label: Int32) -> Double {
    if isBinary {
      let logit = Double(logits[0])
      return max(logit, 0) - Double(label) * logit + log1p(exp(-abs(logit)))
    }
    let width = architecture.outputWidth
    var largest = Double(logits[0])
    for index in 1..<width { largest = max(largest, Double(logits[index])) }
    var total = 0.0
    for index in 0..<width { total += exp(Double(logits[index]) - largest) }
    return log(total) + largest - Double(logits[Int(label)])
  }

  @inline(__always)
  private func predictedClass(of logits: UnsafePointer<Float>) -> Int32 {
    if isBinary { return logits[0] > 0 ? 1 : 0 }
    var best = 0
    for index in 1..<architecture.outputWidth where logits[index] > logits[best] { best = index }
    return Int32(best)
  }

  private func validate(_ samples: Samples, checkingLabels: Bool = true) throws {
    guard samples.width == architecture.inputWidth else {
      throw ModelError.sampleWidthMismatch(expected: architecture.inputWidth, actual: samples.width)
    }
    guard checkingLabels else { return }
    let classCount = architecture.classCount
    if let row = samples.labels.firstIndex(where: { !(0..<Int32(classCount)).contains($0) }) {
      throw ModelError.labelOutOfRange(row: row, label: samples.labels[row], classCount: classCount)
    }
  }
}
