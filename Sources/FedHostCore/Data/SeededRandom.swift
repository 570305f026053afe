import Foundation

/// The data layer's own deterministic random source: SplitMix64 (Steele, Lea & Flood 2014).
/// Splits, partitions and generators must be reproducible from a seed on every platform, which
/// `SystemRandomNumberGenerator` is not; the model code keeps a separate generator on purpose
/// so that changing one never shifts the other's stream.
struct DataRandom: RandomNumberGenerator {
  private var state: UInt64

  init(seed: UInt64) { state = seed }

  /// A generator for one purpose (`stream`) derived from `seed`, so that e.g. the split of
  /// device 2 does not change when device 1's row count changes.
  init(seed: UInt64, stream: UInt64) {
    var mixer = DataRandom(seed: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15))
    state = mixer.next()
  }

  /// A seed for one purpose derived from `seed`, to hand to code that makes its own generator.
  static func seed(_ seed: UInt64, stream: UInt64) -> UInt64 {
    var random = DataRandom(seed: seed, stream: stream)
    return random.next()
  }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in [0, 1) with 53 random bits.
  mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

  /// Uniform in [low, high).
  mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * unit() }

  /// Standard normal by Box–Muller (one of the pair is discarded: simplicity over speed).
  mutating func normal(mean: Double = 0, deviation: Double = 1) -> Double {
    let u1 = 1 - unit()  // in (0, 1], keeps log finite
    let u2 = unit()
    return mean + deviation * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
  }

  /// The logarithm of a Gamma(shape, 1) draw, by Marsaglia & Tsang (2000). Shapes below 1 use the
  /// boost Gamma(a) = Gamma(a + 1) · U^(1/a), kept in log space because U^(1/a) underflows to 0
  /// for the tiny α a Dirichlet partition may ask for.
  mutating func logGamma(shape: Double) -> Double {
    precondition(shape > 0)
    if shape < 1 {
      return logGamma(shape: shape + 1) + log(1 - unit()) / shape
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
      let u = 1 - unit()
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

  /// Uniform integer in 0..<bound (multiply-shift; the bias is below 2^-50 for our sizes).
  mutating func below(_ bound: Int) -> Int {
    Int(next().multipliedFullWidth(by: UInt64(bound)).high)
  }

  /// Fisher–Yates with this generator (the standard library's shuffle algorithm is not
  /// guaranteed stable across releases).
  mutating func shuffle<T>(_ items: inout [T]) {
    guard items.count > 1 else { return }
    for i in stride(from: items.count - 1, to: 0, by: -1) {
      let j = below(i + 1)
      items.swapAt(i, j)
    }
  }
}
