import Foundation

/// What one strategy achieved on one federation and seed.
public struct StrategyOutcome: @unchecked Sendable {
  public var name: String
  /// The final global model scored directly on each device's test split.
  public var global: [DeviceScore]
  /// After fine-tuning on each device (nil when the protocol's personalization is off).
  public var personalized: [DeviceScore]?
  /// Test accuracy of the global model per device after Phase 1 (nil without an initializer).
  public var afterInitialization: [Double]?
  public var rounds: [RoundRecord]
  public var globalModel: ParameterVector
  public var globalArchitecture: MLPArchitecture
  /// Per device (empty without personalization).
  public var personalizedModels: [ParameterVector]
  /// Per device: its name, the architecture of its (sub-)model and its inputs' names.
  public var devices: [(name: String, architecture: MLPArchitecture, featureNames: [String])]
}

/// One round: the global model's test metrics per device and the aggregation weights.
public struct RoundRecord: Sendable, Codable {
  public var round: Int
  public var testAccuracy: [Double]
  public var testLoss: [Double]
  public var weights: [Double]
  public var seconds: Double
  /// Scalars the aggregator reported for the round (ABI 1.2's report_metric); nil when none.
  public var strategyMetrics: [String: Double]?

  /// Per reported key, its value in each of `rounds` (nil where a round lacks it); nil if none.
  static func metricCurves(_ rounds: [RoundRecord]) -> [String: [Double?]]? {
    let keys = Set(rounds.flatMap { ($0.strategyMetrics ?? [:]).keys })
    guard !keys.isEmpty else { return nil }
    return Dictionary(uniqueKeysWithValues: keys.map { key in (key, rounds.map { $0.strategyMetrics?[key] }) })
  }
}

/// A protocol prepared on one seed's splits: its baselines and any strategy, on the same data.
public protocol ProtocolRun: AnyObject {
  var engine: FederationEngine { get }
  /// The baselines this protocol reports, in report order.
  var baselines: [Baseline] { get }
  func scores(of baseline: Baseline) throws -> [DeviceScore]
  /// The clients that train in `round` (sorted).
  func participants(inRound round: Int) -> [Int]
  /// Client `index`'s rows for Phase 3 / personalization: fine-tuning, threshold choice, test.
  func personalizationData(_ index: Int) throws -> (train: Samples, validation: Samples, test: Samples)
  /// The model every strategy starts from (computed once per seed).
  func startingModel(progress: (String) -> Void) throws -> ParameterVector
  /// Runs a strategy from `startingModel`, or from `resume`; `checkpoint` receives the state
  /// before the first round and after every round.
  func run(_ strategy: Strategy, startingModel: ParameterVector, resume: ResumePoint?,
           checkpoint: ((ResumePoint) throws -> Void)?, progress: @escaping (String) -> Void) throws -> StrategyOutcome
}

/// A reference every strategy is compared with.
public enum Baseline: String, Sendable, Codable {
  /// Each device trains a model of its own alone.
  case localOnly = "Local Only"
  /// One full model trained on every device's training rows pooled: the upper bound.
  case centralized = "Centralized"

  /// The report's stage: a device's own model, or one model for all.
  public var stage: String { self == .localOnly ? "personalized" : "global" }
}

extension RunSettings {
  /// The protocol these settings choose, prepared on `data`'s splits for `seed`.
  public func prepare(_ data: FederationData, seed: UInt64) throws -> ProtocolRun {
    switch protocolKind {
    case .fedMetaAlign: try FedMetaAlignRun(data, settings: self, seed: seed)
    case .fl: try StandardFLRun(data, settings: self, seed: seed)
    }
  }
}

extension FederationEngine {
  /// Rounds `first..<count` from `global`: `participants(round)` chooses who trains; after
  /// every round the global model is evaluated on the participants' test parts (every client's
  /// when all take part; a sample's, as federated evaluation does, when a round samples a few of
  /// thousands), reported, shown to `keepGoing` (false ends the rounds after this one's
  /// checkpoint) and checkpointed. Returns the final global model and every round's record.
  func runRounds(from global: ParameterVector, strategy: Strategy, records: [RoundRecord], count: Int, label: String,
                 participants: (Int) -> [Int], keepGoing: (_ model: ParameterVector, _ round: Int) throws -> Bool = { _, _ in true },
                 checkpoint: (ParameterVector, [RoundRecord]) throws -> Void,
                 progress: (String) -> Void) throws -> (ParameterVector, [RoundRecord]) {
    var global = global
    var records = records
    for round in records.count..<count {
      let clock = ContinuousClock.now
      let chosen = try chooseClients(round, of: count, global: global, strategy: strategy, sampled: participants(round))
      let (next, outcome) = try runRound(round, of: count, global: global, strategy: strategy, participants: chosen)
      global = next
      let evaluations = try evaluateOnTests(global, clients: chosen)
      let record = RoundRecord(round: round + 1, testAccuracy: evaluations.map(\.accuracy),
                               testLoss: evaluations.map(\.meanLoss), weights: outcome.weights, seconds: clock.secondsSince,
                               strategyMetrics: outcome.metrics.isEmpty ? nil : outcome.metrics)
      records.append(record)
      let reported = outcome.metrics.keys.sorted().map { ", \($0) " + String(format: "%.4g", outcome.metrics[$0]!) }.joined()
      progress("[\(label)] \(strategy.name) round \(round + 1)/\(count): test loss " + formatList(record.testLoss)
                 + ", accuracy " + formatList(record.testAccuracy) + ", weights " + formatList(outcome.weights)
                 + reported + String(format: " (%.2f s)", record.seconds))
      let going = try keepGoing(global, round + 1)
      try checkpoint(global, records)
      if !going { break }
    }
    return (global, records)
  }

  /// Fine-tunes `global` (each client's slice) on every client with `data(i)` and scores it;
  /// the first `freezeFraction` of the layers stay fixed.
  func personalize(_ global: ParameterVector, settings: RunSettings, data: @escaping @Sendable (Int) throws -> (train: Samples, validation: Samples, test: Samples))
    throws -> [(model: ParameterVector, score: DeviceScore)]
  {
    try map(Array(0..<clients.count)) { [self] index in
      try personalize(global, client: index, settings: settings, data: data(index))
    }
  }

  /// Client `index`'s part of `personalize`: its slice of `global` fine-tuned on `parts` and scored.
  public func personalize(_ global: ParameterVector, client index: Int, settings: RunSettings,
                          data parts: (train: Samples, validation: Samples, test: Samples))
    throws -> (model: ParameterVector, score: DeviceScore)
  {
    let model = try localModel(global, client: index)
    let architecture = architecture(ofClient: index)
    if settings.personalizationEpochs > 0 {
      let frozen = Int((Double(architecture.layerCount) * settings.freezeFraction).rounded(.down))
      let options = trainingOptions(epochs: settings.personalizationEpochs,
                                    learningRate: settings.personalizationLearningRate,
                                    seed: deriveSeed(self.settings.seed, .personalization, UInt64(index)),
                                    frozenLayers: frozen, trainingOn: parts.train)
      try fit(model, architecture: architecture, data: parts.train, validation: parts.validation, options: options,
              patience: settings.earlyStoppingPatience, holdOutValidation: settings.threshold == .f1)
    }
    return (model, try score(model, architecture: architecture, test: parts.test, validation: parts.validation,
                             rule: settings.threshold))
  }

  /// The Local Only baseline: each client trains a fresh model of its own architecture alone on
  /// `data(i).train`, and is scored like a personalized model.
  func localOnly(settings: RunSettings, learningRate: Float,
                 data: @escaping @Sendable (Int) throws -> (train: Samples, validation: Samples, test: Samples))
    throws -> [DeviceScore]
  {
    try map(Array(0..<clients.count)) { [self] index in
      let architecture = architecture(ofClient: index)
      let model = architecture.initialParameters(seed: deriveSeed(self.settings.seed, .localOnly, UInt64(index)))
      let parts = try data(index)
      let options = trainingOptions(epochs: settings.localOnlyEpochs, learningRate: learningRate,
                                    seed: deriveSeed(self.settings.seed, .localOnly, UInt64(index), 1),
                                    trainingOn: parts.train)
      try fit(model, architecture: architecture, data: parts.train, validation: parts.validation, options: options,
              patience: settings.earlyStoppingPatience, holdOutValidation: settings.threshold == .f1)
      return try score(model, architecture: architecture, test: parts.test, validation: parts.validation,
                       rule: settings.threshold)
    }
  }

  /// The full global model scored on every client, thresholds from `validation(i)`: what the
  /// federation learned, also on devices that train a sub-model (their slice of it is what the
  /// personalized row fine-tunes).
  func scoreGlobal(_ global: ParameterVector, rule: ThresholdRule,
                   data: (Int) throws -> (validation: Samples, test: Samples)) throws -> [DeviceScore] {
    try (0..<clients.count).map { index in
      let parts = try data(index)
      return try score(global, architecture: architecture, test: parts.test, validation: parts.validation, rule: rule)
    }
  }

  /// The devices as a report lists them.
  public var reportedDevices: [DeviceInfo] {
    (0..<clients.count).map {
      DeviceInfo(name: clients.profiles[$0].name, widthRate: subModel(ofClient: $0)?.rate ?? 1,
                 parameterCount: architecture(ofClient: $0).parameterCount)
    }
  }

  var deviceArchitectures: [(name: String, architecture: MLPArchitecture, featureNames: [String])] {
    clients.profiles.indices.map { (clients.profiles[$0].name, architecture(ofClient: $0), clients.profiles[$0].featureNames) }
  }
}

func formatList(_ values: [Double]) -> String {
  "[" + values.map { String(format: "%.4f", $0) }.joined(separator: ", ") + "]"
}

extension ContinuousClock.Instant {
  var secondsSince: Double {
    let elapsed = ContinuousClock.now - self
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
  }
}
