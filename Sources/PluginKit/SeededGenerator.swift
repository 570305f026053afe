import Glibc

/// The plugin's deterministic random generator: xoshiro256** seeded through SplitMix64.
///
/// Every random choice a plugin makes must come from a generator seeded by the config's
/// "seed" and saved with the plugin's state (header rule 9). The algorithms below are
/// written out here rather than borrowed from the standard library, whose shuffling and
/// range sampling may change between releases: a run must replay bit for bit.
public struct SeededGenerator: Sendable, Equatable {
  private var state: (UInt64, UInt64, UInt64, UInt64)

  /// A generator whose whole stream is determined by `seed`.
  public init(seed: UInt64) {
    var mixer = seed
    state = (Self.splitMix(&mixer), Self.splitMix(&mixer), Self.splitMix(&mixer), Self.splitMix(&mixer))
  }

  /// A generator for an independent stream identified by `seed` and `streams`, e.g.
  /// (seed, round, client) so concurrent clients draw without sharing a generator.
  public init(seed: UInt64, streams: UInt64...) {
    var mixer = seed
    for stream in streams { mixer = Self.splitMix(&mixer) ^ stream }
    self.init(seed: mixer)
  }

  public static func == (lhs: SeededGenerator, rhs: SeededGenerator) -> Bool { lhs.words == rhs.words }

  private static func splitMix(_ value: inout UInt64) -> UInt64 {
    value &+= 0x9E37_79B9_7F4A_7C15
    var mixed = value
    mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
    mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
    return mixed ^ (mixed >> 31)
  }

  /// The next 64 random bits.
  public mutating func next() -> UInt64 {
    let result = (state.1 &* 5).rotatedLeft(by: 7) &* 9
    let shifted = state.1 << 17
    state.2 ^= state.0
    state.3 ^= state.1
    state.1 ^= state.2
    state.0 ^= state.3
    state.2 ^= shifted
    state.3 = state.3.rotatedLeft(by: 45)
    return result
  }

  /// A uniform integer in 0..<bound (bound > 0), unbiased (Lemire's multiply-and-reject).
  public mutating func next(below bound: UInt64) -> UInt64 {
    guard bound > 1 else { return 0 }
    var product = next().multipliedFullWidth(by: bound)
    if product.low < bound {
      let threshold = (0 &- bound) % bound
      while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
    }
    return product.high
  }

  /// A uniform Double in (0, 1]: 53 random bits, never 0 (so its logarithm is finite).
  public mutating func nextUnitInterval() -> Double { Double((next() >> 11) + 1) * 0x1p-53 }

  /// Two independent standard normal values (Box–Muller).
  public mutating func nextGaussianPair() -> (Double, Double) {
    let radius = (-2 * log(nextUnitInterval())).squareRoot()
    let angle = 2 * Double.pi * nextUnitInterval()
    return (radius * cos(angle), radius * sin(angle))
  }

  /// Shuffles `values` in place (Fisher–Yates, last index first).
  public mutating func shuffle<Element>(_ values: inout [Element]) {
    guard values.count > 1 else { return }
    for index in stride(from: values.count - 1, to: 0, by: -1) {
      values.swapAt(index, Int(next(below: UInt64(index + 1))))
    }
  }

  /// A random permutation of 0..<count.
  public mutating func permutation(of count: Int) -> [Int] {
    var order = Array(0..<max(count, 0))
    shuffle(&order)
    return order
  }

  /// The four state words, for saving.
  public var words: [UInt64] { [state.0, state.1, state.2, state.3] }

  /// Restores a generator from `words`; nil unless there are four words, not all zero.
  public init?(words: [UInt64]) {
    guard words.count == 4, words.contains(where: { $0 != 0 }) else { return nil }
    state = (words[0], words[1], words[2], words[3])
  }
}

extension UInt64 {
  fileprivate func rotatedLeft(by count: UInt64) -> UInt64 { (self << count) | (self >> (64 - count)) }
}
