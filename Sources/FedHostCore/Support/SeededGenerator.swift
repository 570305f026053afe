/// xoshiro256** seeded through SplitMix64: a small, fast, deterministic generator.
///
/// The same seed gives the same stream on every platform and Swift version (unlike
/// `SystemRandomNumberGenerator` or hashing), which makes initial weights and shuffles
/// reproducible and checkpointable.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
  private var state: (UInt64, UInt64, UInt64, UInt64)

  public init(seed: UInt64) {
    var splitMix = seed
    func nextSplitMix() -> UInt64 {
      splitMix &+= splitMixIncrement
      return splitMix64(splitMix)
    }
    state = (nextSplitMix(), nextSplitMix(), nextSplitMix(), nextSplitMix())
  }

  /// A generator for one purpose (`stream`) of a seed, independent of the seed's other streams:
  /// e.g. device 2's split does not move when device 1's row count changes.
  public init(seed: UInt64, stream: UInt64) {
    self.init(seed: Self.seed(seed, stream: stream))
  }

  /// A seed for one purpose derived from `seed`, for code that makes its own generator.
  public static func seed(_ seed: UInt64, stream: UInt64) -> UInt64 {
    splitMix64(seed ^ splitMix64(stream &+ splitMixIncrement))
  }

  public mutating func next() -> UInt64 {
    let result = rotateLeft(state.1 &* 5, by: 7) &* 9
    let shifted = state.1 << 17
    state.2 ^= state.0
    state.3 ^= state.1
    state.1 ^= state.2
    state.0 ^= state.3
    state.2 ^= shifted
    state.3 = rotateLeft(state.3, by: 45)
    return result
  }

  /// A double uniform in [0, 1) from the top 53 bits.
  public mutating func nextUnit() -> Double {
    Double(next() >> 11) * 0x1p-53
  }

  /// An index uniform in `0..<bound` (multiply-high; the bias is below 2⁻⁶⁴·bound).
  public mutating func nextIndex(below bound: Int) -> Int {
    precondition(bound > 0)
    return Int(UInt64(bound).multipliedFullWidth(by: next()).high)
  }

  /// Fisher–Yates shuffle, written out so the order never depends on the standard library's
  /// choice of algorithm.
  public mutating func shuffle<Element>(_ values: inout [Element]) {
    var remaining = values.count
    while remaining > 1 {
      let picked = nextIndex(below: remaining)
      remaining -= 1
      values.swapAt(remaining, picked)
    }
  }

  private func rotateLeft(_ value: UInt64, by amount: UInt64) -> UInt64 {
    (value << amount) | (value >> (64 - amount))
  }
}

private let splitMixIncrement: UInt64 = 0x9E37_79B9_7F4A_7C15

/// SplitMix64's output function (Steele, Lea & Flood 2014): a bijective 64-bit mixer.
func splitMix64(_ value: UInt64) -> UInt64 {
  var z = value
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  return z ^ (z >> 31)
}
