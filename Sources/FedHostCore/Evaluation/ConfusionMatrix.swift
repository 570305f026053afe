/// Counts of (true class, predicted class) pairs, and the scores derived from them.
///
/// Conventions (scikit-learn's, with `zero_division=0`): a ratio with a zero denominator is 0;
/// balanced accuracy and macro averages run over the classes that occur in the true labels.
public struct ConfusionMatrix: Sendable, Equatable, CustomStringConvertible {
  public let classCount: Int
  /// Row-major: `counts[actual * classCount + predicted]`.
  public private(set) var counts: [Int]

  /// Tallies `labels` against `predictions` (class indices in `0..<classCount`, equal lengths).
  public init(classCount: Int, labels: [Int32], predictions: [Int32]) {
    precondition(classCount >= 2 && labels.count == predictions.count)
    self.classCount = classCount
    counts = [Int](repeating: 0, count: classCount * classCount)
    for (actual, predicted) in zip(labels, predictions) {
      precondition(actual >= 0 && Int(actual) < classCount && predicted >= 0 && Int(predicted) < classCount,
                   "class index out of range")
      counts[Int(actual) * classCount + Int(predicted)] += 1
    }
  }

  /// Rows that are `actual` and were predicted `predicted`.
  public subscript(actual: Int, predicted: Int) -> Int { counts[actual * classCount + predicted] }

  public var total: Int { counts.reduce(0, +) }

  /// Rows whose true class is `classIndex`.
  public func support(of classIndex: Int) -> Int {
    (0..<classCount).reduce(0) { $0 + self[classIndex, $1] }
  }

  /// Rows predicted as `classIndex`.
  public func predictedCount(of classIndex: Int) -> Int {
    (0..<classCount).reduce(0) { $0 + self[$1, classIndex] }
  }

  public var accuracy: Double {
    ratio((0..<classCount).reduce(0) { $0 + self[$1, $1] }, total)
  }

  /// Of the rows predicted `classIndex`, the share that are.
  public func precision(of classIndex: Int) -> Double {
    ratio(self[classIndex, classIndex], predictedCount(of: classIndex))
  }

  /// Of the rows that are `classIndex`, the share predicted so.
  public func recall(of classIndex: Int) -> Double {
    ratio(self[classIndex, classIndex], support(of: classIndex))
  }

  /// 2·TP / (2·TP + FP + FN): the harmonic mean of precision and recall.
  public func f1(of classIndex: Int) -> Double {
    let truePositives = self[classIndex, classIndex]
    let errors = predictedCount(of: classIndex) + support(of: classIndex) - 2 * truePositives
    return ratio(2 * truePositives, 2 * truePositives + errors)
  }

  /// The classes that occur in the true labels.
  public var presentClasses: [Int] { (0..<classCount).filter { support(of: $0) > 0 } }

  /// Mean recall over present classes: accuracy that a majority-class predictor cannot game.
  public var balancedAccuracy: Double { mean(presentClasses.map(recall)) }
  public var macroPrecision: Double { mean(presentClasses.map(precision)) }
  public var macroRecall: Double { balancedAccuracy }
  public var macroF1: Double { mean(presentClasses.map(f1)) }

  /// One line: `[[TN, FP], [FN, TP]]` for a binary matrix (rows = true class).
  public var description: String {
    "[" + (0..<classCount).map { actual in
      "[" + (0..<classCount).map { String(self[actual, $0]) }.joined(separator: ", ") + "]"
    }.joined(separator: ", ") + "]"
  }

  private func ratio(_ numerator: Int, _ denominator: Int) -> Double {
    denominator == 0 ? 0 : Double(numerator) / Double(denominator)
  }

  private func mean(_ values: [Double]) -> Double {
    values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
  }
}
