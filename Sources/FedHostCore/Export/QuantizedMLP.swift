/// An int8 affine quantization: `real = scale · (quantized − zeroPoint)`.
public struct AffineQuantization: Sendable, Hashable, CustomStringConvertible {
  public let scale: Float
  public let zeroPoint: Int32

  public init(scale: Float, zeroPoint: Int32) {
    self.scale = scale
    self.zeroPoint = zeroPoint
  }

  /// The output quantization TFLite requires of int8 LOGISTIC and SOFTMAX: [0, 1) in steps of 1/256.
  public static let probability = AffineQuantization(scale: 1.0 / 256, zeroPoint: -128)

  /// Asymmetric int8 parameters covering `[minimum, maximum]` widened to include 0 (so that 0, ReLU's
  /// floor and zero padding, is exact), as TFLite's calibrator derives them from observed ranges.
  public static func covering(minimum: Float, maximum: Float) -> AffineQuantization {
    let low = Double(min(minimum, 0))
    var high = Double(max(maximum, 0))
    // A range that is a single point (a dead layer) still needs a positive scale.
    if high - low < 1e-9 { high = low + 1 }
    let scale = (high - low) / 255
    let zeroPoint = (-128 - low / scale).rounded(.toNearestOrAwayFromZero)
    return AffineQuantization(scale: Float(scale), zeroPoint: Int32(min(max(zeroPoint, -128), 127)))
  }

  /// `clamp(round(value / scale) + zeroPoint)`: how an application quantizes a float input.
  @inline(__always)
  public func quantize(_ value: Float) -> Int8 {
    let rounded = (value / scale).rounded(.toNearestOrAwayFromZero)
    guard rounded.isFinite else { return rounded > 0 ? .max : .min }
    return Int8(min(max(Int64(max(min(rounded, 1e9), -1e9)) + Int64(zeroPoint), -128), 127))
  }

  @inline(__always)
  public func dequantize(_ value: Int8) -> Float { scale * Float(Int32(value) - zeroPoint) }

  public var description: String { "scale \(scale), zero point \(zeroPoint)" }
}

/// How weight scales are shared: one per output unit (TFLite's default, most accurate) or one per
/// layer (smallest file: TFLite stores a float scale and an int64 zero point per channel, 12 bytes
/// per output unit, which for the paper model is 6.2 kB of its flatbuffer).
public enum WeightGranularity: String, Sendable, Hashable, CaseIterable {
  case perChannel = "per-channel"
  case perTensor = "per-tensor"
}

/// A fully connected network quantized for TFLite's int8 kernels: int8 symmetric weights, int32
/// biases, int8 activations with calibrated scales, and an int8 LOGISTIC or SOFTMAX head whose
/// output is a probability in steps of 1/256.
public struct QuantizedMLP: Sendable, Equatable {
  /// One FULLY_CONNECTED op with everything its int8 kernel needs.
  public struct Layer: Sendable, Equatable {
    public let inputWidth: Int
    public let outputWidth: Int
    /// TFLite's layout, `[output][input]` row-major: `weights[o * inputWidth + i]`.
    public let weights: [Int8]
    /// Quantized with scale `input.scale × weightScales[o]`, zero point 0.
    public let biases: [Int32]
    /// One scale per output unit, or a single scale (per-tensor). Zero points are all 0.
    public let weightScales: [Float]
    public let input: AffineQuantization
    public let output: AffineQuantization
    /// ReLU fused into the output range (hidden layers) or none (the logits).
    public let fusedRelu: Bool

    public init(inputWidth: Int, outputWidth: Int, weights: [Int8], biases: [Int32], weightScales: [Float],
                input: AffineQuantization, output: AffineQuantization, fusedRelu: Bool) {
      precondition(weights.count == inputWidth * outputWidth && biases.count == outputWidth)
      precondition(weightScales.count == 1 || weightScales.count == outputWidth)
      self.inputWidth = inputWidth
      self.outputWidth = outputWidth
      self.weights = weights
      self.biases = biases
      self.weightScales = weightScales
      self.input = input
      self.output = output
      self.fusedRelu = fusedRelu
    }

    /// The weight scale of output unit `unit`.
    public func weightScale(of unit: Int) -> Float { weightScales.count == 1 ? weightScales[0] : weightScales[unit] }

    /// The requantization multiplier of each output unit, computed in double from the float32 scales
    /// exactly as TFLite's FULLY_CONNECTED `Prepare` does: `input × weight / output`.
    public var multipliers: [FixedPoint.Multiplier] {
      (0..<outputWidth).map { unit in
        FixedPoint.Multiplier(Double(input.scale) * Double(weightScale(of: unit)) / Double(output.scale))
      }
    }

    /// `CalculateActivationRangeQuantized`: ReLU clamps below at the zero point.
    public var activationRange: ClosedRange<Int32> {
      fusedRelu ? max(-128, output.zeroPoint)...127 : -128...127
    }
  }

  public enum Head: Sendable, Hashable {
    case logistic
    case softmax
  }

  public let architecture: MLPArchitecture
  public let layers: [Layer]
  public let granularity: WeightGranularity

  public init(architecture: MLPArchitecture, layers: [Layer], granularity: WeightGranularity) {
    precondition(layers.count == architecture.layerCount)
    self.architecture = architecture
    self.layers = layers
    self.granularity = granularity
  }

  /// Sigmoid for one output unit, softmax for several (as `MLPArchitecture.head`).
  public var head: Head { architecture.outputWidth == 1 ? .logistic : .softmax }
  public var input: AffineQuantization { layers[0].input }
  public var output: AffineQuantization { .probability }
  public var logits: AffineQuantization { layers[layers.count - 1].output }

  /// A model of the right shape with zero weights, for sizing files and arenas before training:
  /// every byte count depends on the architecture and granularity only.
  public static func shapeOnly(_ architecture: MLPArchitecture, granularity: WeightGranularity) -> QuantizedMLP {
    let unit = AffineQuantization(scale: 1, zeroPoint: 0)
    let layers = architecture.layers.enumerated().map { index, layer in
      Layer(inputWidth: layer.inputWidth, outputWidth: layer.outputWidth,
            weights: [Int8](repeating: 0, count: layer.weightCount),
            biases: [Int32](repeating: 0, count: layer.outputWidth),
            weightScales: [Float](repeating: 1, count: granularity == .perChannel ? layer.outputWidth : 1),
            input: unit, output: unit, fusedRelu: index < architecture.layerCount - 1)
    }
    return QuantizedMLP(architecture: architecture, layers: layers, granularity: granularity)
  }
}
