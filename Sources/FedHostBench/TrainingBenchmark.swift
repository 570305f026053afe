import FedHostCore
import Foundation

/// Batch-1 Adam training of the paper model against the reference trainers, all run in the same
/// invocation, interleaved with FedHost's trainer (only same-run ratios mean anything): the C
/// reference `train_c.c` (compiled here) and the numpy and PyTorch scripts (run unchanged from
/// .venv-bench, or FEDHOST_BENCH_PYTHON; skipped with the reason when they cannot run).
enum TrainingBenchmark {
  static let cFlags = ["-O3", "-march=native", "-fno-math-errno"]
  static let cPeer = "C reference train_c.c (gcc -O3 -march=native -fno-math-errno, FTZ=1, fused)"
  static let referenceFolder = "../shared/bench/reference"
  static let referenceSource = referenceFolder + "/c/train_c.c"

  static func run(quick: Bool) throws -> [BenchmarkRow] {
    let architecture = MLPArchitecture.paper
    // Short runs, many C/Swift pairs: this VM's speed drifts by ±20 %, so each pair is compared
    // on its own and the ratios are summarized.
    let sampleCount = quick ? 1_000 : 2_000
    let pairs = quick ? 3 : 7
    let epochsPerRun = 7  // as train_c.c times its epochs
    let samples = makeSamples(count: sampleCount, width: architecture.inputWidth)
    let initial = architecture.initialParameters(seed: 1)
    let options = TrainingOptions(optimizer: .paper, shuffle: false)
    var peer: CReference?
    do {
      peer = try CReference(samples: samples, initial: initial)
    } catch {
      print("training benchmark: no C peer: \(error)")
    }
    defer { peer?.removeFiles() }
    func referenceScript(_ label: String, _ name: String, environment: [String: String] = [:]) -> PythonPeer {
      PythonPeer(label: label, script: referenceFolder + "/" + name, environment: environment,
                 pythonVariable: "FEDHOST_BENCH_PYTHON", venv: ".venv-bench")
    }
    var numpy = referenceScript("numpy np_mlp.py (reference), flat parameter buffer", "np_mlp.py")
    // REPS=1: one timed epoch per run (after its warm-up epoch); the runs give median and best.
    var torch = referenceScript("PyTorch torch_bench.py (reference), Adam fused=True", "torch_bench.py",
                                environment: ["REPS": "1"])
    // Each script run takes 10–30 s, so they join only the first pairs.
    let scriptRuns = quick ? 1 : 3

    let trainer = MLPTrainer(architecture: architecture)
    // The exact-Adam bound, timed right after every epoch: this VM switches between speed
    // states within seconds, so each epoch is compared with a sweep timed in the same state.
    let sweep = try AdamSweep(parameterCount: architecture.parameterCount)
    var sweepMicroseconds = [Double]()
    var ceilingFractions = [Double]()
    var swiftMedians = [Double]()
    var swiftBests = [Double]()
    var peerRuns = [CReference.Run]()
    for pair in 0..<pairs {
      if let peer { peerRuns.append(try peer.run()) }
      if pair < scriptRuns {
        numpy.measure()
        torch.measure()
      }
      let parameters = initial.copy()
      _ = try trainer.train(parameters, on: samples, options: options)  // warm-up epoch
      let rates = try (0..<epochsPerRun).map { _ in
        let rate = Double(sampleCount) / (try seconds { _ = try trainer.train(parameters, on: samples, options: options) })
        let bound = try sweep.microseconds()
        sweepMicroseconds.append(bound)
        ceilingFractions.append(bound / (1e6 / rate))
        return rate
      }
      swiftMedians.append(median(rates))
      swiftBests.append(rates.max()!)
    }
    let swiftMedian = median(swiftMedians)
    let swiftBest = swiftBests.max()!
    let trainingName = "batch-1 Adam, paper model, 1 thread"
    var note = "\(sampleCount) samples × \(epochsPerRun) epochs × \(pairs) interleaved runs"
    if !peerRuns.isEmpty {
      let ratios = zip(swiftMedians, peerRuns).map { $0 / $1.medianRate }.sorted()
      note += String(format: "; same-run ratio median %.2f× (range %.2f–%.2f), best vs best %.2f×",
                     median(ratios), ratios.first!, ratios.last!,
                     swiftBest / peerRuns.map(\.bestRate).max()!)
    }
    var rows = [BenchmarkRow]()
    rows.append(BenchmarkRow(
      section: "training", name: trainingName, unit: "samples/s",
      fedhostMedian: swiftMedian, fedhostMin: swiftBest, peer: peer == nil ? nil : cPeer,
      peerMedian: peerRuns.isEmpty ? nil : median(peerRuns.map(\.medianRate)), note: note,
      higherIsBetter: true))
    // numpy's and PyTorch's fastest variants are the peers; the note gives the common one.
    func scriptRow(_ script: PythonPeer, fastest: String, epochsPerRun: String, common: String,
                   commonName: String) -> BenchmarkRow {
      let commonRate = Statistics(script.values([common, "median_rate"]), higherIsBetter: true).median
      return script.row(
        section: "training", name: trainingName, unit: "samples/s", fedhostMedian: swiftMedian, fedhostBest: swiftBest,
        medianPath: [fastest, "median_rate"], bestPath: [fastest, "best_rate"], higherIsBetter: true,
        detail: "\(script.records.count) run(s) × \(epochsPerRun) of 5000 samples; \(commonName) "
          + BenchmarkReport.format(commonRate))
    }
    rows.append(scriptRow(numpy, fastest: "train_flat", epochsPerRun: "3 epochs", common: "train_perlayer",
                          commonName: "per-layer Adam variant"))
    rows.append(scriptRow(torch, fastest: "train_adam_fused", epochsPerRun: "1 epoch", common: "train_adam_default",
                          commonName: "default torch.optim.Adam"))
    rows.append(try twoThreadRow(samples: samples, initial: initial))
    rows.append(adamCeilingRow(sweepMicroseconds: sweepMicroseconds, fractions: ceilingFractions,
                               parameterCount: architecture.parameterCount, trainingRate: swiftMedian))
    let forwardCalls = min(2_000, samples.count)
    let forward = Statistics(try forwardMicroseconds(calls: forwardCalls, samples: samples, parameters: initial,
                                                     trainer: trainer), higherIsBetter: false)
    let forwardName = "single-sample float32 forward, paper model"
    let cForward = peerRuns.map(\.inferenceMicroseconds).min()
    rows.append(BenchmarkRow(
      section: "inference", name: forwardName, unit: "µs", fedhostMedian: forward.median, fedhostMin: forward.best,
      peer: cForward == nil ? nil : "C reference forward only (best of its runs)", peerMedian: cForward,
      note: "\(forwardCalls) calls per repetition", higherIsBetter: false))
    rows.append(numpy.row(
      section: "inference", name: forwardName, unit: "µs", fedhostMedian: forward.median, fedhostBest: forward.best,
      medianPath: ["inference_us_per_sample", "median"], bestPath: ["inference_us_per_sample", "min"],
      higherIsBetter: false, detail: "np_mlp.py forward, \(numpy.records.count) run(s) × 5 × 2000 calls"))
    return rows
  }

  /// Two clients on two workers against the same two clients on one.
  private static func twoThreadRow(samples: Samples, initial: ParameterVector) throws -> BenchmarkRow {
    let clients = 2
    let epochs = 2
    let clientOptions = TrainingOptions(optimizer: .paper, epochs: epochs, shuffle: false)
    func rate(threads: Int) throws -> Double {
      let pool = WorkerPool(threadCount: threads)
      let time = try seconds {
        _ = try pool.map(count: clients, makeState: { _ in MLPTrainer(architecture: .paper) }) {
          trainer, _ in try trainer.trainDelta(from: initial, on: samples, options: clientOptions)
        }
      }
      return Double(clients * epochs * samples.count) / time
    }
    var one = [Double]()
    var two = [Double]()
    for _ in 0..<3 {
      one.append(try rate(threads: 1))
      two.append(try rate(threads: 2))
    }
    return BenchmarkRow(
      section: "training", name: "2 clients on 2 threads (WorkerPool)", unit: "samples/s",
      fedhostMedian: median(two), fedhostMin: two.max()!, peer: "FedHost, same clients on 1 thread",
      peerMedian: median(one),
      note: String(format: "scaling %.2f×", median(two) / median(one)), higherIsBetter: true)
  }

  /// The exact-Adam bound on batch-1 training against the training epochs, each epoch
  /// against the sweep timed right after it.
  private static func adamCeilingRow(sweepMicroseconds: [Double], fractions: [Double], parameterCount: Int,
                                     trainingRate: Double) -> BenchmarkRow {
    let sweep = Statistics(sweepMicroseconds, higherIsBetter: false)
    let sorted = fractions.sorted()
    return BenchmarkRow(
      section: "training", name: "bare Adam sweep over \(parameterCount) parameters", unit: "µs",
      fedhostMedian: sweep.median, fedhostMin: sweep.best, peer: nil, peerMedian: nil,
      note: String(format: "ceiling %.0f samples/s; batch-1 training runs at %.0f%% of it (median over %d epochs, "
                     + "each against the sweep timed right after it; range %.0f–%.0f%%); medians alone: "
                     + "%.1f µs/sample vs %.1f µs", 1e6 / sweep.median, median(fractions) * 100, fractions.count,
                   sorted.first! * 100, sorted.last! * 100, 1e6 / trainingRate, sweep.median),
      higherIsBetter: false)
  }

  /// FedHost's forward pass per call, µs, over 5 repetitions of `calls` calls after a warm-up.
  private static func forwardMicroseconds(calls: Int, samples: Samples, parameters: ParameterVector,
                                          trainer: MLPTrainer) throws -> [Double] {
    var output: Float = 0
    var times = [Double]()
    try samples.features.withUnsafeBufferPointer { features in
      try withUnsafeMutablePointer(to: &output) { result in
        let out = UnsafeMutableBufferPointer(start: result, count: 1)
        for _ in 0..<6 {
          times.append(try seconds {
            for row in 0..<calls {
              let input = UnsafeBufferPointer(rebasing: features[(row * samples.width)..<((row + 1) * samples.width)])
              try trainer.predict(parameters, features: input, into: out)
            }
          } / Double(calls) * 1e6)
        }
      }
    }
    times.removeFirst()  // warm-up
    return times
  }

  /// Features uniform in ±√3 (unit variance), labels fair coin flips, from a fixed seed.
  static func makeSamples(count: Int, width: Int) -> Samples {
    var generator = SeededGenerator(seed: 0)
    let features = (0..<(count * width)).map { _ in Float((generator.nextUnit() * 2 - 1) * 3.0.squareRoot()) }
    let labels = (0..<count).map { _ in Int32(generator.next() >> 63) }
    return Samples(features: features, labels: labels, width: width)
  }

}

/// A bare Adam step over every parameter (3 loads, 3 stores, one exact sqrt and divide per
/// element): the bound exact Adam puts on batch-1 training.
private struct AdamSweep {
  let state: OptimizerState
  let parameters = MLPArchitecture.paper.initialParameters(seed: 2)
  let gradient = MLPArchitecture.paper.initialParameters(seed: 3)

  init(parameterCount: Int) throws {
    state = try OptimizerState(optimizer: .paper, parameterCount: parameterCount)
  }

  /// µs per sweep over a batch of `sweeps` sweeps.
  func microseconds(sweeps: Int = 1_000) throws -> Double {
    try seconds {
      for _ in 0..<sweeps {
        try state.apply(gradient: UnsafeBufferPointer(gradient.buffer), to: parameters.buffer)
      }
    } * 1e6 / Double(sweeps)
  }
}

/// `train_c.c` built into a temporary directory, fed the same data and initial weights.
struct CReference {
  struct Run {
    var medianRate: Double
    var bestRate: Double
    var inferenceMicroseconds: Double
  }

  struct Unavailable: Error, CustomStringConvertible {
    var description: String
  }

  let directory: URL

  init(samples: Samples, initial: ParameterVector) throws {
    let source = URL(fileURLWithPath: TrainingBenchmark.referenceSource)
    guard FileManager.default.fileExists(atPath: source.path) else {
      throw Unavailable(description: "\(source.path) not found (run from the project root)")
    }
    directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("fedhost-train-c-\(getpid())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let compile = try ChildProcess.run("/usr/bin/env", ["gcc"] + TrainingBenchmark.cFlags
      + ["-o", directory.appendingPathComponent("train_c").path, source.path, "-lm"])
    guard compile.status == 0 else {
      removeFiles()
      throw Unavailable(description: "gcc failed or is missing: \(compile.output.prefix(200))")
    }
    try Self.initFile(samples: samples, initial: initial)
      .write(to: directory.appendingPathComponent("init.bin"))
  }

  /// The layout `train_c.c` reads: int32 N, every layer's W ([in][out]), then every bias,
  /// then N×9 features and N labels, all float32.
  static func initFile(samples: Samples, initial: ParameterVector) -> Data {
    var data = Data()
    func append<T>(_ values: [T]) { values.withUnsafeBytes { data.append(contentsOf: $0) } }
    append([Int32(samples.count)])
    let layers = MLPArchitecture.paper.layers
    for layer in layers { append(Array(initial.buffer[layer.weightOffset..<layer.biasOffset])) }
    for layer in layers { append(Array(initial.buffer[layer.biasOffset..<layer.end])) }
    append(samples.features)
    append(samples.labels.map(Float.init))
    return data
  }

  func run() throws -> Run {
    var environment = ProcessInfo.processInfo.environment
    environment["FTZ"] = "1"
    let result = try ChildProcess.run(directory.appendingPathComponent("train_c").path,
                                      [directory.appendingPathComponent("init.bin").path],
                                      environment: environment)
    guard let train = result.output.split(separator: "\n").first(where: { $0.hasPrefix("[fused] train:") }),
          let median = Self.number(in: train, before: " (median)"),
          let best = Self.number(in: train, before: " samples/s (best)"),
          let inference = result.output.split(separator: "\n").first(where: { $0.hasPrefix("inference") }),
          let forward = Self.number(in: inference, after: "best ")
    else { throw Unavailable(description: "unexpected train_c output: \(result.output.prefix(300))") }
    return Run(medianRate: median, bestRate: best, inferenceMicroseconds: forward)
  }

  func removeFiles() {
    try? FileManager.default.removeItem(at: directory)
  }

  static func number(in line: Substring, before marker: String) -> Double? {
    guard let end = line.range(of: marker)?.lowerBound else { return nil }
    return Double(line[..<end].split(separator: " ").last ?? "")
  }

  static func number(in line: Substring, after marker: String) -> Double? {
    guard let start = line.range(of: marker)?.upperBound else { return nil }
    return Double(line[start...].split(separator: " ").first ?? "")
  }
}
