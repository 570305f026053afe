import Glibc

/// TFLite's fixed-point requantization arithmetic, bit for bit.
///
/// These mirror `QuantizeMultiplier` (tensorflow/lite/kernels/internal/quantization_util.cc) and
/// `MultiplyByQuantizedMultiplier` with gemmlowp's `SaturatingRoundingDoublingHighMul` and
/// `RoundingDivideByPOT` (tensorflow/lite/kernels/internal/common.h), in both of TFLite's builds:
/// the default double rounding (TFLite Micro, LiteRT's optimized kernels) and the single rounding
/// of `TFLITE_SINGLE_ROUNDING` (measured: LiteRT 2.3's reference kernels, `BUILTIN_REF`).
public enum FixedPoint {
  /// Which `MultiplyByQuantizedMultiplier` a runtime was built with.
  public enum Rounding: String, Sendable, Hashable, CaseIterable {
    /// Round the doubling high multiply, then the power-of-two division (gemmlowp's way).
    case double
    /// One rounding of the 64-bit product: `(x·m + 2^(30−shift)) >> (31 − shift)`.
    case single
  }

  /// A positive real multiplier as TFLite stores it: `significand · 2^(shift − 31)`, with the
  /// significand in [2^30, 2^31) (or 0 for a zero multiplier).
  public struct Multiplier: Sendable, Hashable {
    public let significand: Int32
    public let shift: Int32

    public init(significand: Int32, shift: Int32) {
      self.significand = significand
      self.shift = shift
    }

    /// `QuantizeMultiplier(double, int32*, int*)`: frexp, round half away from zero to Q0.31,
    /// renormalize a significand that rounded up to 2^31, flush multipliers below 2^-32 to 0.
    public init(_ value: Double) {
      guard value != 0 else {
        self.init(significand: 0, shift: 0)
        return
      }
      let (fraction, exponent) = frexp(value)
      var fixed = Int64((fraction * Double(Int64(1) << 31)).rounded(.toNearestOrAwayFromZero))
      var shift = exponent
      if fixed == Int64(1) << 31 {
        fixed /= 2
        shift += 1
      }
      if shift < -31 {
        shift = 0
        fixed = 0
      }
      self.init(significand: Int32(fixed), shift: Int32(shift))
    }

    /// The real value this multiplier stands for.
    public var value: Double { Double(significand) * pow(2, Double(shift) - 31) }
  }

  /// gemmlowp's `SaturatingRoundingDoublingHighMul`: the high 32 bits of `2·a·b`, rounded to
  /// nearest with ties away from zero; the one overflowing case (`min × min`) saturates.
  @inline(__always)
  public static func saturatingRoundingDoublingHighMul(_ a: Int32, _ b: Int32) -> Int32 {
    if a == b && a == .min { return .max }
    let product = Int64(a) * Int64(b)
    let nudge: Int64 = product >= 0 ? 1 << 30 : 1 - (1 << 30)
    // Swift's `/` truncates toward zero, as C++'s does.
    return Int32(truncatingIfNeeded: (product + nudge) / (Int64(1) << 31))
  }

  /// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties away from zero.
  @inline(__always)
  public static func roundingDivideByPOT(_ x: Int32, _ exponent: Int32) -> Int32 {
    let mask = Int32(truncatingIfNeeded: (Int64(1) << Int64(exponent)) - 1)
    let remainder = x & mask
    let threshold = (mask >> 1) + (x < 0 ? 1 : 0)
    return (x >> exponent) + (remainder > threshold ? 1 : 0)
  }

  /// `MultiplyByQuantizedMultiplier(int32 x, int32 multiplier, int shift)`.
  @inline(__always)
  public static func multiply(_ x: Int32, by multiplier: Multiplier, rounding: Rounding = .double) -> Int32 {
    if rounding == .single {
      let totalShift = Int64(31 - multiplier.shift)
      let product = Int64(x) * Int64(multiplier.significand) + (Int64(1) << (totalShift - 1))
      return Int32(truncatingIfNeeded: product >> totalShift)
    }
    let leftShift = max(multiplier.shift, 0)
    let rightShift = max(-multiplier.shift, 0)
    return roundingDivideByPOT(
      saturatingRoundingDoublingHighMul(x &* (1 << leftShift), multiplier.significand), rightShift)
  }
}
