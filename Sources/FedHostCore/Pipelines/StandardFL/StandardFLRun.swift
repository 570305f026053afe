import Foundation

/// The standard FL protocol on one seed's splits: every method trains on each device's whole
/// train part minus a validation slice; R rounds, each training a seeded sample of the clients
/// for E local epochs (or steps); the global model scored on every device; personalization
/// (fine-tuning on the device) as an optional last stage. Its baselines are Local Only and a
/// centralized upper bound trained on the pooled training data. Clients are prepared when
/// they are used, so memory follows the sampled clients, not the federation.
public final class StandardFLRun: ProtocolRun, @unchecked Sendable {
  public let engine: FederationEngine
  let settings: RunSettings

  public init(_ data: FederationData, settings: RunSettings, seed: UInt64) throws {
    let profiles = data.devices.map {
      ClientProfile(name: $0.name, modelRate: $0.modelRate, memory: $0.memory, featureNames: $0.dataset.featureNames)
    }
    let clients = ClientSource(profiles: profiles) { index in
      let device = data.prepareForFL(device: index, seed: seed)
      return ClientData(train: device.train, query: device.validation, validation: device.validation, test: device.test)
    }
    let first = data.devices[0].dataset
    self.settings = settings
    engine = try FederationEngine(clients: clients, inputWidth: first.samples.width, classCount: first.classNames.count,
                                  settings: settings.engine(seed: seed))
  }

  public var baselines: [Baseline] { [.localOnly, .centralized] }

  public func personalizationData(_ index: Int) throws -> (train: Samples, validation: Samples, test: Samples) {
    let client = try engine.clients.data(index)
    return (client.train, client.validation, client.test)
  }

  public func scores(of baseline: Baseline) throws -> [DeviceScore] {
    switch baseline {
    case .localOnly: try engine.localOnly(settings: settings, learningRate: settings.learningRate, data: personalizationData)
    case .centralized: try centralized()
    }
  }

  /// A fresh full model trained on every device's training rows pooled (each device's rows
  /// standardized on its own train part, as the federated methods see them), scored on every
  /// device with the full model.
  private func centralized() throws -> [DeviceScore] {
    let clients = try (0..<engine.clients.count).map { try engine.clients.data($0) }
    let model = engine.architecture.initialParameters(seed: deriveSeed(engine.settings.seed, .centralized))
    let pooled = Samples.concatenating(clients.map(\.train))
    let options = engine.trainingOptions(epochs: settings.centralizedEpochs, learningRate: settings.learningRate,
                                         seed: deriveSeed(engine.settings.seed, .centralized, 1), trainingOn: pooled)
    try engine.fit(model, architecture: engine.architecture, data: pooled,
                   validation: .concatenating(clients.map(\.validation)), options: options,
                   patience: settings.earlyStoppingPatience, holdOutValidation: settings.threshold == .f1)
    return try clients.map { client in
      try engine.score(model, architecture: engine.architecture, test: client.test, validation: client.validation,
                       rule: settings.threshold)
    }
  }

  public func startingModel(progress: (String) -> Void) throws -> ParameterVector { engine.initialModel() }

  /// The full global model's mean loss over every client's validation slice, weighted by their
  /// rows (summed in client order, so independent of the thread count).
  func validationLoss(of global: ParameterVector) throws -> Double {
    // One trainer per worker thread, not per client and round.
    let sums = try engine.pool.map(count: engine.clients.count, makeState: { _ in TrainerCache() }) { [engine] trainers, index in
      let validation = try engine.clients.data(index).validation
      guard validation.count > 0 else { return (loss: 0.0, rows: 0) }
      let evaluation = try trainers.trainer(for: engine.architecture).evaluate(global, on: validation)
      return (loss: evaluation.meanLoss * Double(validation.count), rows: validation.count)
    }
    let rows = sums.map(\.rows).reduce(0, +)
    return rows == 0 ? 0 : sums.map(\.loss).reduce(0, +) / Double(rows)
  }

  /// The clients that train in `round`: all, or a seeded sample without replacement, sorted.
  public func participants(inRound round: Int) -> [Int] {
    let count = engine.clients.count
    let size = settings.clientsPerRound.sampleSize(of: count)
    guard size < count else { return Array(0..<count) }
    var random = SeededGenerator(seed: deriveSeed(engine.settings.seed, .sampling, UInt64(round)))
    // Floyd's algorithm: `size` distinct indices in O(size) time and memory.
    var chosen = Set<Int>()
    for upper in (count - size)..<count {
      let pick = Int(random.next() % UInt64(upper + 1))
      chosen.insert(chosen.contains(pick) ? upper : pick)
    }
    return chosen.sorted()
  }

  public func run(_ strategy: Strategy, startingModel: ParameterVector, resume: ResumePoint?,
                  checkpoint: ((ResumePoint) throws -> Void)?, progress: @escaping (String) -> Void) throws -> StrategyOutcome {
    var global: ParameterVector
    var rounds: [RoundRecord] = []
    var best = settings.roundPatience.map(BestRound.init(patience:))
    if let resume {
      global = try resume.restore(into: strategy)
      rounds = resume.rounds
      best = resume.bestRound
      progress("[resume] \(strategy.name): continuing after round \(resume.completedRounds)")
    } else {
      global = startingModel.copy()
      try checkpoint?(ResumePoint(completedRounds: 0, global: global, strategy: strategy, rounds: [],
                                  afterInitialization: nil, bestRound: best))
    }
    (global, rounds) = try engine.runRounds(
      from: global, strategy: strategy, records: rounds,
      count: best?.exhausted == true ? rounds.count : settings.rounds, label: "round",
      participants: participants(inRound:),
      keepGoing: { model, round in
        guard best != nil else { return true }
        return best!.record(round: round, model: model, loss: try validationLoss(of: model))
      },
      checkpoint: { model, records in
        try checkpoint?(ResumePoint(completedRounds: records.count, global: model, strategy: strategy, rounds: records,
                                    afterInitialization: nil, bestRound: best))
      }, progress: progress)
    if let best, let model = best.model {
      progress("[round early stopping] \(strategy.name): keeping round \(best.round) of \(rounds.count)"
                 + String(format: " (validation loss %.4f)", best.loss))
      global = model
    }
    let globalScores = try engine.scoreGlobal(global, rule: settings.threshold) { index in
      let parts = try personalizationData(index)
      return (parts.validation, parts.test)
    }
    var personalized: [(model: ParameterVector, score: DeviceScore)]?
    if settings.personalizationEpochs > 0 {
      let clock = ContinuousClock.now
      personalized = try engine.personalize(global, settings: settings, data: personalizationData)
      progress("[personalize] \(strategy.name): accuracy " + formatList(personalized!.map(\.score.accuracy))
                 + String(format: " (%.1f s)", clock.secondsSince))
    }
    return StrategyOutcome(name: strategy.name, global: globalScores, personalized: personalized?.map(\.score),
                           afterInitialization: nil, rounds: rounds, globalModel: global,
                           globalArchitecture: engine.architecture, personalizedModels: personalized?.map(\.model) ?? [],
                           devices: engine.deviceArchitectures)
  }
}
