import PluginAPI

/// One client's local training in one round, with its strategy's client hook: everything it
/// needs, so that it runs where the hook lives. In process it runs here; for an isolated hook
/// it runs whole in the hook's child process (one request per client per round instead of a
/// round trip per optimizer step), with the same code and so the same bits.
public struct LocalTraining: Sendable {
  public var clientID: UInt32
  public var round: Int
  /// The round's global model and its architecture.
  public var global: ParameterVector
  public var globalArchitecture: MLPArchitecture
  /// The client's sub-model (nil: it trains the full model) and the global elements it covers.
  public var subModel: SubModel?
  public var coverage: CoverageMask?
  /// The host's local training when the hook does not run its own procedure (`train_local`).
  public var options: TrainingOptions
  /// The rows it trains on and the rows a `train_local` plugin may address as its query split.
  public var train: Samples
  public var query: Samples
  /// The aggregator's aux_down vectors for this client and round (nil: the strategy has none),
  /// and how many aux_up floats the hook sends back (0: none). ABI 1.2.
  public var auxDown: ParameterVector?
  public var auxUpLength: Int

  public init(clientID: UInt32, round: Int, global: ParameterVector, globalArchitecture: MLPArchitecture, subModel: SubModel?,
              coverage: CoverageMask?, options: TrainingOptions, train: Samples, query: Samples,
              auxDown: ParameterVector? = nil, auxUpLength: Int = 0) {
    self.clientID = clientID
    self.round = round
    self.auxDown = auxDown
    self.auxUpLength = auxUpLength
    self.global = global
    self.globalArchitecture = globalArchitecture
    self.subModel = subModel
    self.coverage = coverage
    self.options = options
    self.train = train
    self.query = query
  }

  /// The architecture the client trains.
  public var architecture: MLPArchitecture { subModel?.architecture ?? globalArchitecture }

  /// Trains with `hook` (nil: no client hook) on `trainer` (of `architecture`). `beat` is called
  /// before every call into the plugin and every gradient it asks for, so an isolated run can
  /// tell the host it is alive. The hook's own arithmetic runs with subnormals flushed, as the
  /// host's training does, whatever the calling thread's mode (a Flower or test thread's).
  func run(hook: PluginInstance?, trainer: MLPTrainer, beat: @escaping () -> Void = {}) throws -> LocalTrainingResult {
    try FloatEnvironment.withSubnormalsFlushed { try runFlushed(hook: hook, trainer: trainer, beat: beat) }
  }

  /// The hook's view of this client's round (`fhp_client_context`).
  var context: ClientContext {
    ClientContext(clientID: clientID, round: round, options: options, sampleCount: train.count, parameterCount: global.count)
  }

  private func runFlushed(hook: PluginInstance?, trainer: MLPTrainer, beat: @escaping () -> Void) throws -> LocalTrainingResult {
    let auxUp = auxUpLength > 0 ? ParameterVector(count: auxUpLength) : nil
    let vectors = ClientVectors(coverage: coverage.map { UnsafePointer($0.pointer) },
                                auxDown: auxDown.map { UnsafeBufferPointer($0.buffer) }, auxUp: auxUp?.buffer)
    var result = try withExtendedLifetime((coverage, auxDown, auxUp)) {
      if let hook, hook.supportsTrainLocal { return try runPluginProcedure(hook, vectors: vectors, trainer: trainer, beat: beat) }
      return try runHostTraining(hook: hook, vectors: vectors, trainer: trainer, beat: beat)
    }
    if let auxUp {
      if let bad = auxUp.firstNonFiniteIndex, let hook {
        throw PluginError.badOutput(path: hook.library.path, function: "client hook",
                                    problem: "wrote a non-finite aux_up[\(bad)] = \(auxUp[bad]) for client \(clientID)")
      }
      result.auxUp = auxUp
    }
    return result
  }

  /// The host's optimizer, the hook (if any) editing each gradient: `adjust_gradient_in_context`
  /// on global-shaped copies for a sub-model client, else `adjust_gradient` on the client's own.
  private func runHostTraining(hook: PluginInstance?, vectors: ClientVectors, trainer: MLPTrainer,
                               beat: @escaping () -> Void) throws -> LocalTrainingResult {
    let start = try subModel?.extract(from: global) ?? global.copy()
    let trained = start.copy()
    let gradientHook: GradientHook? = hook.flatMap { hook in
      guard hook.supportsAdjustGradient else { return nil }
      guard hook.supportsAdjustGradientInContext else {
        return { [clientID] weights, gradient in
          beat()
          try hook.adjustGradient(clientID: clientID, local: weights.baseAddress!, global: start.pointer,
                                  gradient: gradient.baseAddress!, count: gradient.count)
        }
      }
      let context = context
      guard let subModel else {
        return { [global] weights, gradient in
          beat()
          try hook.adjustGradient(context: context, vectors: vectors, local: weights.baseAddress!, global: global.pointer,
                                  gradient: gradient.baseAddress!)
        }
      }
      // Global-shaped scratch, zero outside the sub-model, reused across steps.
      let fullWeights = ParameterVector(count: global.count)
      let fullGradient = ParameterVector(count: global.count)
      return { [global] weights, gradient in
        beat()
        subModel.spread(weights.baseAddress!, into: fullWeights.pointer)
        subModel.spread(gradient.baseAddress!, into: fullGradient.pointer)
        try hook.adjustGradient(context: context, vectors: vectors, local: fullWeights.pointer, global: global.pointer,
                                gradient: fullGradient.pointer)
        subModel.gather(fullGradient.pointer, into: gradient.baseAddress!)
      }
    }
    let summary = try trainer.train(trained, on: train, options: options, gradientHook: gradientHook)
    return LocalTrainingResult(trained: trained, metrics: [FHP_METRIC_TRAIN_LOSS: summary.epochLosses.last ?? 0])
  }

  /// Runs a plugin's own local procedure (`train_local`) with the host as gradient oracle. The
  /// plugin always sees global-sized vectors; a sub-model client's gradients are scattered into
  /// them, and what the plugin does to elements outside its coverage is dropped.
  private func runPluginProcedure(_ hook: PluginInstance, vectors: ClientVectors, trainer: MLPTrainer,
                                  beat: @escaping () -> Void) throws
    -> LocalTrainingResult
  {
    let weights = global.copy()
    let reported = MetricCollector()
    let services = ClientServices(
      clientID: clientID, supportCount: train.count, queryCount: query.count, coverage: coverage,
      context: (context, vectors),
      gradient: { [self] split, rows, pointer, gradient in
        beat()
        let samples = split == .support ? train : query
        let rowList = rows.map { $0.map { Int($0) } }
        guard let subModel else {
          return try trainer.lossAndGradient(weights: UnsafeBufferPointer(start: pointer, count: global.count),
                                             samples: samples, rows: rowList,
                                             gradient: UnsafeMutableBufferPointer(start: gradient, count: global.count))
        }
        let full = ParameterVector(count: global.count)
        full.pointer.update(from: pointer, count: global.count)
        let local = try subModel.extract(from: full)
        let localGradient = ParameterVector(count: local.count)
        let loss = try trainer.lossAndGradient(at: local, samples: samples, rows: rowList, into: localGradient)
        let scattered = try subModel.scatter(delta: localGradient).delta
        withExtendedLifetime(scattered) { gradient.update(from: scattered.pointer, count: global.count) }
        return loss
      },
      reportMetric: { key, value in reported.values[key] = value })
    beat()
    try hook.trainLocal(weights: weights.buffer, services: services)
    return LocalTrainingResult(trained: try subModel?.extract(from: weights) ?? weights, metrics: reported.values)
  }
}

/// What local training hands back: the trained model in the client's own (sub-)model shape and
/// the metrics it reported (`train_loss` from the host's training, or the plugin's own).
public struct LocalTrainingResult: Sendable {
  public var trained: ParameterVector
  public var metrics: [String: Double]
  /// What the hook wrote into aux_up (nil: the strategy declares none).
  public var auxUp: ParameterVector?
}

/// Metrics a client-side plugin reports during `train_local` (single thread per client).
private final class MetricCollector { var values: [String: Double] = [:] }
