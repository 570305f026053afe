/// A local optimizer. Each `MLPTrainer.train` call starts it from a fresh state (zero Adam
/// moments, step 0), as a client does at the start of a round.
public enum Optimizer: Sendable, Hashable, Codable {
  /// Keras-style Adam: `m += (g − m)(1 − β1)`, `v += (g² − v)(1 − β2)`,
  /// `w −= (m·α_t) / (√v + ε)` with `α_t = lr·√(1 − β2^t) / (1 − β1^t)`.
  case adam(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7)
  /// Plain SGD: `w −= lr·g`.
  case sgd(learningRate: Float)

  /// The paper's local optimizer: Adam, learning rate 1e-5 (used with batch size 1).
  public static let paper = Optimizer.adam(learningRate: 1e-5)

  /// The step size either optimizer scales its update by.
  public var learningRate: Float {
    switch self {
    case .adam(let rate, _, _, _), .sgd(let rate): rate
    }
  }

  func validate() throws {
    switch self {
    case .adam(_, let beta1, let beta2, let epsilon):
      guard (0..<1).contains(beta1), (0..<1).contains(beta2), epsilon > 0 else {
        throw ModelError.invalidOption("Adam needs 0 ≤ β1, β2 < 1 and ε > 0")
      }
    case .sgd: break
    }
    guard learningRate.isFinite, learningRate > 0 else {
      throw ModelError.invalidOption("learning rate must be positive and finite, got \(learningRate)")
    }
  }
}

/// How `MLPTrainer.train` runs.
public struct TrainingOptions: Sendable, Hashable, Codable {
  public var optimizer: Optimizer
  public var epochs: Int
  /// Samples per optimizer step; the gradient is averaged over the batch (the last batch of an
  /// epoch may be smaller). 1 selects the fused backward+update kernel.
  public var batchSize: Int
  /// Reshuffle the sample order at the start of every epoch.
  public var shuffle: Bool
  /// Seeds the shuffling (`SeededGenerator`).
  public var seed: UInt64
  /// The first `frozenLayerCount` layers get no update (their optimizer state is untouched).
  public var frozenLayerCount: Int
  /// Each class's weight in the training loss (indexed by label; a binary task has two), or nil
  /// for the plain mean loss. See `ClassWeighting`.
  public var classWeights: [Float]?

  public init(optimizer: Optimizer = .paper, epochs: Int = 1, batchSize: Int = 1,
              shuffle: Bool = true, seed: UInt64 = 0, frozenLayerCount: Int = 0, classWeights: [Float]? = nil) {
    self.optimizer = optimizer
    self.epochs = epochs
    self.batchSize = batchSize
    self.shuffle = shuffle
    self.seed = seed
    self.frozenLayerCount = frozenLayerCount
    self.classWeights = classWeights
  }

  func validate(for architecture: MLPArchitecture) throws {
    guard epochs >= 1 else { throw ModelError.invalidOption("epochs must be at least 1, got \(epochs)") }
    guard batchSize >= 1 else {
      throw ModelError.invalidOption("batch size must be at least 1, got \(batchSize)")
    }
    guard (0...architecture.layerCount).contains(frozenLayerCount) else {
      throw ModelError.invalidOption(
        "cannot freeze \(frozenLayerCount) layers of a \(architecture.layerCount)-layer model")
    }
    try optimizer.validate()
    if let classWeights {
      guard classWeights.count == architecture.classCount, classWeights.allSatisfy({ $0.isFinite && $0 > 0 }) else {
        throw ModelError.invalidOption("class weights must be \(architecture.classCount) positive finite numbers, got \(classWeights)")
      }
    }
  }
}

/// How a client's training loss weighs its classes.
public enum ClassWeighting: String, Sendable, CaseIterable, Codable {
  /// The plain mean loss.
  case none
  /// Class c weighs n / (k·n_c) over the client's own training rows (k classes, n_c rows of c;
  /// scikit-learn's "balanced"), capped at `cap` so that a class of a few rows cannot dominate;
  /// a class the client lacks weighs 1.
  case balanced

  public static let cap: Float = 2

  /// The weights for training on `labels` with `classCount` classes (2 for a binary task), or nil.
  public func weights(labels: [Int32], classCount: Int) -> [Float]? {
    guard self == .balanced, !labels.isEmpty else { return nil }
    var counts = [Int](repeating: 0, count: classCount)
    for label in labels where Int(label) < classCount { counts[Int(label)] += 1 }
    return counts.map { count in
      count == 0 ? 1 : min(Self.cap, Float(labels.count) / Float(classCount * count))
    }
  }
}

/// Called after every backward pass, before the optimizer step, with the weights being trained
/// and the gradient of the (batch-mean) loss, which it may edit in place. Elements of frozen
/// layers are 0 and are ignored by the step. Errors thrown here end training and propagate.
public typealias GradientHook = (
  _ weights: UnsafeBufferPointer<Float>, _ gradient: UnsafeMutableBufferPointer<Float>
) throws -> Void

/// What a training run saw.
public struct TrainingSummary: Sendable, Hashable {
  /// Mean loss of each epoch, each sample's loss taken on the forward pass before its update.
  public var epochLosses: [Double]
  /// Optimizer steps taken.
  public var steps: Int
}

/// A client's local training result: the change to its starting model.
public struct TrainingResult: Sendable {
  /// Trained parameters minus the starting parameters.
  public var delta: ParameterVector
  public var summary: TrainingSummary
}

/// Loss and accuracy of parameters on samples.
public struct Evaluation: Sendable, Hashable {
  public var meanLoss: Double
  /// Fraction of rows whose predicted class (p > 0.5, or the arg-max) equals the label.
  public var accuracy: Double
}

/// Which local optimizer a run uses (its hyperparameters besides the learning rate are fixed).
public enum OptimizerKind: String, Sendable, CaseIterable, Codable {
  case adam, sgd

  public func optimizer(learningRate: Float) -> Optimizer {
    switch self {
    case .adam: .adam(learningRate: learningRate)
    case .sgd: .sgd(learningRate: learningRate)
    }
  }
}
