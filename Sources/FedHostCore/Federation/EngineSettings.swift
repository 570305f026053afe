/// What the engine needs to train clients: the model's hidden widths and the local optimizer.
/// Protocols (Pipelines/) decide everything else — which clients, which data, how many rounds.
public struct EngineSettings: Sendable, Equatable {
  /// Hidden layer widths; the input and output widths come from the data.
  public var hiddenWidths: [Int]
  public var optimizer: OptimizerKind
  public var learningRate: Float
  public var batchSize: Int
  /// Local epochs of a client in one round, unless `localSteps` is set.
  public var localEpochs: Int
  /// When set, every client does about this many optimizer steps per round instead of
  /// `localEpochs` epochs (whole epochs: ⌈steps·batch / samples⌉).
  public var localSteps: Int?
  /// The run's seed: every random choice is derived from it (`deriveSeed`).
  public var seed: UInt64
  /// How a client's training loss weighs its classes (also in fine-tuning and the baselines).
  public var classWeighting: ClassWeighting
  /// Worker threads for client training and for plugins' `parallel_for`; results do not depend on it.
  public var threads: Int

  public init(hiddenWidths: [Int], optimizer: OptimizerKind, learningRate: Float, batchSize: Int,
              localEpochs: Int, localSteps: Int? = nil, classWeighting: ClassWeighting = .none, seed: UInt64,
              threads: Int) {
    self.hiddenWidths = hiddenWidths
    self.optimizer = optimizer
    self.learningRate = learningRate
    self.batchSize = batchSize
    self.localEpochs = localEpochs
    self.localSteps = localSteps
    self.classWeighting = classWeighting
    self.seed = seed
    self.threads = threads
  }

  /// Local epochs of a client with `sampleCount` training samples in one round.
  public func epochsPerRound(sampleCount: Int) -> Int {
    guard let localSteps, sampleCount > 0 else { return localEpochs }
    return max(1, (localSteps * batchSize + sampleCount - 1) / sampleCount)
  }
}

/// How a model's score turns probabilities into a binary decision.
public enum ThresholdRule: String, Sendable, CaseIterable, Codable {
  /// The F1-optimal threshold chosen on the device's validation slice (the paper's Phase 3).
  case f1
  /// 0.5 (or the arg-max for multi-class tasks).
  case fixed
}

/// A federation-level mistake (incompatible devices, a strategy's bad output), one line.
public enum FederationError: Error, CustomStringConvertible {
  case incompatibleData(String)
  case strategy(String)

  public var description: String {
    switch self {
    case .incompatibleData(let message): "incompatible data: \(message)"
    case .strategy(let message): message
    }
  }
}
