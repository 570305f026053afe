/// Mistakes a caller can make when building, training or evaluating a model.
/// Each case describes itself in one line.
public enum ModelError: Error, Equatable, CustomStringConvertible {
  case invalidArchitecture(String)
  case parameterCountMismatch(expected: Int, actual: Int)
  case sampleWidthMismatch(expected: Int, actual: Int)
  case labelOutOfRange(row: Int, label: Int32, classCount: Int)
  case rowOutOfRange(row: Int, count: Int)
  case noSamples
  case invalidOption(String)
  case invalidRate(Double)
  case architectureMismatch(String)

  public var description: String {
    switch self {
    case .invalidArchitecture(let reason): "invalid architecture: \(reason)"
    case .parameterCountMismatch(let expected, let actual):
      "parameter vector has \(actual) elements, the architecture needs \(expected)"
    case .sampleWidthMismatch(let expected, let actual):
      "samples have \(actual) features per row, the model's input width is \(expected)"
    case .labelOutOfRange(let row, let label, let classCount):
      "label \(label) in row \(row) is outside 0..<\(classCount)"
    case .rowOutOfRange(let row, let count): "row index \(row) is outside 0..<\(count)"
    case .noSamples: "no samples to train or evaluate on"
    case .invalidOption(let reason): "invalid training option: \(reason)"
    case .invalidRate(let rate): "sub-model rate \(rate) is outside (0, 1]"
    case .architectureMismatch(let reason): "architectures do not match: \(reason)"
    }
  }
}
