/// Z-score scaling, `(x − mean) / deviation` per input column, fitted on one split and applied to
/// others. Fit it on the training rows only: statistics that include test rows leak them.
///
/// Constant columns (including zero padding) get scale 1, so they map to `x − mean`: padding stays 0.
public struct Standardizer: Sendable, Equatable {
  public let means: [Float]
  /// Population standard deviations (as scikit-learn's `StandardScaler`), 1 where a column is constant.
  public let scales: [Float]

  public init(means: [Float], scales: [Float]) {
    precondition(means.count == scales.count && scales.allSatisfy { $0 > 0 })
    self.means = means
    self.scales = scales
  }

  /// Column statistics of `training`, computed in double precision with two passes.
  public init(fittedOn training: Samples) {
    let width = training.width
    let rows = training.count
    var sums = [Double](repeating: 0, count: width)
    for row in 0..<rows {
      for column in 0..<width { sums[column] += Double(training.features[row * width + column]) }
    }
    let means = sums.map { rows > 0 ? $0 / Double(rows) : 0 }
    var squares = [Double](repeating: 0, count: width)
    for row in 0..<rows {
      for column in 0..<width {
        let deviation = Double(training.features[row * width + column]) - means[column]
        squares[column] += deviation * deviation
      }
    }
    let deviations = squares.map { rows > 0 ? ($0 / Double(rows)).squareRoot() : 0 }
    self.init(means: means.map(Float.init),
              scales: deviations.map { $0 > 0 ? Float($0) : 1 })
  }

  /// `samples` scaled with these statistics.
  public func apply(to samples: Samples) -> Samples {
    precondition(samples.width == means.count, "standardizer fitted on another width")
    var scaled = samples
    let width = samples.width
    scaled.features.withUnsafeMutableBufferPointer { values in
      for index in values.indices {
        let column = index % width
        values[index] = (values[index] - means[column]) / scales[column]
      }
    }
    return scaled
  }
}

extension Samples {
  /// The rows of `parts` one after another (all must share a width).
  public static func concatenating(_ parts: [Samples]) -> Samples {
    precondition(!parts.isEmpty && parts.allSatisfy { $0.width == parts[0].width }, "parts must share a width")
    return Samples(features: parts.flatMap(\.features), labels: parts.flatMap(\.labels), width: parts[0].width)
  }

  /// Rows per class index, for `classCount` classes.
  public func classCounts(classCount: Int) -> [Int] {
    var counts = [Int](repeating: 0, count: classCount)
    for label in labels { counts[Int(label)] += 1 }
    return counts
  }
}
