import FedHostCore
import Foundation

/// Single-sample inference of the paper model on the host: FedHost's int8 integer path (the
/// arithmetic of TFLite's int8 kernels) beside its float32 forward pass, against LiteRT running
/// FedHost's own exported .tflite file on the same inputs in the same invocation (bench/litert_int8.py
/// in .venv-litert, or FEDHOST_LITERT_PYTHON; skipped with the reason when LiteRT cannot run).
enum ExportBenchmark {
  static let liteRTPeer = "LiteRT int8 set_tensor + invoke + get_tensor, same .tflite, 1 thread"
  /// The reference's own int8 conversion (TensorFlow's converter), timed too as a cross-check.
  static let referenceModel = TrainingBenchmark.referenceFolder + "/mlp_int8.tflite"

  static func run(quick: Bool) throws -> [BenchmarkRow] {
    let architecture = MLPArchitecture.paper
    let device = EmbeddedFederation.make(seed: EmbeddedFederation.defaultSeed).prepare(seed: 0).devices[0]
    let parameters = architecture.initialParameters(seed: 1)
    let repetitions = quick ? 3 : 7
    // As many calls per pass as ExportReport.medianMicroseconds makes for FedHost.
    let liteRTCalls = String(max(device.test.count, 20_000))
    let liteRTPasses = String(quick ? 5 : 15)
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("fedhost-export-bench-\(getpid())")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    func liteRT(model: String, inputs: String) -> PythonPeer {
      var peer = PythonPeer(label: liteRTPeer, script: "bench/litert_int8.py",
                            arguments: [model, inputs, liteRTCalls, liteRTPasses],
                            pythonVariable: "FEDHOST_LITERT_PYTHON", venv: ".venv-litert")
      peer.measure()
      return peer
    }
    var referenceCheck: String?
    var rows = [BenchmarkRow]()
    for granularity in WeightGranularity.allCases {
      let model = try Quantizer.quantize(parameters, architecture: architecture, calibration: device.phase3Train,
                                         granularity: granularity)
      let inference = Int8Inference(model)
      let inputs = try inference.quantizedInputs(device.test)
      let flatbuffer = TFLiteWriter.flatbuffer(for: model, description: "")
      let modelFile = scratch.appendingPathComponent("paper-\(granularity.rawValue).tflite")
      let inputsFile = scratch.appendingPathComponent("inputs-\(granularity.rawValue).bin")
      try Data(flatbuffer).write(to: modelFile)
      try inputs.withUnsafeBytes { try Data($0).write(to: inputsFile) }
      var output = [Int8](repeating: 0, count: architecture.outputWidth)
      let times = try (0..<repetitions).map { _ in
        try inputs.withUnsafeBufferPointer { rowsPointer in
          try output.withUnsafeMutableBufferPointer { outputPointer in
            try ExportReport.medianMicroseconds(rows: device.test.count) { row in
              inference.run(rowsPointer.baseAddress! + row * architecture.inputWidth, into: outputPointer.baseAddress!)
            }
          }
        }
      }
      let stats = Statistics(times, higherIsBetter: false)
      let peer = liteRT(model: modelFile.path, inputs: inputsFile.path)
      // Once, on the same int8 rows: its input scale differs, but latency does not depend on the values.
      let crossCheck = referenceCheck ?? describeReferenceCheck(
        liteRT(model: URL(fileURLWithPath: referenceModel).standardizedFileURL.path, inputs: inputsFile.path))
      referenceCheck = crossCheck
      let invokeOnly = peer.values(["invoke_only", "median_us"]).first ?? 0
      rows.append(peer.row(
        section: "export", name: "int8 inference, paper model, \(granularity.rawValue) weights, 1 thread", unit: "µs",
        fedhostMedian: stats.median, fedhostBest: stats.best,
        medianPath: ["set_invoke_get", "median_us"], bestPath: ["set_invoke_get", "min_us"], higherIsBetter: false,
        detail: "\(liteRTPasses) passes of \(liteRTCalls) calls; FedHost from already-quantized input, like "
          + "LiteRT's set_tensor; LiteRT invoke() alone "
          + "\(BenchmarkReport.format(invokeOnly)) µs; \(crossCheck); flatbuffer \(flatbuffer.count) B"))
    }
    let trainer = MLPTrainer(architecture: architecture)
    var probability = [Float](repeating: 0, count: 1)
    let floatTimes = try (0..<repetitions).map { _ in
      try device.test.features.withUnsafeBufferPointer { features in
        try probability.withUnsafeMutableBufferPointer { output in
          try ExportReport.medianMicroseconds(rows: device.test.count) { row in
            let start = row * architecture.inputWidth
            try trainer.predict(parameters, features: UnsafeBufferPointer(rebasing: features[start..<(start + architecture.inputWidth)]),
                                into: output)
          }
        }
      }
    }
    let floatStats = Statistics(floatTimes, higherIsBetter: false)
    rows.append(BenchmarkRow(
      section: "export", name: "float32 inference, paper model, 1 thread", unit: "µs",
      fedhostMedian: floatStats.median, fedhostMin: floatStats.best, peer: nil, peerMedian: nil,
      note: "MLPTrainer.predict, for comparison with the int8 path", higherIsBetter: false))
    return rows
  }

  private static func describeReferenceCheck(_ check: PythonPeer) -> String {
    let name = "LiteRT on the reference's mlp_int8.tflite"
    guard let microseconds = check.values(["set_invoke_get", "median_us"]).first else {
      return "\(name) skipped: \(check.skipReason ?? "no figure")"
    }
    return "\(name) \(BenchmarkReport.format(microseconds)) µs"
  }
}
