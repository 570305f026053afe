import FedHostCore

/// Single-sample inference of the paper model on the host: FedHost's int8 integer path (the
/// arithmetic of TFLite's int8 kernels) beside its float32 forward pass, against LiteRT's int8
/// set + invoke + get latency from the reference run (shared/bench/reference/RESULTS.md; LiteRT
/// is not run here, so that peer figure comes from another process on the same machine).
enum ExportBenchmark {
  static let liteRTInt8Microseconds = 1.69
  static let liteRTPeer = "LiteRT 2.3 int8 set_tensor + invoke + get_tensor, 1 thread (reference RESULTS.md)"

  static func run(quick: Bool) throws -> [BenchmarkRow] {
    let architecture = MLPArchitecture.paper
    let device = EmbeddedFederation.make(seed: EmbeddedFederation.defaultSeed).prepare(seed: 0).devices[0]
    let parameters = architecture.initialParameters(seed: 1)
    let repetitions = quick ? 3 : 7
    var rows = [BenchmarkRow]()
    for granularity in WeightGranularity.allCases {
      let model = try Quantizer.quantize(parameters, architecture: architecture, calibration: device.phase3Train,
                                         granularity: granularity)
      let inference = Int8Inference(model)
      let inputs = try inference.quantizedInputs(device.test)
      var output = [Int8](repeating: 0, count: architecture.outputWidth)
      let times = try (0..<repetitions).map { _ in
        try inputs.withUnsafeBufferPointer { rowsPointer in
          try output.withUnsafeMutableBufferPointer { outputPointer in
            try ExportReport.medianMicroseconds(rows: device.test.count) { row in
              inference.run(rowsPointer.baseAddress! + row * architecture.inputWidth, into: outputPointer.baseAddress!)
            }
          }
        }
      }.sorted()
      let size = TFLiteWriter.flatbuffer(for: model, description: "").count
      rows.append(BenchmarkRow(
        section: "export", name: "int8 inference, paper model, \(granularity.rawValue) weights, 1 thread", unit: "µs",
        fedhostMedian: times[times.count / 2], fedhostMin: times[0], peer: liteRTPeer,
        peerMedian: liteRTInt8Microseconds,
        note: "already-quantized input, like LiteRT's set_tensor; flatbuffer \(size) B", higherIsBetter: false))
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
    }.sorted()
    rows.append(BenchmarkRow(
      section: "export", name: "float32 inference, paper model, 1 thread", unit: "µs",
      fedhostMedian: floatTimes[floatTimes.count / 2], fedhostMin: floatTimes[0], peer: nil, peerMedian: nil,
      note: "MLPTrainer.predict, for comparison with the int8 path", higherIsBetter: false))
    return rows
  }
}
