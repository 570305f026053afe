/// The shape of a fully connected network: layer widths, ReLU hidden layers, a loss head.
///
/// ## Parameter layout (relied on by aggregation plugins, sub-model slicing and exporters)
/// All parameters live in one flat float32 vector (`ParameterVector`), layer after layer.
/// Layer `l` maps `widths[l]` inputs to `widths[l + 1]` outputs and occupies
/// `layers[l].weightOffset ..< layers[l].end`:
/// - its weights first, `widths[l] × widths[l + 1]` floats stored **[input][output] row-major**:
///   the weight from input `i` to output `o` is at `weightOffset + i * widths[l + 1] + o`;
/// - then its `widths[l + 1]` biases at `biasOffset ..< end`.
/// So the first `k` layers form the prefix `0 ..< layers[k - 1].end` (this is what freezing uses).
///
/// ## Heads
/// One output unit: sigmoid + binary cross-entropy, labels 0/1. `k ≥ 2` outputs: softmax +
/// categorical cross-entropy, labels `0..<k`.
public struct MLPArchitecture: Sendable, Hashable, CustomStringConvertible {
  /// Where one layer's parameters sit in the flat vector.
  public struct Layer: Sendable, Hashable {
    public let inputWidth: Int
    public let outputWidth: Int
    public let weightOffset: Int
    public var weightCount: Int { inputWidth * outputWidth }
    public var biasOffset: Int { weightOffset + weightCount }
    /// One past the layer's last parameter.
    public var end: Int { biasOffset + outputWidth }
    /// Weights and biases.
    public var parameterCount: Int { end - weightOffset }
  }

  public enum Head: Sendable, Hashable {
    case sigmoidBinaryCrossEntropy
    case softmaxCrossEntropy(classCount: Int)
  }

  /// Layer widths from input to output, e.g. `[9, 256, …, 1]`.
  public let widths: [Int]
  public let layers: [Layer]
  public let parameterCount: Int

  /// The paper's model: 9→256→128→64→32→16→12→8→1 with a sigmoid output, 46,637 parameters.
  public static let paper = try! MLPArchitecture(widths: [9, 256, 128, 64, 32, 16, 12, 8, 1])

  /// Throws `ModelError.invalidArchitecture` unless there are at least two widths, all positive.
  public init(widths: [Int]) throws {
    guard widths.count >= 2 else {
      throw ModelError.invalidArchitecture("needs an input and an output width, got \(widths)")
    }
    guard widths.allSatisfy({ $0 > 0 }) else {
      throw ModelError.invalidArchitecture("widths must be positive, got \(widths)")
    }
    self.widths = widths
    var layers = [Layer]()
    var offset = 0
    for (inputWidth, outputWidth) in zip(widths, widths.dropFirst()) {
      let layer = Layer(inputWidth: inputWidth, outputWidth: outputWidth, weightOffset: offset)
      layers.append(layer)
      offset = layer.end
    }
    self.layers = layers
    parameterCount = offset
  }

  public var inputWidth: Int { widths[0] }
  public var outputWidth: Int { widths[widths.count - 1] }
  public var layerCount: Int { layers.count }
  /// The widest layer, which sizes the trainer's activation scratch.
  public var maxWidth: Int { widths.max()! }

  public var head: Head {
    outputWidth == 1 ? .sigmoidBinaryCrossEntropy : .softmaxCrossEntropy(classCount: outputWidth)
  }

  /// Number of distinct labels: 2 for the sigmoid head, `outputWidth` for softmax.
  public var classCount: Int { outputWidth == 1 ? 2 : outputWidth }

  /// Number of parameters in the first `layerCount` layers (the frozen prefix when freezing them).
  public func prefixParameterCount(layers layerCount: Int) -> Int {
    layerCount == 0 ? 0 : layers[layerCount - 1].end
  }

  public var description: String { widths.map(String.init).joined(separator: "→") }

  /// Fresh parameters: He-uniform weights for ReLU layers (U(±√(6/fan_in))), Glorot-uniform for
  /// the output layer (U(±√(6/(fan_in + fan_out)))), zero biases — from `SeededGenerator(seed:)`,
  /// drawn layer by layer in layout order.
  public func initialParameters(seed: UInt64) -> ParameterVector {
    var generator = SeededGenerator(seed: seed)
    let parameters = ParameterVector(count: parameterCount)
    for (index, layer) in layers.enumerated() {
      let fanIn = Double(layer.inputWidth)
      let limit = index == layers.count - 1
        ? (6 / (fanIn + Double(layer.outputWidth))).squareRoot()
        : (6 / fanIn).squareRoot()
      for position in layer.weightOffset..<layer.biasOffset {
        parameters[position] = Float((generator.nextUnit() * 2 - 1) * limit)
      }
    }
    return parameters
  }

  /// Checks that `parameters` fits this architecture.
  public func validate(_ parameters: ParameterVector) throws {
    guard parameters.count == parameterCount else {
      throw ModelError.parameterCountMismatch(expected: parameterCount, actual: parameters.count)
    }
  }
}
