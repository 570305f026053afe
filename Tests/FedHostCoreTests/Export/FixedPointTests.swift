import FedHostCore
import Testing

/// TFLite's requantization arithmetic against values worked out by hand.
@Suite("Export: fixed-point requantization")
struct FixedPointTests {
  @Test(arguments: [
    (0.5, Int32(1 << 30), Int32(0)),  // frexp(0.5) = 0.5 · 2^0
    (1.0, Int32(1 << 30), Int32(1)),  // 0.5 · 2^1
    (0.75, Int32(1_610_612_736), Int32(0)),  // 0.75 · 2^31
    (0.1, Int32(1_717_986_918), Int32(-3)),  // 0.8 · 2^31 = 1717986918.4, rounded down
    (0.999_999_999_9, Int32(1 << 30), Int32(1)),  // the significand rounds to 2^31 and renormalizes
    (1e-12, Int32(0), Int32(0)),  // below 2^-32: flushed to zero
    (0.0, Int32(0), Int32(0)),
  ])
  func quantizeMultiplier(value: Double, significand: Int32, shift: Int32) {
    #expect(FixedPoint.Multiplier(value) == FixedPoint.Multiplier(significand: significand, shift: shift))
  }

  @Test func doublingHighMultiplyRoundsAndSaturates() {
    #expect(FixedPoint.saturatingRoundingDoublingHighMul(1 << 30, 1 << 30) == 1 << 29)
    // 3 · 2^30 / 2^31 = 1.5 → 2; −1.5 → −1 (the nudge for negative products is 1 − 2^30).
    #expect(FixedPoint.saturatingRoundingDoublingHighMul(3, 1 << 30) == 2)
    #expect(FixedPoint.saturatingRoundingDoublingHighMul(-3, 1 << 30) == -1)
    #expect(FixedPoint.saturatingRoundingDoublingHighMul(.min, .min) == .max)
  }

  @Test(arguments: [
    (Int32(5), Int32(1), Int32(3)), (Int32(-5), Int32(1), Int32(-3)),  // ±2.5 → ±3: ties away from zero
    (Int32(7), Int32(2), Int32(2)), (Int32(-7), Int32(2), Int32(-2)),  // ±1.75 → ±2
    (Int32(6), Int32(2), Int32(2)), (Int32(-6), Int32(2), Int32(-2)),  // ±1.5 → ±2
    (Int32(-1), Int32(1), Int32(-1)), (Int32(-1), Int32(2), Int32(0)),  // −0.5 → −1, −0.25 → 0
    (Int32.max, Int32(31), Int32(1)), (Int32.min, Int32(31), Int32(-1)),
  ])
  func roundingDivideByPowerOfTwo(x: Int32, exponent: Int32, expected: Int32) {
    #expect(FixedPoint.roundingDivideByPOT(x, exponent) == expected)
  }

  @Test func doubleAndSingleRoundingDifferWhereTFLiteSaysTheyDo() {
    let quarter = FixedPoint.Multiplier(0.25)
    #expect(quarter == FixedPoint.Multiplier(significand: 1 << 30, shift: -1))
    // 5 × 0.25 = 1.25: double rounding goes 1.25 → 1.5 (high multiply) → 2; single rounding → 1.
    #expect(FixedPoint.multiply(5, by: quarter, rounding: .double) == 2)
    #expect(FixedPoint.multiply(5, by: quarter, rounding: .single) == 1)
    // −5 × 0.25 = −1.25 → −1 either way; 100 × 0.5 = 50 exactly.
    #expect(FixedPoint.multiply(-5, by: quarter, rounding: .double) == -1)
    #expect(FixedPoint.multiply(-5, by: quarter, rounding: .single) == -1)
    #expect(FixedPoint.multiply(100, by: FixedPoint.Multiplier(0.5)) == 50)
    // A multiplier above 1 shifts left first: 3 × 1.5 = 4.5 → 5.
    #expect(FixedPoint.multiply(3, by: FixedPoint.Multiplier(1.5)) == 5)
  }

  @Test func affineParametersCoverTheRangeAndZero() {
    let relu = AffineQuantization.covering(minimum: 0, maximum: 2.55)
    #expect(relu.zeroPoint == -128 && abs(relu.scale - 0.01) < 1e-9)
    let symmetric = AffineQuantization.covering(minimum: -1, maximum: 1)
    #expect(symmetric.zeroPoint == -1)  // −128 + 127.5 = −0.5, rounded away from zero
    let positive = AffineQuantization.covering(minimum: 2, maximum: 3)
    #expect(positive.zeroPoint == -128 && abs(positive.scale - 3 / 255) < 1e-9)
    #expect(AffineQuantization.covering(minimum: 0, maximum: 0).scale > 0)

    let input = AffineQuantization(scale: 0.5, zeroPoint: 3)
    #expect(input.quantize(1.25) == 6)  // 2.5 → 3, + 3
    #expect(input.quantize(-1.25) == 0)  // −2.5 → −3, + 3
    #expect(input.quantize(1e9) == 127 && input.quantize(-1e9) == -128 && input.quantize(.infinity) == 127)
    #expect(input.dequantize(6) == 1.5)
  }
}
