import Foundation

/// Distributions the data layer draws from (synthetic data, Dirichlet partitions), on the
/// project's one deterministic generator.
extension SeededGenerator {
  /// Uniform in [low, high).
  mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * nextUnit() }

  /// Standard normal by Box–Muller (one of the pair is discarded: simplicity over speed).
  mutating func normal(mean: Double = 0, deviation: Double = 1) -> Double {
    let u1 = 1 - nextUnit()  // in (0, 1], keeps log finite
    let u2 = nextUnit()
    return mean + deviation * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
  }

  /// The logarithm of a Gamma(shape, 1) draw, by Marsaglia & Tsang (2000). Shapes below 1 use the
  /// boost Gamma(a) = Gamma(a + 1) · U^(1/a), kept in log space because U^(1/a) underflows to 0
  /// for the tiny α a Dirichlet partition may ask for.
  mutating func logGamma(shape: Double) -> Double {
    precondition(shape > 0)
    if shape < 1 {
      return logGamma(shape: shape + 1) + log(1 - nextUnit()) / shape
    }
    let d = shape - 1.0 / 3.0
    let c = 1 / (9 * d).squareRoot()
    while true {
      var x: Double
      var v: Double
      repeat {
        x = normal()
        v = 1 + c * x
      } while v <= 0
      v = v * v * v
      let u = 1 - nextUnit()
      if log(u) < 0.5 * x * x + d - d * v + d * log(v) { return log(d * v) }
    }
  }

  /// A draw from the symmetric Dirichlet(α, …, α) over `count` categories (normalized gamma draws).
  mutating func dirichlet(alpha: Double, count: Int) -> [Double] {
    let logs = (0..<count).map { _ in logGamma(shape: alpha) }
    let largest = logs.max() ?? 0
    let weights = logs.map { exp($0 - largest) }
    let total = weights.reduce(0, +)
    return weights.map { $0 / total }
  }
}
