import Foundation

/// What one strategy achieved on one federation and seed.
public struct StrategyOutcome: @unchecked Sendable {
  public var name: String
  /// The final global model scored directly on each device's test split.
  public var global: [DeviceScore]
  /// After Phase 3 (personalization) on each device.
  public var personalized: [DeviceScore]
  /// Test accuracy of the global model per device after Phase 1 (nil without an initializer).
  public var afterInitialization: [Double]?
  public var rounds: [RoundRecord]
  public var globalModel: ParameterVector
  public var globalArchitecture: MLPArchitecture
  public var personalizedModels: [ParameterVector]
  /// Per device: its name and the architecture of its (sub-)model.
  public var devices: [(name: String, architecture: MLPArchitecture)]
}

/// One Phase 2 round: the global model's test metrics per device and the aggregation weights.
public struct RoundRecord: Sendable, Codable {
  public var round: Int
  public var testAccuracy: [Double]
  public var testLoss: [Double]
  public var weights: [Double]
  public var seconds: Double
}

/// The Fed-Meta-Align protocol (seed 002, Algorithms 1–4) for any strategy: Phase 1 by the
/// strategy's initializer (if any), Phase 2 parallel rounds with its aggregator and client
/// hook, Phase 3 personalization. Phase 0 (pretraining) is done once by the caller and passed
/// in, so that every strategy of a comparison starts from the same model.
public enum FedMetaAlignPipeline {
  /// Phase 0: the seeded initial model, pretrained on the public set when the settings ask.
  public static func startingModel(_ federation: Federation, progress: (String) -> Void) throws -> ParameterVector {
    let model = federation.initialModel()
    let clock = ContinuousClock.now
    if let loss = try federation.pretrain(model) {
      progress("[phase 0] pretrained on \(federation.pretraining!.name) for \(federation.settings.pretrainEpochs) epoch(s): "
                 + String(format: "loss %.4f (%.1f s)", loss, clock.secondsSince))
    }
    return model
  }

  /// Runs Phases 1–3. With `resume`, continues from that point instead (Phase 1 and the
  /// completed rounds are not repeated); `checkpoint` receives the state after Phase 1 and
  /// after every round.
  public static func run(_ federation: Federation, strategy: Strategy, startingModel: ParameterVector,
                         resume: ResumePoint? = nil, checkpoint: ((ResumePoint) throws -> Void)? = nil,
                         progress: @escaping (String) -> Void) throws -> StrategyOutcome {
    let settings = federation.settings
    var global: ParameterVector
    var afterInitialization: [Double]?
    var rounds: [RoundRecord] = []
    if let resume {
      global = try resume.restore(into: strategy)
      afterInitialization = resume.afterInitialization
      rounds = resume.rounds
      progress("[resume] \(strategy.name): continuing after round \(resume.completedRounds)")
    } else {
      global = startingModel.copy()
      if let initializer = strategy.initializer {
        let clock = ContinuousClock.now
        try federation.initialize(global, with: initializer, progress: progress)
        afterInitialization = try federation.evaluateOnTests(global).map(\.accuracy)
        progress("[phase 1] \(strategy.name): serial meta-initialization done (\(String(format: "%.1f", clock.secondsSince)) s), "
                   + "test accuracy " + formatList(afterInitialization!))
      }
      try checkpoint?(ResumePoint(completedRounds: 0, global: global, strategy: strategy, rounds: rounds,
                                  afterInitialization: afterInitialization))
    }
    for round in rounds.count..<settings.parallelRounds {
      let clock = ContinuousClock.now
      let (next, weights) = try federation.runRound(round, global: global, strategy: strategy)
      global = next
      let evaluations = try federation.evaluateOnTests(global)
      let record = RoundRecord(round: round + 1, testAccuracy: evaluations.map(\.accuracy),
                               testLoss: evaluations.map(\.meanLoss), weights: weights, seconds: clock.secondsSince)
      rounds.append(record)
      progress("[phase 2] \(strategy.name) round \(round + 1)/\(settings.parallelRounds): test loss "
                 + formatList(record.testLoss) + ", accuracy " + formatList(record.testAccuracy)
                 + ", weights " + formatList(weights) + String(format: " (%.2f s)", record.seconds))
      try checkpoint?(ResumePoint(completedRounds: round + 1, global: global, strategy: strategy, rounds: rounds,
                                  afterInitialization: afterInitialization))
    }
    let globalScores = try federation.scoreGlobal(global)
    let clock = ContinuousClock.now
    let personalized = try federation.personalize(global)
    progress("[phase 3] \(strategy.name) personalized: accuracy " + formatList(personalized.map(\.score.accuracy))
               + String(format: " (%.1f s)", clock.secondsSince))
    return StrategyOutcome(name: strategy.name, global: globalScores, personalized: personalized.map(\.score),
                           afterInitialization: afterInitialization, rounds: rounds, globalModel: global,
                           globalArchitecture: federation.architecture, personalizedModels: personalized.map(\.model),
                           devices: federation.devices.indices.map {
                             (federation.devices[$0].name, federation.architecture(ofDevice: $0))
                           })
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
