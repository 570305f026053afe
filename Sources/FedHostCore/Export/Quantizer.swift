/// Why a model cannot be quantized or exported; each case describes itself in one line.
public enum ExportError: Error, Equatable, CustomStringConvertible {
  case nonFiniteParameter(layer: Int, index: Int, value: Float)
  case emptyCalibrationSet
  case nonFiniteCalibration(row: Int)
  case biasOverflow(layer: Int, unit: Int)

  public var description: String {
    switch self {
    case .nonFiniteParameter(let layer, let index, let value):
      "cannot quantize: parameter \(index) (layer \(layer + 1)) is \(value)"
    case .emptyCalibrationSet:
      "cannot quantize: the calibration set is empty (the device needs Phase 3 training rows)"
    case .nonFiniteCalibration(let row):
      "cannot quantize: calibration row \(row) gives a non-finite activation"
    case .biasOverflow(let layer, let unit):
      "cannot quantize: bias of unit \(unit) in layer \(layer + 1) does not fit int32 at its scale"
    }
  }
}

/// Post-training full-integer quantization, as TFLite's converter does it with a representative set.
///
/// - Weights: symmetric int8 in [−127, 127], zero point 0, scale `max|w| / 127` per output unit
///   (or per layer).
/// - Biases: int32 at scale `input scale × weight scale` of their unit.
/// - Activations (the input, every hidden layer and the logits): asymmetric int8 from the min/max
///   seen on the calibration set, widened to include 0; ReLU is fused, so hidden ranges start at 0.
/// - Head: TFLite's int8 LOGISTIC / SOFTMAX with output scale 1/256 and zero point −128, which is what
///   the converter emits for a sigmoid (see `shared/bench/reference/mlp_int8.tflite`).
public enum Quantizer {
  public static func quantize(_ parameters: ParameterVector, architecture: MLPArchitecture, calibration: Samples,
                              granularity: WeightGranularity = .perChannel) throws -> QuantizedMLP {
    try architecture.validate(parameters)
    for (layerIndex, layer) in architecture.layers.enumerated() {
      for index in layer.weightOffset..<layer.end where !parameters[index].isFinite {
        throw ExportError.nonFiniteParameter(layer: layerIndex, index: index, value: parameters[index])
      }
    }
    guard calibration.count > 0 else { throw ExportError.emptyCalibrationSet }
    guard calibration.width == architecture.inputWidth else {
      throw ModelError.sampleWidthMismatch(expected: architecture.inputWidth, actual: calibration.width)
    }
    let ranges = try activationRanges(parameters, architecture: architecture, calibration: calibration)
    let quantizations = ranges.map { AffineQuantization.covering(minimum: $0.lowerBound, maximum: $0.upperBound) }

    var layers = [QuantizedMLP.Layer]()
    for (index, layer) in architecture.layers.enumerated() {
      let input = quantizations[index]
      let weightScales = scales(of: layer, in: parameters, granularity: granularity)
      var weights = [Int8](repeating: 0, count: layer.weightCount)
      var biases = [Int32](repeating: 0, count: layer.outputWidth)
      for unit in 0..<layer.outputWidth {
        let scale = weightScales.count == 1 ? weightScales[0] : weightScales[unit]
        for row in 0..<layer.inputWidth {
          let value = (parameters[layer.weightOffset + row * layer.outputWidth + unit] / scale)
            .rounded(.toNearestOrAwayFromZero)
          weights[unit * layer.inputWidth + row] = Int8(min(max(value, -127), 127))
        }
        let bias = (Double(parameters[layer.biasOffset + unit]) / (Double(input.scale) * Double(scale)))
          .rounded(.toNearestOrAwayFromZero)
        guard abs(bias) <= Double(Int32.max) else { throw ExportError.biasOverflow(layer: index, unit: unit) }
        biases[unit] = Int32(bias)
      }
      layers.append(QuantizedMLP.Layer(
        inputWidth: layer.inputWidth, outputWidth: layer.outputWidth, weights: weights, biases: biases,
        weightScales: weightScales, input: input, output: quantizations[index + 1],
        fusedRelu: index < architecture.layerCount - 1))
    }
    return QuantizedMLP(architecture: architecture, layers: layers, granularity: granularity)
  }

  /// `max|w| / 127` per output unit or for the whole layer; an all-zero unit gets scale 1/127.
  private static func scales(of layer: MLPArchitecture.Layer, in parameters: ParameterVector,
                             granularity: WeightGranularity) -> [Float] {
    var largest = [Float](repeating: 0, count: layer.outputWidth)
    for row in 0..<layer.inputWidth {
      for unit in 0..<layer.outputWidth {
        largest[unit] = max(largest[unit], abs(parameters[layer.weightOffset + row * layer.outputWidth + unit]))
      }
    }
    if granularity == .perTensor { largest = [largest.max()!] }
    return largest.map { $0 > 0 ? $0 / 127 : 1 / 127 }
  }

  /// The observed range of the input and of every layer's output (post-ReLU for hidden layers,
  /// the logits for the last) over the calibration rows, from a float forward pass.
  private static func activationRanges(_ parameters: ParameterVector, architecture: MLPArchitecture,
                                       calibration: Samples) throws -> [ClosedRange<Float>] {
    var minima = [Float](repeating: .infinity, count: architecture.widths.count)
    var maxima = [Float](repeating: -.infinity, count: architecture.widths.count)
    var activation = [Float](repeating: 0, count: architecture.maxWidth)
    var next = [Float](repeating: 0, count: architecture.maxWidth)
    for row in 0..<calibration.count {
      for (index, value) in calibration.row(row).enumerated() { activation[index] = value }
      var finite = record(activation, count: architecture.inputWidth, into: 0, &minima, &maxima)
      for (index, layer) in architecture.layers.enumerated() {
        for unit in 0..<layer.outputWidth { next[unit] = parameters[layer.biasOffset + unit] }
        for input in 0..<layer.inputWidth {
          let value = activation[input]
          let weights = layer.weightOffset + input * layer.outputWidth
          for unit in 0..<layer.outputWidth { next[unit] += value * parameters[weights + unit] }
        }
        if index < architecture.layerCount - 1 {
          for unit in 0..<layer.outputWidth { next[unit] = max(next[unit], 0) }
        }
        swap(&activation, &next)
        finite = record(activation, count: layer.outputWidth, into: index + 1, &minima, &maxima) && finite
      }
      guard finite else { throw ExportError.nonFiniteCalibration(row: row) }
    }
    return zip(minima, maxima).map { $0...$1 }
  }

  /// Widens slot `slot`'s range by the first `count` values; false if one is NaN or infinite.
  private static func record(_ values: [Float], count: Int, into slot: Int,
                             _ minima: inout [Float], _ maxima: inout [Float]) -> Bool {
    var finite = true
    for value in values[0..<count] {
      finite = finite && value.isFinite
      minima[slot] = min(minima[slot], value)
      maxima[slot] = max(maxima[slot], value)
    }
    return finite
  }
}
