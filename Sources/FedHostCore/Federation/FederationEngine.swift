import PluginAPI
import Foundation

/// The protocol-neutral federation engine: it trains a chosen set of clients for one round
/// (running a strategy's client hook), hands their updates to the strategy's aggregator, and
/// evaluates and fine-tunes models on clients. It knows nothing of phases: protocols
/// (Pipelines/) decide which clients, which data and how many rounds. Every method is
/// deterministic from `settings.seed`, whatever the thread count.
public final class FederationEngine: @unchecked Sendable {
  public let clients: ClientSource
  public let architecture: MLPArchitecture
  public let settings: EngineSettings
  /// Per client: nil when it trains the full model.
  private let subModels: [SubModel?]
  /// Per distinct sub-model rate: the global elements it covers.
  private let coverages: [Double: CoverageMask]
  let pool: WorkerPool
  private let deltas = DeltaSlab()

  public init(clients: ClientSource, inputWidth: Int, classCount: Int, settings: EngineSettings) throws {
    guard clients.count > 0 else { throw FederationError.incompatibleData("the federation has no clients") }
    let outputWidth = classCount <= 2 ? 1 : classCount
    let global = try MLPArchitecture(widths: [inputWidth] + settings.hiddenWidths + [outputWidth])
    architecture = global
    // A client trains the widest sub-model whose int8 deployment fits its memory budget,
    // capped by its stated model rate. Clients share sub-models (and masks) by rate.
    var fittedRates: [MemoryBudget: Double?] = [:]
    var byRate: [Double: SubModel] = [:]
    subModels = try clients.profiles.map { profile in
      var rate = profile.modelRate
      if let budget = profile.memory {
        if fittedRates[budget] == nil { fittedRates[budget] = try DeviceFootprint.largestRate(for: global, budget: budget)?.rate }
        guard let fit = fittedRates[budget]! else {
          throw FederationError.incompatibleData(
            "client \(profile.name): even a 1 % wide int8 model exceeds its memory budget "
              + "(\(budget.flashBytes) B flash, \(budget.ramBytes) B RAM)")
        }
        rate = min(rate, fit)
      }
      guard rate < 1 else { return nil }
      if byRate[rate] == nil { byRate[rate] = try SubModel(global: global, rate: rate) }
      return byRate[rate]
    }
    coverages = try byRate.mapValues { subModel in
      CoverageMask(try subModel.scatter(delta: ParameterVector(count: subModel.architecture.parameterCount)).coverage)
    }
    self.clients = clients
    self.settings = settings
    pool = WorkerPool(threadCount: settings.threads)
  }

  public var isBinary: Bool { architecture.outputWidth == 1 }

  /// The sub-model client `index` trains (nil: the full model).
  public func subModel(ofClient index: Int) -> SubModel? { subModels[index] }

  /// The architecture client `index` trains.
  public func architecture(ofClient index: Int) -> MLPArchitecture {
    subModels[index]?.architecture ?? architecture
  }

  /// Client `index`'s view of a global model: the model itself or its sub-model slice.
  public func localModel(_ global: ParameterVector, client index: Int) throws -> ParameterVector {
    try subModels[index]?.extract(from: global) ?? global.copy()
  }

  /// The seeded initial global model.
  public func initialModel() -> ParameterVector {
    architecture.initialParameters(seed: deriveSeed(settings.seed, .initialization))
  }

  /// Options for training on `samples` (their labels set the class weights, when the settings ask for them).
  public func trainingOptions(epochs: Int, learningRate: Float, seed: UInt64, frozenLayers: Int = 0,
                              trainingOn samples: Samples) -> TrainingOptions {
    TrainingOptions(optimizer: settings.optimizer.optimizer(learningRate: learningRate), epochs: epochs,
                    batchSize: settings.batchSize, shuffle: true, seed: seed, frozenLayerCount: frozenLayers,
                    classWeights: settings.classWeighting.weights(labels: samples.labels, classCount: architecture.classCount))
  }

  /// Runs `job` for each of `indices` on the worker threads; results in the order of `indices`.
  public func map<Result: Sendable>(_ indices: [Int], _ job: @escaping @Sendable (Int) throws -> Result) throws -> [Result] {
    try pool.map(count: indices.count, makeState: { _ in () }, job: { _, position in try job(indices[position]) })
  }

  // MARK: - rounds

  /// One FL round of `roundCount` (0: not known): the aggregator prepares each participant's
  /// aux_down vectors if its strategy has any, every client in `participants` trains the global
  /// model (its slice) on its round data and reports its delta, sample count, query loss and
  /// aux_up vectors, and the aggregator combines them. Returns the new global model, each
  /// participant's share and the metrics the aggregator reported for the round.
  public func runRound(_ round: Int, of roundCount: Int = 0, global: ParameterVector, strategy: Strategy,
                       participants: [Int]) throws -> (model: ParameterVector, outcome: AggregationOutcome)
  {
    let context = RoundContext(round: round, roundCount: roundCount, clientCount: clients.count,
                               sampled: participants.map { UInt32($0) })
    let auxDown: [ParameterVector?] = try participants.map { index in
      guard strategy.aggregator.library.descriptor.auxDownVectors > 0 else { return nil }
      return try strategy.aggregator.prepareClient(context, clientID: UInt32(index), global: global)
    }
    let slots = deltas.slots(count: participants.count, width: global.count)
    let updates = try pool.map(
      count: participants.count,
      makeState: { _ in TrainerCache() },
      job: { [self] trainers, position in
        let index = participants[position]
        return try trainClient(index, round: round, global: global, hook: strategy.clientHook, auxDown: auxDown[position],
                               trainer: trainers.trainer(for: architecture(ofClient: index)), into: slots[position])
      })
    let next = ParameterVector(count: global.count)
    let outcome = try strategy.aggregator.aggregate(context, global: global, updates: updates, into: next)
    if let bad = next.firstNonFiniteIndex {
      throw FederationError.strategy("\(strategy.aggregator.id): aggregate produced a non-finite element \(bad) in round \(round)")
    }
    return (next, outcome)
  }

  /// The clients that train `round`: `sampled` (the protocol's seeded sample), or, when it is
  /// not everyone and the aggregator chooses clients itself (ABI 1.2 `select_clients`), as many
  /// of its choosing, with every client's row count and the loss of `global` on a client's
  /// training rows as its oracle.
  public func chooseClients(_ round: Int, of roundCount: Int, global: ParameterVector, strategy: Strategy,
                            sampled: [Int]) throws -> [Int] {
    guard strategy.aggregator.supportsSelectClients, sampled.count < clients.count else { return sampled }
    let context = RoundContext(round: round, roundCount: roundCount, clientCount: clients.count,
                               sampled: sampled.map { UInt32($0) })
    var trainers = TrainerCache()
    let selection = ClientSelection(sampleCounts: try trainingRowCounts()) { [self] client in
      let index = Int(client)
      return try trainers.trainer(for: architecture(ofClient: index))
        .evaluate(localModel(global, client: index), on: clients.data(index).train).meanLoss
    }
    return try strategy.aggregator.selectClients(context, global: global, count: sampled.count, selection: selection)
  }

  /// Every client's training rows, read once: `chooseClients` offers them every round, and
  /// reading them means loading every client's data. Only the round loop calls it.
  private var rowCounts: [UInt64]?
  private func trainingRowCounts() throws -> [UInt64] {
    if let rowCounts { return rowCounts }
    let counts = try (0..<clients.count).map { UInt64(try clients.data($0).train.count) }
    rowCounts = counts
    return counts
  }

  private func coverage(ofClient index: Int) -> CoverageMask? {
    subModels[index].map { coverages[$0.rate]! }
  }

  /// Client `index`'s update for `round`, trained from `global` with `hook` (its client-side
  /// plugin, if any): what `runRound` hands the aggregator for this client, for a caller that
  /// trains clients elsewhere (the engine library under Flower).
  public func trainClient(_ index: Int, round: Int, global: ParameterVector, hook: PluginInstance?,
                          auxDown: ParameterVector? = nil) throws -> ClientUpdate {
    try trainClient(index, round: round, global: global, hook: hook, auxDown: auxDown,
                    trainer: MLPTrainer(architecture: architecture(ofClient: index)), into: nil)
  }

  /// `slot` (global-sized), when given, receives the delta.
  private func trainClient(_ index: Int, round: Int, global: ParameterVector, hook: PluginInstance?,
                           auxDown: ParameterVector?, trainer: MLPTrainer, into slot: ParameterVector?) throws -> ClientUpdate {
    let data = try clients.data(index)
    let job = LocalTraining(
      clientID: UInt32(index), round: round, global: global, globalArchitecture: architecture, subModel: subModels[index],
      coverage: coverage(ofClient: index),
      options: trainingOptions(epochs: settings.epochsPerRound(sampleCount: data.train.count),
                               learningRate: settings.learningRate,
                               seed: deriveSeed(settings.seed, .parallel, UInt64(round), UInt64(index)),
                               trainingOn: data.train),
      train: data.train, query: data.query, auxDown: auxDown,
      auxUpLength: (hook?.library.descriptor.auxUpVectors ?? 0) * global.count)
    let local = try hook?.trainLocally(job, trainer: trainer) ?? job.run(hook: nil, trainer: trainer)
    var metrics = local.metrics
    let query = try trainer.evaluate(local.trained, on: data.query.count > 0 ? data.query : data.train)
    metrics[FHP_METRIC_QUERY_LOSS] = query.meanLoss
    metrics[FHP_METRIC_QUERY_ACCURACY] = query.accuracy

    // trained − start, written into the round's slot (a full-model client) or in place: no copy
    // of the global model and no delta allocated per client.
    let start = try subModels[index]?.extract(from: global) ?? global
    let localDelta = subModels[index] == nil ? slot ?? local.trained : local.trained
    for element in 0..<start.count { localDelta[element] = local.trained[element] - start[element] }
    var delta = try subModels[index]?.scatter(delta: localDelta).delta ?? localDelta
    if let slot, delta !== slot {
      slot.assign(from: delta)
      delta = slot
    }
    return ClientUpdate(clientID: UInt32(index), delta: delta, sampleCount: UInt64(data.train.count),
                        coverage: coverage(ofClient: index), metrics: metrics, auxUp: local.auxUp)
  }

  // MARK: - evaluation and fine-tuning

  /// Test loss and accuracy (threshold 0.5 / arg-max) of the global model on each of `indices`.
  public func evaluateOnTests(_ global: ParameterVector, clients indices: [Int]) throws -> [Evaluation] {
    try map(indices) { [self] index in
      let local = try localModel(global, client: index)
      return try MLPTrainer(architecture: architecture(ofClient: index)).evaluate(local, on: clients.data(index).test)
    }
  }

  /// Accuracy and F1 of `model` (of `architecture`) on `test`; for a binary task at the
  /// threshold `rule` asks for (F1-optimal on `validation` when it has rows, or 0.5).
  public func score(_ model: ParameterVector, architecture: MLPArchitecture, test: Samples, validation: Samples,
                    rule: ThresholdRule) throws -> DeviceScore {
    let trainer = MLPTrainer(architecture: architecture)
    let probabilities = try trainer.probabilities(model, for: test)
    guard architecture.outputWidth == 1 else {
      let metrics = ClassificationMetrics.multiclass(probabilities: probabilities, classCount: architecture.outputWidth,
                                                     labels: test.labels)
      return DeviceScore(accuracy: metrics.accuracy, f1: metrics.f1, threshold: nil)
    }
    var threshold = 0.5
    if rule == .f1, validation.count > 0 {
      let scores = try trainer.probabilities(model, for: validation)
      threshold = ClassificationMetrics.f1OptimalThreshold(probabilities: scores, labels: validation.labels)
    }
    let metrics = ClassificationMetrics.binary(probabilities: probabilities, labels: test.labels, threshold: threshold)
    return DeviceScore(accuracy: metrics.accuracy, f1: metrics.f1, threshold: threshold)
  }

  /// Trains `model` on `data`. With `patience`, `validation` stops training (keeping the epoch of
  /// lowest validation loss); without it, `validation` is training data too unless
  /// `holdOutValidation` (it then serves only a threshold choice).
  public func fit(_ model: ParameterVector, architecture: MLPArchitecture, data: Samples, validation: Samples,
                  options: TrainingOptions, patience: Int?, holdOutValidation: Bool) throws {
    let trainer = MLPTrainer(architecture: architecture)
    guard let patience, validation.count > 0 else {
      let all = holdOutValidation ? data : Samples.concatenating([data, validation])
      _ = try trainer.train(model, on: all, options: options)
      return
    }
    let evaluator = MLPTrainer(architecture: architecture)
    let best = model.copy()
    var bestLoss = try evaluator.evaluate(model, on: validation).meanLoss
    var epochsSinceBest = 0
    _ = try trainer.train(model, on: data, options: options, afterEpoch: { _, parameters in
      let loss = try evaluator.evaluate(parameters, on: validation).meanLoss
      if loss < bestLoss {
        bestLoss = loss
        best.assign(from: parameters)
        epochsSinceBest = 0
      } else {
        epochsSinceBest += 1
      }
      return epochsSinceBest < patience
    })
    model.assign(from: best)
  }
}

/// Accuracy and F1 on a device's test split, and the threshold used (binary tasks).
public struct DeviceScore: Sendable, Codable, Equatable {
  public var accuracy: Double
  public var f1: Double
  public var threshold: Double?
}
