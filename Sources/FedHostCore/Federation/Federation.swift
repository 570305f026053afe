import PluginAPI
import Foundation

/// A prepared federation ready to train: its devices (standardized splits), the global
/// architecture, each device's sub-model (width rate < 1) and the run settings. Every method
/// here is deterministic from `settings.seed`, whatever the thread count.
public final class Federation: @unchecked Sendable {
  public let devices: [PreparedDevice]
  public let pretraining: PreparedPretraining?
  public let architecture: MLPArchitecture
  /// Per device: nil when it trains the full model.
  public let subModels: [SubModel?]
  /// Per device: the global elements its sub-model covers (nil: all).
  let coverages: [CoverageMask?]
  public let settings: PipelineSettings
  let pool: WorkerPool

  public init(_ prepared: PreparedFederation, settings: PipelineSettings) throws {
    try settings.validate()
    guard let first = prepared.devices.first else { throw PipelineError.incompatibleData("the federation has no devices") }
    for device in prepared.devices {
      guard device.train.width == first.train.width else {
        throw PipelineError.incompatibleData(
          "device \(device.name) has \(device.train.width) inputs, \(first.name) has \(first.train.width): pad them to one width")
      }
      guard device.classNames.count == first.classNames.count else {
        throw PipelineError.incompatibleData("device \(device.name) has \(device.classNames.count) classes, \(first.name) has \(first.classNames.count)")
      }
    }
    if let pretraining = prepared.pretraining, pretraining.train.width != first.train.width {
      throw PipelineError.incompatibleData(
        "pretraining set \(pretraining.name) has \(pretraining.train.width) inputs, devices have \(first.train.width)")
    }
    let outputWidth = first.classNames.count <= 2 ? 1 : first.classNames.count
    let global = try MLPArchitecture(widths: [first.train.width] + settings.hiddenWidths + [outputWidth])
    architecture = global
    // A device trains the widest sub-model whose int8 deployment fits its memory budget,
    // capped by its stated model rate (default 1).
    let rates = try prepared.devices.map { device -> Double in
      guard let budget = device.memory else { return device.modelRate }
      guard let fit = try DeviceFootprint.largestRate(for: global, budget: budget) else {
        throw PipelineError.incompatibleData(
          "device \(device.name): even a 1 % wide int8 model exceeds its memory budget "
            + "(\(budget.flashBytes) B flash, \(budget.ramBytes) B RAM)")
      }
      return min(device.modelRate, fit.rate)
    }
    subModels = try rates.map { rate in rate >= 1 ? nil : try SubModel(global: global, rate: rate) }
    coverages = try subModels.map { subModel in
      try subModel.map { CoverageMask(try $0.scatter(delta: ParameterVector(count: $0.architecture.parameterCount)).coverage) }
    }
    devices = prepared.devices
    pretraining = prepared.pretraining
    self.settings = settings
    pool = WorkerPool(threadCount: settings.threads)
  }

  public var isBinary: Bool { architecture.outputWidth == 1 }

  /// The architecture device `index` trains.
  public func architecture(ofDevice index: Int) -> MLPArchitecture {
    subModels[index]?.architecture ?? architecture
  }

  /// Device `index`'s view of a global model: the model itself or its sub-model slice.
  public func localModel(_ global: ParameterVector, device index: Int) throws -> ParameterVector {
    try subModels[index]?.extract(from: global) ?? global.copy()
  }

  /// The seeded initial model.
  public func initialModel() -> ParameterVector {
    architecture.initialParameters(seed: deriveSeed(settings.seed, .initialization))
  }

  func trainingOptions(epochs: Int, learningRate: Float, seed: UInt64, frozenLayers: Int = 0) -> TrainingOptions {
    TrainingOptions(optimizer: settings.optimizer(learningRate: learningRate), epochs: epochs,
                    batchSize: settings.batchSize, shuffle: true, seed: seed, frozenLayerCount: frozenLayers)
  }

  // MARK: - Phase 0

  /// Trains `model` centrally on the pretraining set; returns the last epoch's mean loss, or
  /// nil when there is no pretraining set or no pretraining epochs.
  public func pretrain(_ model: ParameterVector) throws -> Double? {
    guard let pretraining, settings.pretrainEpochs > 0 else { return nil }
    let options = trainingOptions(epochs: settings.pretrainEpochs, learningRate: settings.learningRate,
                                  seed: deriveSeed(settings.seed, .pretraining))
    return try MLPTrainer(architecture: architecture).train(model, on: pretraining.train, options: options)
      .epochLosses.last
  }

  // MARK: - Phase 1

  /// Lets an initializer plugin turn `model` into the initial global model, training on each
  /// device's Phase 1 support split and evaluating on its query split through host callbacks.
  public func initialize(_ model: ParameterVector, with initializer: PluginInstance,
                         progress: @escaping (String) -> Void) throws {
    let trainer = MLPTrainer(architecture: architecture)
    var visits: UInt64 = 0
    let services = InitializerServices(
      clientCount: devices.count,
      trainClient: { [self] client, weights, epochs in
        visits += 1
        let local = ParameterVector(count: weights.count)
        local.pointer.update(from: weights.baseAddress!, count: weights.count)
        let options = trainingOptions(epochs: max(1, epochs), learningRate: settings.learningRate,
                                      seed: deriveSeed(settings.seed, .serial, visits))
        let summary = try trainer.train(local, on: devices[client].phase1.support, options: options)
        weights.baseAddress!.update(from: local.pointer, count: weights.count)
        return summary.epochLosses.last ?? .nan
      },
      evaluateClient: { [self] client, weights in
        let local = ParameterVector(count: weights.count)
        local.pointer.update(from: weights.baseAddress!, count: weights.count)
        let evaluation = try trainer.evaluate(local, on: devices[client].phase1.query)
        progress("[phase 1] visit \(visits): \(devices[client].name) query loss "
                   + String(format: "%.4f, accuracy %.4f", evaluation.meanLoss, evaluation.accuracy))
        return (evaluation.meanLoss, evaluation.accuracy)
      })
    try initializer.initialize(weights: model, services: services)
  }

  // MARK: - Phase 2

  /// One parallel FL round: every device trains the global model (its slice) on its Phase 2
  /// support split, reports delta, sample count and query loss, and the aggregator combines
  /// them. Returns the new global model and the effective weight of each device.
  public func runRound(_ round: Int, global: ParameterVector, strategy: Strategy) throws
    -> (model: ParameterVector, weights: [Double])
  {
    let updates = try pool.map(
      count: devices.count,
      makeState: { [architecture] _ in TrainerCache(global: architecture) },
      job: { [self] trainers, index in
        try trainClient(index, round: round, global: global, hook: strategy.clientHook,
                        trainer: trainers.trainer(for: self.architecture(ofDevice: index)))
      })
    let next = ParameterVector(count: global.count)
    let weights = try strategy.aggregator.aggregate(round: round, global: global, updates: updates, into: next)
    if let bad = (0..<next.count).first(where: { !next[$0].isFinite }) {
      throw PipelineError.strategy("\(strategy.aggregator.id): aggregate produced a non-finite element \(bad) in round \(round)")
    }
    return (next, weights)
  }

  private func trainClient(_ index: Int, round: Int, global: ParameterVector, hook: PluginInstance?,
                           trainer: MLPTrainer) throws -> ClientUpdate {
    let device = devices[index]
    let support = device.phase2.support
    var metrics: [String: Double] = [:]
    // The client's trained model, in its own (sub-)model's shape.
    let trained: ParameterVector
    let start = try localModel(global, device: index)
    if let hook, hook.supportsTrainLocal {
      trained = try trainWithPlugin(hook, client: index, global: global, trainer: trainer, metrics: &metrics)
    } else {
      trained = start.copy()
      let gradientHook: GradientHook? = hook.flatMap { hook in
        guard hook.supportsAdjustGradient else { return nil }
        return { weights, gradient in
          try hook.adjustGradient(clientID: UInt32(index), local: weights.baseAddress!, global: start.pointer,
                                  gradient: gradient.baseAddress!, count: gradient.count)
        }
      }
      let options = trainingOptions(epochs: settings.epochsPerRound(sampleCount: support.count),
                                    learningRate: settings.learningRate,
                                    seed: deriveSeed(settings.seed, .parallel, UInt64(round), UInt64(index)))
      let summary = try trainer.train(trained, on: support, options: options, gradientHook: gradientHook)
      metrics[FHP_METRIC_TRAIN_LOSS] = summary.epochLosses.last
    }
    let query = try trainer.evaluate(trained, on: device.phase2.query.count > 0 ? device.phase2.query : support)
    metrics[FHP_METRIC_QUERY_LOSS] = query.meanLoss
    metrics[FHP_METRIC_QUERY_ACCURACY] = query.accuracy

    let localDelta = ParameterVector(count: start.count)
    for element in 0..<start.count { localDelta[element] = trained[element] - start[element] }
    let delta = try subModels[index]?.scatter(delta: localDelta).delta ?? localDelta
    return ClientUpdate(clientID: UInt32(index), delta: delta, sampleCount: UInt64(support.count),
                        coverage: coverages[index], metrics: metrics)
  }

  /// Runs a plugin's own local procedure (`train_local`) with the host as gradient oracle. The
  /// plugin always sees global-sized vectors; a sub-model client's gradients are scattered into
  /// them, and what the plugin does to elements outside its coverage is dropped.
  private func trainWithPlugin(_ hook: PluginInstance, client index: Int, global: ParameterVector,
                               trainer: MLPTrainer, metrics: inout [String: Double]) throws -> ParameterVector {
    let device = devices[index]
    let subModel = subModels[index]
    let weights = global.copy()
    let reported = MetricCollector()
    let services = ClientServices(
      clientID: UInt32(index), supportCount: device.phase2.support.count, queryCount: device.phase2.query.count,
      coverage: coverages[index],
      gradient: { split, rows, pointer, gradient in
        let samples = split == .support ? device.phase2.support : device.phase2.query
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
        gradient.update(from: scattered.pointer, count: global.count)
        return loss
      },
      reportMetric: { key, value in reported.values[key] = value })
    try hook.trainLocal(weights: weights.buffer, services: services)
    metrics.merge(reported.values) { _, new in new }
    return try subModel?.extract(from: weights) ?? weights
  }

  // MARK: - evaluation and Phase 3

  /// Test loss and accuracy (threshold 0.5 / arg-max) of the global model on every device.
  public func evaluateOnTests(_ global: ParameterVector) throws -> [Evaluation] {
    try pool.map(count: devices.count, makeState: { _ in () }, job: { [self] _, index in
      let local = try localModel(global, device: index)
      return try MLPTrainer(architecture: architecture(ofDevice: index)).evaluate(local, on: devices[index].test)
    })
  }

  /// Accuracy and F1 of `model` (already device `index`'s architecture) on its test split,
  /// at the threshold the settings ask for (F1-optimal on the validation slice, or 0.5).
  public func score(_ model: ParameterVector, device index: Int) throws -> DeviceScore {
    let device = devices[index]
    let trainer = MLPTrainer(architecture: architecture(ofDevice: index))
    let probabilities = try trainer.probabilities(model, for: device.test)
    guard isBinary else {
      let metrics = ClassificationMetrics.multiclass(probabilities: probabilities, classCount: architecture.outputWidth,
                                                     labels: device.test.labels)
      return DeviceScore(accuracy: metrics.accuracy, f1: metrics.f1, threshold: nil)
    }
    var threshold = 0.5
    if settings.threshold == .f1, device.phase3Validation.count > 0 {
      let validation = try trainer.probabilities(model, for: device.phase3Validation)
      threshold = ClassificationMetrics.f1OptimalThreshold(probabilities: validation,
                                                           labels: device.phase3Validation.labels)
    }
    let metrics = ClassificationMetrics.binary(probabilities: probabilities, labels: device.test.labels,
                                               threshold: threshold)
    return DeviceScore(accuracy: metrics.accuracy, f1: metrics.f1, threshold: threshold)
  }

  /// Scores of the global model itself on every device.
  public func scoreGlobal(_ global: ParameterVector) throws -> [DeviceScore] {
    try devices.indices.map { try score(localModel(global, device: $0), device: $0) }
  }

  /// Phase 3 on every device: freeze the first layers, fine-tune the rest on the Phase 3
  /// split, choose the threshold, score on the test split. Returns the personalized models too.
  public func personalize(_ global: ParameterVector) throws -> [(model: ParameterVector, score: DeviceScore)] {
    try pool.map(count: devices.count, makeState: { _ in () }, job: { [self] _, index in
      let model = try localModel(global, device: index)
      let deviceArchitecture = architecture(ofDevice: index)
      if settings.personalizationEpochs > 0 {
        let frozen = Int((Double(deviceArchitecture.layerCount) * settings.freezeFraction).rounded(.down))
        let options = trainingOptions(epochs: settings.personalizationEpochs,
                                      learningRate: settings.personalizationLearningRate,
                                      seed: deriveSeed(settings.seed, .personalization, UInt64(index)),
                                      frozenLayers: frozen)
        try fit(model, architecture: deviceArchitecture, data: devices[index].phase3Train,
                validation: devices[index].phase3Validation, options: options)
      }
      return (model, try score(model, device: index))
    })
  }

  /// The Local Only baseline: each device trains a fresh model alone on its own training data
  /// (Phases 1–3, the validation slice excepted) and is scored like a personalized model.
  public func localOnly() throws -> [DeviceScore] {
    try pool.map(count: devices.count, makeState: { _ in () }, job: { [self] _, index in
      let device = devices[index]
      let deviceArchitecture = architecture(ofDevice: index)
      let model = deviceArchitecture.initialParameters(seed: deriveSeed(settings.seed, .localOnly, UInt64(index)))
      let data = Samples.concatenating([device.phase1.combined, device.phase2.combined, device.phase3Train])
      let options = trainingOptions(epochs: settings.localOnlyEpochs, learningRate: settings.personalizationLearningRate,
                                    seed: deriveSeed(settings.seed, .localOnly, UInt64(index), 1))
      try fit(model, architecture: deviceArchitecture, data: data, validation: device.phase3Validation, options: options)
      return try score(model, device: index)
    })
  }

  /// Trains `model` on a device's data. The validation slice serves the F1 threshold and early
  /// stopping (keeping the epoch of lowest validation loss); when neither is on, it is
  /// training data too.
  private func fit(_ model: ParameterVector, architecture: MLPArchitecture, data: Samples, validation: Samples,
                   options: TrainingOptions) throws {
    let trainer = MLPTrainer(architecture: architecture)
    guard let patience = settings.earlyStoppingPatience, validation.count > 0 else {
      let all = settings.threshold == .f1 ? data : Samples.concatenating([data, validation])
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

/// One trainer per architecture per worker (sub-models differ in shape).
struct TrainerCache {
  private var trainers: [MLPArchitecture: MLPTrainer] = [:]
  init(global: MLPArchitecture) { trainers[global] = MLPTrainer(architecture: global) }
  mutating func trainer(for architecture: MLPArchitecture) -> MLPTrainer {
    if let trainer = trainers[architecture] { return trainer }
    let trainer = MLPTrainer(architecture: architecture)
    trainers[architecture] = trainer
    return trainer
  }
}

/// Metrics a client-side plugin reports during `train_local` (single thread per client).
private final class MetricCollector { var values: [String: Double] = [:] }
