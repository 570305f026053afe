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
  /// Runs the plan; `onOutcome(seed, strategyIndex, outcome)` sees every finished strategy run
  /// (e.g. to save its models).
  public static func run(_ plan: ComparisonPlan, data: FederationData, progress: @escaping (String) -> Void,
                         onOutcome: (UInt64, Int, StrategyOutcome) throws -> Void = { _, _, _ in })
    throws -> ComparisonReport
  {
    var localOnly = MethodAccumulator(method: "Local Only", stage: "personalized")
    var strategyRows: [String: (global: MethodAccumulator, personalized: MethodAccumulator)] = [:]
    var names: [String: String] = [:]
    var curves: [RoundCurve] = []
    var devices: [DeviceInfo] = []

    for seed in plan.seeds {
      var settings = plan.settings
      settings.seed = seed
      let federation = try Federation(data.prepare(seed: seed), settings: settings)
      devices = federation.devices.indices.map {
        DeviceInfo(name: federation.devices[$0].name, widthRate: federation.devices[$0].modelRate,
                   parameterCount: federation.architecture(ofDevice: $0).parameterCount)
      }
      progress("[seed \(seed)] \(federation.devices.count) devices, model \(federation.architecture)")
      let start = try FedMetaAlignPipeline.startingModel(federation, progress: progress)
      if plan.includeLocalOnly {
        localOnly.add(try federation.localOnly())
        progress("[seed \(seed)] Local Only: accuracy " + formatList(localOnly.accuracy.map { $0.last ?? .nan }))
      }

      for (index, entry) in plan.strategies.enumerated() {
        let key = "\(index)"
        var rows = strategyRows[key] ?? (MethodAccumulator(method: entry.aggregator, stage: "global"),
                                         MethodAccumulator(method: entry.aggregator, stage: "personalized"))
        do {
          let strategy = try StrategyLoader.load(aggregator: entry.aggregator, initializer: entry.initializer,
                                                 clientHook: entry.clientHook, searchPath: plan.searchPath,
                                                 settings: settings, extraConfig: plan.extraConfig)
          names[key] = strategy.name
          let outcome = try FedMetaAlignPipeline.run(federation, strategy: strategy, startingModel: start,
                                                     progress: progress)
          try onOutcome(seed, index, outcome)
          rows.global.add(outcome.global)
          rows.personalized.add(outcome.personalized)
          curves.append(RoundCurve(method: strategy.name, seed: seed,
                                   accuracy: outcome.rounds.map { mean($0.testAccuracy) },
                                   loss: outcome.rounds.map { mean($0.testLoss) }))
        } catch {
          progress("[seed \(seed)] \(entry.aggregator) failed: \(error)")
          rows.global.failure = rows.global.failure ?? String(describing: error)
          rows.personalized.failure = rows.personalized.failure ?? String(describing: error)
        }
        strategyRows[key] = rows
      }
    }
    var methods = plan.includeLocalOnly ? [localOnly.result] : []
    for (index, entry) in plan.strategies.enumerated() {
      guard let rows = strategyRows["\(index)"] else { continue }
      let name = names["\(index)"] ?? entry.aggregator
      var global = rows.global.result
      var personalized = rows.personalized.result
      global.method = name
      personalized.method = name
      methods += [global, personalized]
    }
    return ComparisonReport(title: plan.title, seeds: plan.seeds, devices: devices, methods: methods, curves: curves,
                            notes: plan.settings.describe())
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
      "preset \(preset.rawValue): \(useSGD ? "SGD" : "Adam") lr \(learningRate), batch \(batchSize); "
        + "Phase 0 \(pretrainEpochs) epoch(s); Phase 1 \(serialRounds) serial rounds × \(serialEpochs) epoch(s); "
        + "Phase 2 \(parallelRounds) rounds × \(localEpochs) local epoch(s); Phase 3 \(personalizationEpochs) epochs "
        + "at lr \(personalizationLearningRate), first \(Int(freezeFraction * 100)) % of layers frozen; "
        + "Local Only \(localOnlyEpochs) epochs",
      "threshold: \(threshold == .f1 ? "F1-optimal on each device's Phase 3 validation slice" : "0.5 / arg-max"); "
        + "similarity floor c = \(similarityFloor); FedProx μ = \(mu)",
    ]
  }
}
