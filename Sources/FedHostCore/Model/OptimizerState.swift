/// An optimizer with its own state over a flat parameter vector, for procedures that compute
/// their own gradients (server-side optimizers, local procedures built on the gradient oracle).
/// `MLPTrainer` runs the same per-element rules inside its fused kernels.
public final class OptimizerState {
  public let optimizer: Optimizer
  public let parameterCount: Int
  /// Steps taken since creation or `reset()`.
  public private(set) var step = 0
  private let firstMoment: ParameterVector
  private let secondMoment: ParameterVector

  public init(optimizer: Optimizer, parameterCount: Int) throws {
    try optimizer.validate()
    self.optimizer = optimizer
    self.parameterCount = parameterCount
    let momentCount = if case .adam = optimizer { parameterCount } else { 0 }
    firstMoment = ParameterVector(count: momentCount)
    secondMoment = ParameterVector(count: momentCount)
  }

  /// Zero moments, step 0.
  public func reset() {
    step = 0
    firstMoment.zero()
    secondMoment.zero()
  }

  /// One optimizer step on `parameters` with `gradient` (both `parameterCount` long).
  public func apply(gradient: UnsafeBufferPointer<Float>,
                    to parameters: UnsafeMutableBufferPointer<Float>) throws {
    for count in [gradient.count, parameters.count] where count != parameterCount {
      throw ModelError.parameterCountMismatch(expected: parameterCount, actual: count)
    }
    step += 1
    FloatEnvironment.withSubnormalsFlushed {
      switch optimizer {
      case .adam(let learningRate, let beta1, let beta2, let epsilon):
        let rule = AdamStep(beta1: beta1, beta2: beta2, epsilon: epsilon, learningRate: learningRate,
                            step: step, m: firstMoment.pointer, v: secondMoment.pointer)
        applyElementwise(rule, parameters: parameters.baseAddress!, range: 0..<parameterCount,
                         gradient: gradient.baseAddress!)
      case .sgd(let learningRate):
        applyElementwise(SGDStep(learningRate: learningRate), parameters: parameters.baseAddress!,
                         range: 0..<parameterCount, gradient: gradient.baseAddress!)
      }
    }
  }
}
