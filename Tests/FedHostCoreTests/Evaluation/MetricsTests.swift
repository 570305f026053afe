import FedHostCore
import Testing

@Suite("Metrics")
struct MetricsTests {
  @Test func binaryScoresFromASmallConfusionMatrix() {
    // Threshold 0.5 → predictions 1 1 0 1 0 0 1 0; labels 1 1 1 0 0 0 0 1.
    // TP 2, FN 2, FP 2, TN 2.
    let probabilities: [Float] = [0.9, 0.6, 0.4, 0.7, 0.1, 0.2, 0.5, 0.3]
    let labels: [Int32] = [1, 1, 1, 0, 0, 0, 0, 1]
    let metrics = ClassificationMetrics.binary(probabilities: probabilities, labels: labels)
    #expect(metrics.confusion.description == "[[2, 2], [2, 2]]")
    #expect(metrics.accuracy == 0.5)
    #expect(metrics.precision == 0.5)
    #expect(metrics.recall == 0.5)
    #expect(metrics.f1 == 0.5)
    #expect(metrics.balancedAccuracy == 0.5)
    #expect(metrics.threshold == 0.5)
  }

  @Test func unevenMatrix() {
    // TP 3, FN 1, FP 1, TN 5: precision 3/4, recall 3/4, accuracy 8/10, balanced (3/4 + 5/6) / 2.
    let labels: [Int32] = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    let predictions: [Int32] = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    let matrix = ConfusionMatrix(classCount: 2, labels: labels, predictions: predictions)
    #expect(matrix[1, 1] == 3 && matrix[1, 0] == 1 && matrix[0, 1] == 1 && matrix[0, 0] == 5)
    #expect(matrix.accuracy == 0.8)
    #expect(matrix.precision(of: 1) == 0.75)
    #expect(matrix.recall(of: 1) == 0.75)
    #expect(matrix.f1(of: 1) == 0.75)
    #expect(abs(matrix.balancedAccuracy - (0.75 + 5.0 / 6) / 2) < 1e-12)
  }

  @Test func majorityPredictorScoresHalfBalancedAccuracyAndZeroF1() {
    let labels: [Int32] = Array(repeating: 0, count: 9) + [1]
    let metrics = ClassificationMetrics.binary(probabilities: Array(repeating: 0.1, count: 10), labels: labels)
    #expect(metrics.accuracy == 0.9)
    #expect(metrics.balancedAccuracy == 0.5)
    #expect(metrics.precision == 0)  // nothing predicted positive: 0, not NaN
    #expect(metrics.f1 == 0)
    #expect(metrics.rocAUC == 0.5)
  }

  @Test func macroScoresForThreeClasses() {
    // Predictions: true 0 → 0, 0, 1; true 1 → 1, 0 (a tie between 0 and 1: the lower index); true 2 → 0.
    let probabilities: [Float] = [
      0.8, 0.1, 0.1, 0.6, 0.3, 0.1, 0.2, 0.7, 0.1,
      0.1, 0.8, 0.1, 0.4, 0.4, 0.2, 0.5, 0.2, 0.3,
    ]
    let labels: [Int32] = [0, 0, 0, 1, 1, 2]
    let metrics = ClassificationMetrics.multiclass(probabilities: probabilities, classCount: 3, labels: labels)
    #expect(metrics.confusion.description == "[[2, 1, 0], [1, 1, 0], [1, 0, 0]]")
    // F1 = 2·TP / (predicted + actual): class 0 → 4/7, class 1 → 2/4, class 2 → 0.
    #expect(abs(metrics.f1 - (4.0 / 7 + 0.5 + 0) / 3) < 1e-12)
    #expect(abs(metrics.balancedAccuracy - (2.0 / 3 + 0.5 + 0) / 3) < 1e-12)
    #expect(metrics.accuracy == 0.5)
    #expect(metrics.rocAUC == nil && metrics.threshold == nil)
  }

  @Test func rocAUCWithTiesUsesAverageRanks() {
    #expect(ClassificationMetrics.rocAUC(scores: [0.1, 0.4, 0.35, 0.8], labels: [0, 0, 1, 1]) == 0.75)
    // Pairs (positive, negative): (0.5, 0.5) tie → ½, the other three → 1: 3.5 / 4.
    #expect(ClassificationMetrics.rocAUC(scores: [0.5, 0.5, 0.2, 0.8], labels: [1, 0, 0, 1]) == 0.875)
    #expect(ClassificationMetrics.rocAUC(scores: [0.3, 0.3, 0.3], labels: [1, 0, 1]) == 0.5)
    #expect(ClassificationMetrics.rocAUC(scores: [0.3, 0.6], labels: [1, 1]) == nil)
  }

  @Test func f1OptimalThresholdScansDistinctScores() {
    // Thresholds 0.9 / 0.8 / 0.7 / 0.6 / 0.4 / 0.3 give F1 1/2, 4/5, 2/3, 6/7, 3/4, 2/3.
    let threshold = ClassificationMetrics.f1OptimalThreshold(
      probabilities: [0.9, 0.8, 0.7, 0.6, 0.4, 0.3], labels: [1, 1, 0, 1, 0, 0])
    #expect(threshold == Double(Float(0.6)))
  }

  @Test func f1TiesPreferTheThresholdClosestToHalf() {
    // 0.9 → F1 2/3 and 0.2 → F1 4/6: equal; 0.2 is closer to 0.5.
    let threshold = ClassificationMetrics.f1OptimalThreshold(
      probabilities: [0.9, 0.7, 0.6, 0.2], labels: [1, 0, 0, 1])
    #expect(threshold == Double(Float(0.2)))
    // Equal distance (0.3 and 0.7 both F1 2/3 here): the lower one.
    let symmetric = ClassificationMetrics.f1OptimalThreshold(probabilities: [0.7, 0.6, 0.5, 0.3], labels: [1, 0, 0, 1])
    #expect(symmetric == Double(Float(0.3)))
    #expect(ClassificationMetrics.f1OptimalThreshold(probabilities: [0.2, 0.8], labels: [0, 0]) == 0.5)
  }
}
