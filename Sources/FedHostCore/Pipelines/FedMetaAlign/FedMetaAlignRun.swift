import Foundation

/// The Fed-Meta-Align protocol (seed 002, Algorithms 1–4) on one seed's splits: each device's
/// train part cut into Phases 1/2/3; Phase 0 pretraining on the public set (once per seed, so
/// every strategy starts from the same model), Phase 1 by the strategy's initializer, Phase 2
/// rounds of every device with its aggregator and client hook, Phase 3 personalization. Local
/// Only trains on all three phases' rows.
public final class FedMetaAlignRun: ProtocolRun, @unchecked Sendable {
  public let prepared: PreparedFederation
  public let engine: FederationEngine
  let settings: RunSettings

  public init(_ data: FederationData, settings: RunSettings, seed: UInt64) throws {
    let prepared = data.prepare(seed: seed, phaseFractions: settings.phaseFractions)
    try Self.requireCompatible(prepared)
    let clients = ClientSource(prepared.devices.map { device in
      (ClientProfile(name: device.name, modelRate: device.modelRate, memory: device.memory,
                     featureNames: device.featureNames),
       ClientData(train: device.phase2.support, query: device.phase2.query, validation: device.phase3Validation,
                  test: device.test))
    })
    self.prepared = prepared
    self.settings = settings
    engine = try FederationEngine(clients: clients, inputWidth: prepared.inputWidth,
                                  classCount: prepared.classNames.count, settings: settings.engine(seed: seed))
  }

  private static func requireCompatible(_ prepared: PreparedFederation) throws {
    let first = prepared.devices[0]
    for device in prepared.devices {
      guard device.train.width == first.train.width else {
        throw FederationError.incompatibleData(
          "device \(device.name) has \(device.train.width) inputs, \(first.name) has \(first.train.width): pad them to one width")
      }
      guard device.classNames.count == first.classNames.count else {
        throw FederationError.incompatibleData("device \(device.name) has \(device.classNames.count) classes, \(first.name) has \(first.classNames.count)")
      }
    }
    if let pretraining = prepared.pretraining, pretraining.train.width != first.train.width {
      throw FederationError.incompatibleData(
        "pretraining set \(pretraining.name) has \(pretraining.train.width) inputs, devices have \(first.train.width)")
    }
  }

  public var baselines: [Baseline] { [.localOnly] }

  public func scores(of baseline: Baseline) throws -> [DeviceScore] {
    let devices = prepared.devices
    return try engine.localOnly(settings: settings, learningRate: settings.personalizationLearningRate) { index in
      let device = devices[index]
      return (Samples.concatenating([device.phase1.combined, device.phase2.combined, device.phase3Train]),
              device.phase3Validation, device.test)
    }
  }

  /// Phase 2 trains every device every round.
  public func participants(inRound round: Int) -> [Int] { Array(0..<engine.clients.count) }

  public func personalizationData(_ index: Int) throws -> (train: Samples, validation: Samples, test: Samples) {
    let device = prepared.devices[index]
    return (device.phase3Train, device.phase3Validation, device.test)
  }

  /// Phase 0: the seeded initial model, pretrained on the public set when the settings ask.
  public func startingModel(progress: (String) -> Void) throws -> ParameterVector {
    let model = engine.initialModel()
    guard let pretraining = prepared.pretraining, settings.pretrainEpochs > 0 else { return model }
    let clock = ContinuousClock.now
    let options = engine.trainingOptions(epochs: settings.pretrainEpochs, learningRate: settings.learningRate,
                                         seed: deriveSeed(engine.settings.seed, .pretraining), trainingOn: pretraining.train)
    let loss = try MLPTrainer(architecture: engine.architecture).train(model, on: pretraining.train, options: options)
      .epochLosses.last
    progress("[phase 0] pretrained on \(pretraining.name) for \(settings.pretrainEpochs) epoch(s): "
               + String(format: "loss %.4f (%.1f s)", loss ?? .nan, clock.secondsSince))
    return model
  }

  public func run(_ strategy: Strategy, startingModel: ParameterVector, resume: ResumePoint?,
                  checkpoint: ((ResumePoint) throws -> Void)?, progress: @escaping (String) -> Void) throws -> StrategyOutcome {
    var global: ParameterVector
    var afterInitialization: [Double]?
    var rounds: [RoundRecord] = []
    let everyone = Array(0..<engine.clients.count)
    if let resume {
      global = try resume.restore(into: strategy)
      afterInitialization = resume.afterInitialization
      rounds = resume.rounds
      progress("[resume] \(strategy.name): continuing after round \(resume.completedRounds)")
    } else {
      global = startingModel.copy()
      if let initializer = strategy.initializer {
        let clock = ContinuousClock.now
        try SerialInitialization.run(global, with: initializer, run: self, progress: progress)
        afterInitialization = try engine.evaluateOnTests(global, clients: everyone).map(\.accuracy)
        progress("[phase 1] \(strategy.name): serial meta-initialization done (\(String(format: "%.1f", clock.secondsSince)) s), "
                   + "test accuracy " + formatList(afterInitialization!))
      }
      try checkpoint?(ResumePoint(completedRounds: 0, global: global, strategy: strategy, rounds: rounds,
                                  afterInitialization: afterInitialization))
    }
    (global, rounds) = try engine.runRounds(
      from: global, strategy: strategy, records: rounds, count: settings.rounds, label: "phase 2",
      participants: participants(inRound:),
      checkpoint: { [afterInitialization] model, records in
        try checkpoint?(ResumePoint(completedRounds: records.count, global: model, strategy: strategy, rounds: records,
                                    afterInitialization: afterInitialization))
      }, progress: progress)
    let globalScores = try engine.scoreGlobal(global, rule: settings.threshold) { index in
      let parts = try personalizationData(index)
      return (parts.validation, parts.test)
    }
    let clock = ContinuousClock.now
    let personalized = try engine.personalize(global, settings: settings, data: personalizationData)
    progress("[phase 3] \(strategy.name) personalized: accuracy " + formatList(personalized.map(\.score.accuracy))
               + String(format: " (%.1f s)", clock.secondsSince))
    return StrategyOutcome(name: strategy.name, global: globalScores, personalized: personalized.map(\.score),
                           afterInitialization: afterInitialization, rounds: rounds, globalModel: global,
                           globalArchitecture: engine.architecture, personalizedModels: personalized.map(\.model),
                           devices: engine.deviceArchitectures)
  }
}
