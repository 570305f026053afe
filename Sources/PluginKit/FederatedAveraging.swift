/// FedAvg's server step, shared by the FedAvg and FedProx plugins (FedProx's server is
/// FedAvg): global + Σ_k p_k Δ_k with p_k = n_k / Σ_j n_j, renormalized per element over
/// the covering clients when updates carry coverage masks (HeteroFL §3.3, sample-weighted).
public enum FederatedAveraging {
  /// p_k = n_k / Σ_j n_j, summed in Double in update order.
  public static func sampleWeights(_ updates: [ClientUpdateView]) -> [Double] {
    let total = updates.reduce(0.0) { $0 + Double($1.sampleCount) }
    return updates.map { Double($0.sampleCount) / total }
  }

  /// 1/K for each of the K updates: the unweighted mean (SCAFFOLD, Power-of-Choice).
  public static func uniformWeights(_ updates: [ClientUpdateView]) -> [Double] {
    [Double](repeating: 1 / Double(updates.count), count: updates.count)
  }

  /// Writes global + step · (the unweighted mean of the deltas) and the shares 1/K.
  public static func aggregateUniformly(_ round: AggregationRound, step: Double = 1) throws {
    let weights = uniformWeights(round.updates)
    try round.writeGlobalPlusMean(weights: weights, step: step)
    round.reportWeights(weights)
  }

  /// Writes the FedAvg model into `round.output` and the weights p_k.
  public static func aggregate(_ round: AggregationRound) throws {
    let weights = sampleWeights(round.updates)
    try round.writeGlobalPlusMean(weights: weights, step: 1)
    round.reportWeights(weights)
  }
}

extension AggregationRound {
  /// output = global + step · (weighted mean of the deltas, per element over covering
  /// clients); elements nobody covers keep global's value. `FHP_E_NUMERIC` naming the
  /// client if the result is not finite.
  /// `normalizingWeights`: see `WeightedDeltaSum.init`.
  public func writeGlobalPlusMean(weights: [Double], normalizingWeights: [Double]? = nil, step: Double) throws {
    guard try WeightedDeltaSum.compute(self, weights: weights, normalizingWeights: normalizingWeights, base: global,
                                       scale: step, into: output) else {
      throw nonFiniteFailure()
    }
  }
}
