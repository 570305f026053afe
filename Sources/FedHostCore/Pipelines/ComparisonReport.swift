/// Everything `host compare` (and a single run) measured, in one serializable value that the
/// Markdown, CSV, JSON and SVG writers render. Scores are fractions in 0...1 and are kept per
/// seed so that every writer computes mean ± std the same way.
public struct ComparisonReport: Codable, Sendable {
  public var title: String
  public var seeds: [UInt64]
  public var devices: [DeviceInfo]
  public var methods: [MethodResult]
  public var curves: [RoundCurve]
  /// Free-form lines shown under the table (preset, threshold rule, data files).
  public var notes: [String]

  public init(title: String, seeds: [UInt64], devices: [DeviceInfo], methods: [MethodResult],
              curves: [RoundCurve], notes: [String]) {
    self.title = title
    self.seeds = seeds
    self.devices = devices
    self.methods = methods
    self.curves = curves
    self.notes = notes
  }
}

/// A device (client) as reported: its name and, for heterogeneous federations, its sub-model.
public struct DeviceInfo: Codable, Sendable {
  public var name: String
  public var widthRate: Double
  public var parameterCount: Int

  public init(name: String, widthRate: Double, parameterCount: Int) {
    self.name = name
    self.widthRate = widthRate
    self.parameterCount = parameterCount
  }
}

/// One row of the table: a strategy at one stage ("global" model or "personalized").
public struct MethodResult: Codable, Sendable {
  public var method: String
  public var stage: String
  /// Set when the strategy failed; its scores are then empty.
  public var failure: String?
  /// Indexed [device][seed].
  public var accuracy: [[Double]]
  public var f1: [[Double]]

  public init(method: String, stage: String, failure: String? = nil, accuracy: [[Double]], f1: [[Double]]) {
    self.method = method
    self.stage = stage
    self.failure = failure
    self.accuracy = accuracy
    self.f1 = f1
  }

  /// Per seed, the mean over devices (the table's "Average" column).
  public var averageAccuracyPerSeed: [Double] { averagePerSeed(accuracy) }
  public var averageF1PerSeed: [Double] { averagePerSeed(f1) }

  private func averagePerSeed(_ scores: [[Double]]) -> [Double] {
    guard let seedCount = scores.first?.count else { return [] }
    return (0..<seedCount).map { seed in scores.map { $0[seed] }.reduce(0, +) / Double(scores.count) }
  }
}

/// The global model's test metrics after each round of one strategy and seed (mean over devices).
public struct RoundCurve: Codable, Sendable {
  public var method: String
  public var seed: UInt64
  public var accuracy: [Double]
  public var loss: [Double]
  /// What the aggregator reported per round (ABI 1.2's report_metric), by key; nil if nothing.
  public var strategyMetrics: [String: [Double?]]?

  public init(method: String, seed: UInt64, accuracy: [Double], loss: [Double],
              strategyMetrics: [String: [Double?]]? = nil) {
    self.method = method
    self.seed = seed
    self.accuracy = accuracy
    self.loss = loss
    self.strategyMetrics = strategyMetrics
  }
}

/// Mean and sample standard deviation (0 for one value).
public func meanAndStandardDeviation(_ values: [Double]) -> (mean: Double, std: Double) {
  guard !values.isEmpty else { return (.nan, .nan) }
  let mean = values.reduce(0, +) / Double(values.count)
  guard values.count > 1 else { return (mean, 0) }
  let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
  return (mean, variance.squareRoot())
}
