import Foundation

/// The Table-II analog for one exported model: size, quality and speed of the float model beside
/// its int8 version, and what the int8 version needs on a device.
public struct ExportReport: Sendable {
  public var device: String
  public var architecture: MLPArchitecture
  public var granularity: WeightGranularity
  /// 4 bytes per float parameter.
  public var floatParameterBytes: Int
  /// The .fhmodel file the model came from, if any.
  public var modelFileBytes: Int?
  public var footprint: DeviceFootprint
  public var calibrationRows: Int
  public var testRows: Int
  /// Metrics on the test rows at threshold 0.5 (argmax for several classes).
  public var floatMetrics: ClassificationMetrics
  public var int8Metrics: ClassificationMetrics
  /// Share of test rows where both paths predict the same class.
  public var agreement: Double
  /// Median host latency per single-sample inference (int8: already-quantized input, as LiteRT's
  /// set-invoke-get figure).
  public var floatMicroseconds: Double
  public var int8Microseconds: Double
  public var budget: MemoryBudget?
  /// The largest width rate whose int8 sub-model fits `budget` (nil: none, or no budget).
  public var largestFittingRate: Double?

  /// Evaluates both paths on `test` and times them. `parameters` and `model` must be the same network.
  public init(device: String, parameters: ParameterVector, model: QuantizedMLP, flatbufferSize: Int,
              modelFileBytes: Int?, calibrationRows: Int, test: Samples, budget: MemoryBudget?) throws {
    let architecture = model.architecture
    guard test.count > 0 else { throw ModelError.noSamples }
    let trainer = MLPTrainer(architecture: architecture)
    let inference = Int8Inference(model)
    let floatProbabilities = try trainer.probabilities(parameters, for: test)
    let int8Probabilities = try inference.probabilities(for: test)
    self.device = device
    self.architecture = architecture
    granularity = model.granularity
    floatParameterBytes = architecture.parameterCount * MemoryLayout<Float>.size
    self.modelFileBytes = modelFileBytes
    footprint = DeviceFootprint(model: model, flatbufferSize: flatbufferSize)
    self.calibrationRows = calibrationRows
    testRows = test.count
    floatMetrics = Self.metrics(floatProbabilities, architecture: architecture, labels: test.labels)
    int8Metrics = Self.metrics(int8Probabilities, architecture: architecture, labels: test.labels)
    agreement = Self.agreement(floatProbabilities, int8Probabilities, width: architecture.outputWidth)

    let features = test.features
    let output = UnsafeMutableBufferPointer<Float>.allocate(capacity: architecture.outputWidth)
    defer { output.deallocate() }
    floatMicroseconds = try features.withUnsafeBufferPointer { rows in
      try Self.medianMicroseconds(rows: test.count) { row in
        try trainer.predict(parameters, features: UnsafeBufferPointer(rebasing: rows[(row * test.width)..<((row + 1) * test.width)]),
                            into: output)
      }
    }
    let quantized = try inference.quantizedInputs(test)
    var int8Output = [Int8](repeating: 0, count: architecture.outputWidth)
    int8Microseconds = try quantized.withUnsafeBufferPointer { rows in
      try int8Output.withUnsafeMutableBufferPointer { output in
        try Self.medianMicroseconds(rows: test.count) { row in
          inference.run(rows.baseAddress! + row * test.width, into: output.baseAddress!)
        }
      }
    }
    self.budget = budget
    largestFittingRate = try budget.flatMap {
      try DeviceFootprint.largestRate(for: architecture, budget: $0, granularity: model.granularity)?.rate
    }
  }

  /// Median over 7 passes (after one warm-up) of the mean time per row, in µs; each pass runs at
  /// least 20,000 inferences so the clock's resolution does not matter.
  public static func medianMicroseconds(rows: Int, _ body: (_ row: Int) throws -> Void) throws -> Double {
    let perPass = max(rows, 20_000)
    var times = [Double]()
    for pass in 0..<8 {
      let start = DispatchTime.now().uptimeNanoseconds
      for index in 0..<perPass { try body(index % rows) }
      let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000
      if pass > 0 { times.append(elapsed / Double(perPass)) }
    }
    return times.sorted()[times.count / 2]
  }

  private static func metrics(_ probabilities: [Float], architecture: MLPArchitecture, labels: [Int32]) -> ClassificationMetrics {
    architecture.outputWidth == 1
      ? .binary(probabilities: probabilities, labels: labels)
      : .multiclass(probabilities: probabilities, classCount: architecture.outputWidth, labels: labels)
  }

  private static func agreement(_ first: [Float], _ second: [Float], width: Int) -> Double {
    func predicted(_ values: ArraySlice<Float>) -> Int {
      width == 1 ? (values.first! >= 0.5 ? 1 : 0) : values.indices.max { values[$0] < values[$1] }! - values.startIndex
    }
    let rows = first.count / width
    let same = (0..<rows).filter { row in
      let range = (row * width)..<((row + 1) * width)
      return predicted(first[range]) == predicted(second[range])
    }.count
    return Double(same) / Double(rows)
  }

  /// The report as Markdown: a Table-II-style comparison, then the device footprint.
  public var markdown: String {
    func percent(_ value: Double) -> String { String(format: "%.2f %%", value * 100) }
    func bytes(_ value: Int) -> String { "\(value) B (\(String(format: "%.2f", Double(value) / 1024)) KiB)" }
    var lines = [
      "## Int8 export: \(device), \(architecture) (\(architecture.parameterCount) parameters)",
      "",
      "| | FP32 (host) | INT8 (TFLite, \(granularity.rawValue) weights) |",
      "|---|---|---|",
      "| model size | \(bytes(floatParameterBytes)) of parameters"
        + (modelFileBytes.map { "; .fhmodel \(bytes($0))" } ?? "") + " | \(bytes(footprint.flashBytes)) flatbuffer |",
      "| accuracy (test, \(testRows) rows) | \(percent(floatMetrics.accuracy)) | \(percent(int8Metrics.accuracy)) |",
      "| F1 | \(String(format: "%.4f", floatMetrics.f1)) | \(String(format: "%.4f", int8Metrics.f1)) |",
      "| host latency per inference | \(String(format: "%.2f µs", floatMicroseconds)) | \(String(format: "%.2f µs", int8Microseconds)) |",
      "",
      "Predictions agree on \(percent(agreement)) of test rows. Calibrated on \(calibrationRows) Phase 3 training rows.",
      "Device estimate: flash \(bytes(footprint.flashBytes)); RAM: tensor arena \(bytes(footprint.arenaBytes))"
        + " (activations \(bytes(footprint.activationBytes)), the rest TFLite Micro's bookkeeping).",
    ]
    if let budget {
      let verdict = footprint.fits(budget) ? "fits" : "does NOT fit"
      lines.append("Memory budget flash \(budget.flashBytes) B, RAM \(budget.ramBytes) B: the model \(verdict); "
        + (largestFittingRate.map { "largest width rate that fits: \(String(format: "%.2f", $0))." } ?? "no width rate fits."))
    }
    return lines.joined(separator: "\n") + "\n"
  }
}
