import Foundation

/// `host compare`: every strategy, plus Local Only, on the same splits and seeds; a strategy
/// whose plugin fails is reported as failed and the others finish.
public struct ComparisonPlan: Sendable {
  public var strategies: [StrategyEntry]
  public var includeLocalOnly: Bool
  public var seeds: [UInt64]
  public var settings: PipelineSettings
  public var searchPath: PluginSearchPath
  public var title: String
  /// Extra plugin config entries (JSON values by key), applied to every plugin that declares the key.
  public var extraConfig: [String: String]

  public init(strategies: [StrategyEntry], includeLocalOnly: Bool = true, seeds: [UInt64], settings: PipelineSettings,
              searchPath: PluginSearchPath, title: String, extraConfig: [String: String] = [:]) {
    self.strategies = strategies
    self.includeLocalOnly = includeLocalOnly
    self.seeds = seeds
    self.settings = settings
    self.searchPath = searchPath
    self.title = title
    self.extraConfig = extraConfig
  }
}

/// One strategy of a comparison: its aggregator and how Phase 1 and the client hook are chosen.
public struct StrategyEntry: Sendable, Equatable {
  public var aggregator: String
  public var initializer: InitializerChoice
  public var clientHook: String?

  public init(aggregator: String, initializer: InitializerChoice = .automatic, clientHook: String? = nil) {
    self.aggregator = aggregator
    self.initializer = initializer
    self.clientHook = clientHook
  }
}

public enum Comparison {
  /// Runs the plan; `onOutcome(seed, strategyIndex, outcome, federation)` sees every finished
  /// strategy run (e.g. to save or export its models). With `checkpointDirectory`, the run
  /// state is written there after every round; with `resume`, the run continues from the
  /// state found there.
  public static func run(_ plan: ComparisonPlan, data: FederationData, checkpointDirectory: String? = nil,
                         resume: Bool = false, progress: @escaping (String) -> Void,
                         onOutcome: (UInt64, Int, StrategyOutcome, Federation) throws -> Void = { _, _, _, _ in })
    throws -> ComparisonReport
  {
    // Configuration mistakes (a missing plugin, a wrong kind, a bad config key) end the run
    // before any training; only failures while running are isolated per strategy.
    for entry in plan.strategies {
      _ = try StrategyLoader.load(aggregator: entry.aggregator, initializer: entry.initializer,
                                  clientHook: entry.clientHook, searchPath: plan.searchPath, settings: plan.settings,
                                  extraConfig: plan.extraConfig)
    }
    var checkpoint = RunCheckpoint(fingerprint: plan.fingerprint)
    if resume, let checkpointDirectory {
      if let saved = try RunCheckpoint.load(from: checkpointDirectory, fingerprint: plan.fingerprint) {
        checkpoint = saved
      } else {
        progress("[resume] no checkpoint in \(checkpointDirectory) yet: starting from the beginning")
      }
    }
    let save: (RunCheckpoint) throws -> Void = { state in
      if let checkpointDirectory { try state.save(to: checkpointDirectory) }
    }
    var localOnly = MethodAccumulator(method: "Local Only", stage: "personalized")
    var rows = plan.strategies.map { entry in
      (global: MethodAccumulator(method: entry.aggregator, stage: "global"),
       personalized: MethodAccumulator(method: entry.aggregator, stage: "personalized"), name: entry.aggregator)
    }
    var curves: [RoundCurve] = []
    var devices: [DeviceInfo] = []

    for seed in plan.seeds {
      var settings = plan.settings
      settings.seed = seed
      let federation = try Federation(data.prepare(seed: seed, phaseFractions: settings.phaseFractions), settings: settings)
      devices = federation.devices.indices.map {
        DeviceInfo(name: federation.devices[$0].name, widthRate: federation.subModels[$0]?.rate ?? 1,
                   parameterCount: federation.architecture(ofDevice: $0).parameterCount)
      }
      progress("[seed \(seed)] \(federation.devices.count) devices, model \(federation.architecture)")
      let start = try FedMetaAlignPipeline.startingModel(federation, progress: progress)
      if plan.includeLocalOnly {
        let scores: [DeviceScore]
        if let saved = checkpoint.localOnly.first(where: { $0.seed == seed }) {
          scores = saved.scores
        } else {
          scores = try federation.localOnly()
          checkpoint.localOnly.append(.init(seed: seed, scores: scores))
          try save(checkpoint)
        }
        localOnly.add(scores)
        progress("[seed \(seed)] Local Only: accuracy " + formatList(scores.map(\.accuracy)))
      }

      for (index, entry) in plan.strategies.enumerated() {
        var done: RunCheckpoint.CompletedStrategy
        if let saved = checkpoint.completed.first(where: { $0.seed == seed && $0.strategyIndex == index }) {
          done = saved
        } else {
          done = try runStrategy(entry, index: index, seed: seed, federation: federation, start: start, plan: plan,
                                 checkpoint: &checkpoint, save: save, progress: progress, onOutcome: onOutcome)
        }
        rows[index].name = done.name
        if let failure = done.failure {
          rows[index].global.failure = rows[index].global.failure ?? failure
          rows[index].personalized.failure = rows[index].personalized.failure ?? failure
        } else {
          rows[index].global.add(done.global)
          rows[index].personalized.add(done.personalized)
          curves.append(RoundCurve(method: done.name, seed: seed, accuracy: done.accuracyCurve, loss: done.lossCurve))
        }
      }
    }
    var methods = plan.includeLocalOnly ? [localOnly.result] : []
    for row in rows {
      var global = row.global.result
      var personalized = row.personalized.result
      global.method = row.name
      personalized.method = row.name
      methods += [global, personalized]
    }
    return ComparisonReport(title: plan.title, seeds: plan.seeds, devices: devices, methods: methods, curves: curves,
                            notes: plan.settings.describe())
  }

  /// One strategy on one seed, resumed from the checkpoint when it was in progress there; the
  /// result (or the failure) is recorded in the checkpoint.
  private static func runStrategy(_ entry: StrategyEntry, index: Int, seed: UInt64, federation: Federation,
                                  start: ParameterVector, plan: ComparisonPlan, checkpoint: inout RunCheckpoint,
                                  save: @escaping (RunCheckpoint) throws -> Void, progress: @escaping (String) -> Void,
                                  onOutcome: (UInt64, Int, StrategyOutcome, Federation) throws -> Void)
    throws -> RunCheckpoint.CompletedStrategy
  {
    let resumePoint = checkpoint.current.flatMap { $0.seed == seed && $0.strategyIndex == index ? $0.point : nil }
    var result = RunCheckpoint.CompletedStrategy(seed: seed, strategyIndex: index, name: entry.aggregator, failure: nil,
                                                 global: [], personalized: [], accuracyCurve: [], lossCurve: [])
    do {
      let strategy = try StrategyLoader.load(aggregator: entry.aggregator, initializer: entry.initializer,
                                             clientHook: entry.clientHook, searchPath: plan.searchPath,
                                             settings: federation.settings, extraConfig: plan.extraConfig)
      result.name = strategy.name
      var progressState = checkpoint
      let outcome = try FedMetaAlignPipeline.run(
        federation, strategy: strategy, startingModel: start, resume: resumePoint,
        checkpoint: { point in
          progressState.current = .init(seed: seed, strategyIndex: index, point: point)
          try save(progressState)
        }, progress: progress)
      try onOutcome(seed, index, outcome, federation)
      result.global = outcome.global
      result.personalized = outcome.personalized
      result.accuracyCurve = outcome.rounds.map { mean($0.testAccuracy) }
      result.lossCurve = outcome.rounds.map { mean($0.testLoss) }
    } catch let error as CheckpointError {
      throw error
    } catch let error as AtomicWriteError {
      throw error
    } catch {
      progress("[seed \(seed)] \(entry.aggregator) failed: \(error)")
      result.failure = String(describing: error)
    }
    checkpoint.current = nil
    checkpoint.completed.append(result)
    try save(checkpoint)
    return result
  }
}

extension ComparisonPlan {
  /// What identifies a run for resuming: everything that influences its results (not the
  /// thread count, which does not).
  var fingerprint: String {
    var settings = self.settings
    settings.threads = 1
    return [title, String(describing: strategies), seeds.map(String.init).joined(separator: ","),
            String(describing: settings), String(includeLocalOnly),
            extraConfig.keys.sorted().map { "\($0)=\(extraConfig[$0]!)" }.joined(separator: ",")]
      .joined(separator: "|")
  }
}

/// Collects one row's scores over seeds.
struct MethodAccumulator {
  let method: String
  let stage: String
  var failure: String?
  var accuracy: [[Double]] = []
  var f1: [[Double]] = []

  init(method: String, stage: String) {
    self.method = method
    self.stage = stage
  }

  mutating func add(_ scores: [DeviceScore]) {
    if accuracy.isEmpty {
      accuracy = Array(repeating: [], count: scores.count)
      f1 = Array(repeating: [], count: scores.count)
    }
    for (device, score) in scores.enumerated() {
      accuracy[device].append(score.accuracy)
      f1[device].append(score.f1)
    }
  }

  var result: MethodResult {
    failure.map { MethodResult(method: method, stage: stage, failure: $0, accuracy: [], f1: []) }
      ?? MethodResult(method: method, stage: stage, accuracy: accuracy, f1: f1)
  }
}

func mean(_ values: [Double]) -> Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }

extension PipelineSettings {
  /// Human-readable lines stating the settings a result was produced with.
  public func describe() -> [String] {
    [
      "preset \(preset.rawValue): phases " + phaseFractions.map { String(Int(($0 * 100).rounded())) }.joined(separator: "/")
        + " % of each device's train part; \(useSGD ? "SGD" : "Adam") lr \(learningRate), batch \(batchSize); "
        + "Phase 0 \(pretrainEpochs) epoch(s); Phase 1 \(serialRounds) serial rounds × \(serialEpochs) epoch(s); "
        + "Phase 2 \(parallelRounds) rounds × \(localEpochs) local epoch(s); Phase 3 \(personalizationEpochs) epochs "
        + "at lr \(personalizationLearningRate), first \(Int(freezeFraction * 100)) % of layers frozen; "
        + "Local Only \(localOnlyEpochs) epochs",
      "threshold: \(threshold == .f1 ? "F1-optimal on each device's Phase 3 validation slice" : "0.5 / arg-max"); "
        + "similarity floor c = \(similarityFloor); FedProx μ = \(mu)",
    ]
  }
}
