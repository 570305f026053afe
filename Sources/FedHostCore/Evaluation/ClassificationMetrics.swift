/// The scores of one evaluation. Binary tasks report the positive class (index 1) for precision,
/// recall and F1; multi-class tasks report macro averages over the classes present.
public struct ClassificationMetrics: Sendable, Equatable {
  public let confusion: ConfusionMatrix
  public let accuracy: Double
  public let balancedAccuracy: Double
  public let precision: Double
  public let recall: Double
  public let f1: Double
  /// Binary only, and nil when the labels hold a single class (the AUC is undefined then).
  public let rocAUC: Double?
  /// The decision threshold used (binary only).
  public let threshold: Double?

  /// Binary scores from predicted probabilities of class 1: a row is positive when its
  /// probability is `>= threshold`.
  public static func binary(probabilities: [Float], labels: [Int32], threshold: Double = 0.5) -> ClassificationMetrics {
    precondition(probabilities.count == labels.count, "one probability per label")
    let predictions = probabilities.map { Double($0) >= threshold ? Int32(1) : 0 }
    let confusion = ConfusionMatrix(classCount: 2, labels: labels, predictions: predictions)
    return ClassificationMetrics(
      confusion: confusion, accuracy: confusion.accuracy, balancedAccuracy: confusion.balancedAccuracy,
      precision: confusion.precision(of: 1), recall: confusion.recall(of: 1), f1: confusion.f1(of: 1),
      rocAUC: rocAUC(scores: probabilities, labels: labels), threshold: threshold)
  }

  /// Multi-class scores from row-major class probabilities (`labels.count × classCount`); the
  /// prediction is the most probable class, the lowest index on ties.
  public static func multiclass(probabilities: [Float], classCount: Int, labels: [Int32]) -> ClassificationMetrics {
    precondition(classCount >= 2 && probabilities.count == labels.count * classCount,
                 "one probability per class per label")
    let predictions = labels.indices.map { row -> Int32 in
      let scores = probabilities[(row * classCount)..<((row + 1) * classCount)]
      var best = scores.startIndex
      for index in scores.indices where scores[index] > scores[best] { best = index }
      return Int32(best - scores.startIndex)
    }
    let confusion = ConfusionMatrix(classCount: classCount, labels: labels, predictions: predictions)
    return ClassificationMetrics(
      confusion: confusion, accuracy: confusion.accuracy, balancedAccuracy: confusion.balancedAccuracy,
      precision: confusion.macroPrecision, recall: confusion.macroRecall, f1: confusion.macroF1,
      rocAUC: nil, threshold: nil)
  }

  /// Area under the ROC curve: the probability that a random positive scores above a random
  /// negative, ties counting one half (Mann–Whitney U with average ranks). Nil without both classes.
  public static func rocAUC(scores: [Float], labels: [Int32]) -> Double? {
    precondition(scores.count == labels.count, "one score per label")
    let positives = labels.reduce(0) { $0 + ($1 == 1 ? 1 : 0) }
    let negatives = labels.count - positives
    guard positives > 0, negatives > 0 else { return nil }
    let order = scores.indices.sorted { scores[$0] < scores[$1] }
    var positiveRankSum = 0.0
    var start = 0
    while start < order.count {
      var end = start
      while end + 1 < order.count, scores[order[end + 1]] == scores[order[start]] { end += 1 }
      let averageRank = Double(start + end) / 2 + 1  // ranks are 1-based
      for position in start...end where labels[order[position]] == 1 { positiveRankSum += averageRank }
      start = end + 1
    }
    let p = Double(positives)
    return (positiveRankSum - p * (p + 1) / 2) / (p * Double(negatives))
  }

  /// The threshold with the highest F1 of class 1 on a validation slice. Candidates are the distinct
  /// scores (threshold `t` predicts positive for scores `>= t`); ties go to the candidate closest to
  /// 0.5, then to the lower one. Returns 0.5 when there are no scores or no positive labels, where F1
  /// cannot tell thresholds apart.
  public static func f1OptimalThreshold(probabilities: [Float], labels: [Int32]) -> Double {
    precondition(probabilities.count == labels.count, "one probability per label")
    let positives = labels.reduce(0) { $0 + ($1 == 1 ? 1 : 0) }
    guard positives > 0 else { return 0.5 }
    // Walk the scores from high to low: after each group of equal scores, every row at or above
    // that score is predicted positive.
    let order = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }
    var best = (f1: -1.0, threshold: 0.5)
    var truePositives = 0, predicted = 0, start = 0
    while start < order.count {
      let score = probabilities[order[start]]
      var end = start
      while end < order.count, probabilities[order[end]] == score {
        if labels[order[end]] == 1 { truePositives += 1 }
        predicted += 1
        end += 1
      }
      let f1 = 2 * Double(truePositives) / Double(predicted + positives)
      let candidate = Double(score)
      if f1 > best.f1 || (f1 == best.f1 && isPreferred(candidate, over: best.threshold)) {
        best = (f1, candidate)
      }
      start = end
    }
    return best.threshold
  }

  private static func isPreferred(_ candidate: Double, over current: Double) -> Bool {
    let candidateDistance = abs(candidate - 0.5), currentDistance = abs(current - 0.5)
    return candidateDistance != currentDistance ? candidateDistance < currentDistance : candidate < current
  }
}
