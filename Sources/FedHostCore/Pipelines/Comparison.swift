import Foundation

/// `host compare` (and a single run): every strategy plus the protocol's baselines on the same
/// splits and seeds; a strategy whose plugin fails is reported as failed and the others finish.
public struct ComparisonPlan: Sendable {
  public var strategies: [StrategyEntry]
  public var includeBaselines: Bool
  public var seeds: [UInt64]
  public var settings: RunSettings
  public var searchPath: PluginSearchPath
  public var title: String
  /// Plugin config entries (JSON values by key), delivered to every plugin that declares the key;
  /// a key that no plugin of the plan declares is an error.
  public var pluginConfig: [String: String]
  /// Where plugin calls run: `.process` keeps a crashing, hanging or overrunning plugin from
  /// taking the run down (`host` runs use it by default).
  public var isolation: PluginIsolation

  public init(strategies: [StrategyEntry], includeBaselines: Bool = true, seeds: [UInt64], settings: RunSettings,
              searchPath: PluginSearchPath, title: String, pluginConfig: [String: String] = [:],
              isolation: PluginIsolation = .none) {
    self.isolation = isolation
    self.strategies = strategies
    self.includeBaselines = includeBaselines
    self.seeds = seeds
    self.settings = settings
    self.searchPath = searchPath
    self.title = title
    self.pluginConfig = pluginConfig
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

/// A baseline's scores on one seed.
public struct BaselineResult: Codable, Sendable {
  var seed: UInt64
  var baseline: Baseline
  var scores: [DeviceScore]
}

/// What one strategy run (one seed) produced, or why it failed: the results model that the
/// report is built from and the checkpoint keeps.
public struct StrategyRunResult: Codable, Sendable {
  var seed: UInt64
  var strategyIndex: Int
  var name: String
  var failure: String?
  var global: [DeviceScore]
  var personalized: [DeviceScore]?
  var accuracyCurve: [Double]
  var lossCurve: [Double]
  /// Per key the aggregator reported (ABI 1.2 report_metric), its value in each round (nil
  /// where that round did not report it); nil when it reported none.
  var strategyMetrics: [String: [Double?]]?
}

/// Where a run writes its report, models and checkpoint, and how it treats what is there.
public struct OutputDirectory: Sendable {
  public enum Mode: Sendable { case fresh(force: Bool), resume }
  public var path: String
  public var mode: Mode

  public init(path: String, mode: Mode) {
    self.path = path
    self.mode = mode
  }

  static let runFiles = ["report.md", "report.csv", "report.json", RunCheckpoint.fileName, "models"]

  /// Refuses a directory holding another run's files (unless forced), a fresh start of a killed
  /// run of the same command (which should resume), and resuming where there is nothing to resume.
  func check(fingerprint: String) throws {
    let manager = FileManager.default
    switch mode {
    case .resume:
      guard manager.fileExists(atPath: path + "/" + RunCheckpoint.fileName) else {
        throw OutputDirectoryError("--resume \(path): no \(RunCheckpoint.fileName) there, nothing to resume (start the run with --out \(path))")
      }
    case .fresh(let force):
      guard !force else { return }
      if let saved = RunCheckpoint.peek(in: path), saved.fingerprint == fingerprint, !saved.finished {
        throw OutputDirectoryError("--out \(path) holds an unfinished run of this command: continue it with --resume \(path), or start over with --force")
      }
      if let existing = Self.runFiles.first(where: { manager.fileExists(atPath: path + "/" + $0) }) {
        throw OutputDirectoryError("--out \(path) already holds a run's results (\(existing)): choose another directory or add --force")
      }
    }
  }
}

public struct OutputDirectoryError: Error, CustomStringConvertible, InputError {
  public let description: String
  init(_ description: String) { self.description = description }
}

public enum Comparison {
  /// Runs the plan; `onOutcome(seed, strategyIndex, outcome, run)` sees every finished strategy
  /// run (e.g. to save or export its models). With `output`, the run state is written there after
  /// every round, and in resume mode the run continues from the state found there.
  public static func run(_ plan: ComparisonPlan, data: FederationData, output: OutputDirectory? = nil,
                         progress: @escaping (String) -> Void,
                         onOutcome: (UInt64, Int, StrategyOutcome, ProtocolRun) throws -> Void = { _, _, _, _ in })
    throws -> ComparisonReport
  {
    guard let firstSeed = plan.seeds.first else { throw SettingError("a comparison needs at least one seed") }
    // Configuration mistakes (a missing plugin, a wrong kind, a bad or undeclared config key)
    // end the run before any training; a plugin that breaks (even in create) is that strategy's
    // failure, and the others run. The strategies loaded here run the first seed.
    var loaded = try plan.strategies.map { entry -> Result<Strategy, Error> in
      do { return .success(try load(entry, plan: plan, seed: firstSeed)) } catch let error as PluginError where error.isFault {
        return .failure(error)
      }
    }
    if loaded.allSatisfy({ (try? $0.get()) != nil }) {
      try requireDeclared(plan.pluginConfig, by: loaded.map { try $0.get() })
    }
    var checkpoint = RunCheckpoint(fingerprint: plan.fingerprint)
    if let output {
      try output.check(fingerprint: plan.fingerprint)
      if case .resume = output.mode, let saved = try RunCheckpoint.load(from: output.path, fingerprint: plan.fingerprint) {
        checkpoint = saved
        // A strategy that failed is tried again.
        checkpoint.completed.removeAll { $0.failure != nil }
        checkpoint.finished = false
      }
    }
    let save: (RunCheckpoint) throws -> Void = { state in
      if let output { try state.save(to: output.path) }
    }

    var results: [StrategyRunResult] = []
    var baselines: [BaselineResult] = []
    var devices: [DeviceInfo] = []
    for seed in plan.seeds {
      let run = try plan.settings.prepare(data, seed: seed)
      let engine = run.engine
      devices = engine.reportedDevices
      progress("[seed \(seed)] \(devices.count) devices, model \(engine.architecture), protocol \(plan.settings.protocolKind.rawValue)")
      let start = try run.startingModel(progress: progress)
      if plan.includeBaselines {
        for baseline in run.baselines {
          let scores: [DeviceScore]
          if let saved = checkpoint.baselines.first(where: { $0.seed == seed && $0.baseline == baseline }) {
            scores = saved.scores
          } else {
            scores = try run.scores(of: baseline)
            checkpoint.baselines.append(BaselineResult(seed: seed, baseline: baseline, scores: scores))
            try save(checkpoint)
          }
          baselines.append(BaselineResult(seed: seed, baseline: baseline, scores: scores))
          progress("[seed \(seed)] \(baseline.rawValue): accuracy " + formatList(scores.map(\.accuracy)))
        }
      }
      for index in plan.strategies.indices {
        if let saved = checkpoint.completed.first(where: { $0.seed == seed && $0.strategyIndex == index }) {
          results.append(saved)
          continue
        }
        let strategy: Result<Strategy, Error> = seed == firstSeed
          ? loaded[index] : Result { try load(plan.strategies[index], plan: plan, seed: seed) }
        let result = try runStrategy(index, strategy, seed: seed, run: run, start: start, plan: plan,
                                     checkpoint: &checkpoint, save: save, progress: progress, onOutcome: onOutcome)
        results.append(result)
      }
      if seed == firstSeed { loaded = [] }
    }
    checkpoint.finished = true
    try save(checkpoint)
    return report(plan, devices: devices, baselines: baselines, results: results)
  }

  private static func load(_ entry: StrategyEntry, plan: ComparisonPlan, seed: UInt64) throws -> Strategy {
    try StrategyLoader.load(
      aggregator: entry.aggregator, initializer: plan.settings.initializer(for: entry.initializer),
      clientHook: entry.clientHook, searchPath: plan.searchPath, threads: plan.settings.threads, isolation: plan.isolation,
      config: { plan.settings.pluginConfig(for: $0, seed: seed, extra: plan.pluginConfig) })
  }

  private static func requireDeclared(_ config: [String: String], by strategies: [Strategy]) throws {
    let declared = Set(strategies.flatMap(\.distinctInstances).flatMap { $0.library.descriptor.configKeys.map(\.key) })
    for key in config.keys.sorted() where !declared.contains(key) {
      throw SettingError("--plugin-config \(key): no plugin of this run declares it (they declare: "
                           + declared.sorted().joined(separator: ", ") + ")")
    }
  }

  /// One strategy on one seed, resumed from the checkpoint when it was in progress there; the
  /// result (or the failure) is recorded in the checkpoint.
  private static func runStrategy(_ index: Int, _ loading: Result<Strategy, Error>, seed: UInt64, run: ProtocolRun,
                                  start: ParameterVector, plan: ComparisonPlan, checkpoint: inout RunCheckpoint,
                                  save: @escaping (RunCheckpoint) throws -> Void, progress: @escaping (String) -> Void,
                                  onOutcome: (UInt64, Int, StrategyOutcome, ProtocolRun) throws -> Void)
    throws -> StrategyRunResult
  {
    let entry = plan.strategies[index]
    let resumePoint = checkpoint.current.flatMap { $0.seed == seed && $0.strategyIndex == index ? $0.point : nil }
    var result = StrategyRunResult(seed: seed, strategyIndex: index, name: entry.aggregator, failure: nil,
                                   global: [], personalized: nil, accuracyCurve: [], lossCurve: [])
    do {
      let strategy = try loading.get()
      result.name = strategy.name
      var progressState = checkpoint
      let outcome = try run.run(
        strategy, startingModel: start, resume: resumePoint,
        checkpoint: { point in
          progressState.current = .init(seed: seed, strategyIndex: index, point: point)
          try save(progressState)
        }, progress: progress)
      try onOutcome(seed, index, outcome, run)
      result.global = outcome.global
      result.personalized = outcome.personalized
      result.accuracyCurve = outcome.rounds.map { mean($0.testAccuracy) }
      result.lossCurve = outcome.rounds.map { mean($0.testLoss) }
      result.strategyMetrics = RoundRecord.metricCurves(outcome.rounds)
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

  /// The report: baselines first, then each strategy's global and (if any) personalized rows.
  /// Public for a caller that ran the strategies elsewhere (the engine library under Flower).
  public static func report(_ plan: ComparisonPlan, devices: [DeviceInfo], baselines: [BaselineResult],
                             results: [StrategyRunResult]) -> ComparisonReport {
    var methods: [MethodResult] = []
    var kinds: [Baseline] = []
    for result in baselines where !kinds.contains(result.baseline) { kinds.append(result.baseline) }
    for kind in kinds {
      var row = MethodAccumulator(method: kind.rawValue, stage: kind.stage)
      for seed in plan.seeds { baselines.filter { $0.seed == seed && $0.baseline == kind }.forEach { row.add($0.scores) } }
      methods.append(row.result)
    }
    var curves: [RoundCurve] = []
    let hasPersonalized = results.contains { $0.personalized != nil }
    for index in plan.strategies.indices {
      let runs = plan.seeds.compactMap { seed in results.first { $0.seed == seed && $0.strategyIndex == index } }
      let name = runs.first(where: { $0.failure == nil })?.name ?? runs.first?.name ?? plan.strategies[index].aggregator
      var global = MethodAccumulator(method: name, stage: "global")
      var personalized = MethodAccumulator(method: name, stage: "personalized")
      for run in runs {
        if let failure = run.failure {
          global.failure = global.failure ?? failure
          personalized.failure = personalized.failure ?? failure
          continue
        }
        global.add(run.global)
        if let scores = run.personalized { personalized.add(scores) }
        curves.append(RoundCurve(method: name, seed: run.seed, accuracy: run.accuracyCurve, loss: run.lossCurve,
                                 strategyMetrics: run.strategyMetrics))
      }
      methods.append(global.result)
      if hasPersonalized { methods.append(personalized.result) }
    }
    return ComparisonReport(title: plan.title, seeds: plan.seeds, devices: devices, methods: methods, curves: curves,
                            notes: plan.settings.describe())
  }
}

extension RunSettings {
  /// The initializer a strategy gets under this protocol (only Fed-Meta-Align has a Phase 1).
  func initializer(for choice: InitializerChoice) -> InitializerChoice {
    protocolKind == .fedMetaAlign ? choice : .none
  }
}

extension ComparisonPlan {
  /// What identifies a run for resuming: everything that influences its results (not the
  /// thread count, which does not).
  var fingerprint: String {
    var settings = self.settings
    settings.threads = 1
    return [title, String(describing: strategies), seeds.map(String.init).joined(separator: ","),
            String(describing: settings), String(includeBaselines),
            pluginConfig.keys.sorted().map { "\($0)=\(pluginConfig[$0]!)" }.joined(separator: ",")]
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
