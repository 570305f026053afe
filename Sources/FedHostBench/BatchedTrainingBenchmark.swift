import FedHostCore
import Foundation

/// Minibatch Adam training of the paper model (batch 16, the default preset's, and 64), one
/// thread, beside peers measured in the same run and interleaved with it: the batched C
/// reference `bench/reference/c/train_c_batched.c` (compiled here), PyTorch
/// (`bench/torch_batched.py`, `Adam(fused=True)`), and the machine's FP32 FMA peak
/// (`bench/reference/c/peak_fma_avx2.c`), against which training's dense FLOPs are put. The kernels'
/// `SIMD16<Float>` compiles to 512-bit FMAs where the CPU has AVX-512 (`-target-cpu native`), so the
/// AVX-512 peak of `../shared/bench/reference/c/peak_fma.c` is measured too where it builds: against
/// the AVX2 peak alone a batch-64 run measured above 100 %.
enum BatchedTrainingBenchmark {
  static let batchSizes = [16, 64]
  static let learningRate: Float = 1e-3  // the default preset's

  /// Dense FLOPs per trained sample: the forward pass 2·Σ in·out, the weight gradient 2·Σ in·out
  /// and the propagated delta 2·Σ in·out over every layer but the first (no delta below the
  /// input). Bias adds, activations, the loss and Adam (per batch, not per sample) are not counted.
  static func denseFlopsPerSample(_ architecture: MLPArchitecture) -> Int {
    let products = architecture.layers.map(\.weightCount)
    return 2 * products.reduce(0, +) * 2 + 2 * products.dropFirst().reduce(0, +)
  }

  static func run(quick: Bool) throws -> [BenchmarkRow] {
    let architecture = MLPArchitecture.paper
    let sampleCount = quick ? 1_024 : 4_096
    let runs = quick ? 2 : 5
    let epochsPerRun = 7  // as train_c_batched.c times its epochs
    let scriptRuns = quick ? 1 : 3
    let samples = TrainingBenchmark.makeSamples(count: sampleCount, width: architecture.inputWidth)
    let initial = architecture.initialParameters(seed: 1)
    var cPeer: CBinary?
    var peak: CBinary?
    var widePeak: CBinary?
    do {
      cPeer = try CBinary(source: "bench/reference/c/train_c_batched.c", flags: TrainingBenchmark.cFlags + ["-lm"])
      try CReference.initFile(samples: samples, initial: initial)
        .write(to: cPeer!.directory.appendingPathComponent("init.bin"))
    } catch {
      print("batched training benchmark: no C peer: \(error)")
    }
    do {
      peak = try CBinary(source: "bench/reference/c/peak_fma_avx2.c", flags: ["-O3", "-march=native"])
    } catch {
      print("batched training benchmark: no FMA peak: \(error)")
    }
    do {
      widePeak = try CBinary(source: "../shared/bench/reference/c/peak_fma.c", flags: ["-O3", "-march=native"])
    } catch {
      print("batched training benchmark: no AVX-512 FMA peak: \(error)")
    }
    defer {
      cPeer?.removeFiles()
      peak?.removeFiles()
      widePeak?.removeFiles()
    }
    var torch = batchSizes.map { batch in
      PythonPeer(label: "PyTorch bench/torch_batched.py, Adam fused=True", script: "bench/torch_batched.py",
                 arguments: [String(batch), "3"], pythonVariable: "FEDHOST_BENCH_PYTHON", venv: ".venv-bench")
    }
    let trainer = MLPTrainer(architecture: architecture)
    var fedhost = batchSizes.map { _ in [Double]() }
    var fedhostBest = batchSizes.map { _ in 0.0 }
    var cRates = batchSizes.map { _ in [Double]() }
    var peaks = [Double]()
    var widePeaks = [Double]()
    for run in 0..<runs {
      if let peak { peaks.append(try peak.number(before: nil, after: "peak_fp32_avx2_GFLOPs ")) }
      if let widePeak { widePeaks.append(try widePeak.number(before: nil, after: "peak_fp32_avx512_GFLOPs ")) }
      for (index, batch) in batchSizes.enumerated() {
        if let cPeer {
          cRates[index].append(try cPeer.number(
            arguments: [cPeer.directory.appendingPathComponent("init.bin").path, String(batch), String(learningRate)],
            before: " samples/s (median)", after: nil))
        }
        if run < scriptRuns { torch[index].measure() }
        let options = TrainingOptions(optimizer: .adam(learningRate: learningRate), batchSize: batch, shuffle: false)
        let parameters = initial.copy()
        _ = try trainer.train(parameters, on: samples, options: options)  // warm-up epoch
        let rates = try (0..<epochsPerRun).map { _ in
          Double(sampleCount) / (try seconds { _ = try trainer.train(parameters, on: samples, options: options) })
        }
        fedhost[index].append(median(rates))
        fedhostBest[index] = max(fedhostBest[index], rates.max()!)
      }
    }

    var rows = [BenchmarkRow]()
    let flops = Double(denseFlopsPerSample(architecture))
    /// One peak row (nothing if its binary did not build); returns the median and best.
    func peakRow(_ binary: CBinary?, _ values: [Double], vectors: String, source: String) -> Statistics {
      let statistics = Statistics(values, higherIsBetter: true)
      if binary != nil {
        rows.append(BenchmarkRow(
          section: "training", name: "FP32 FMA peak, \(vectors), 1 thread", unit: "GFLOP/s",
          fedhostMedian: statistics.median, fedhostMin: statistics.best, peer: nil, peerMedian: nil,
          note: "\(source) per run, \(values.count) runs interleaved with the training rows",
          higherIsBetter: true))
      }
      return statistics
    }
    let peakStatistics = peakRow(peak, peaks, vectors: "AVX2", source: "peak_fma_avx2.c (12 independent ymm chains), best of 7")
    let widePeakStatistics = peakRow(widePeak, widePeaks, vectors: "AVX-512",
                                     source: "../shared/bench/reference/c/peak_fma.c's zmm loop, best of 5")
    for (index, batch) in batchSizes.enumerated() {
      let name = "batch-\(batch) Adam, paper model, 1 thread"
      let rate = median(fedhost[index])
      let detail = "\(sampleCount) samples × \(epochsPerRun) epochs × \(runs) interleaved runs, lr \(learningRate)"
      if cPeer != nil {
        let ratios = zip(fedhost[index], cRates[index]).map { $0 / $1 }.sorted()
        rows.append(BenchmarkRow(
          section: "training", name: name, unit: "samples/s", fedhostMedian: rate, fedhostMin: fedhostBest[index],
          peer: "batched C reference train_c_batched.c (gcc -O3 -march=native -fno-math-errno, FTZ=1)",
          peerMedian: median(cRates[index]),
          note: detail + String(format: "; same-run ratio median %.2f× (range %.2f–%.2f)", median(ratios),
                                ratios.first!, ratios.last!), higherIsBetter: true))
      }
      rows.append(torch[index].row(
        section: "training", name: name, unit: "samples/s", fedhostMedian: rate, fedhostBest: fedhostBest[index],
        medianPath: ["train_adam_fused", "median_rate"], bestPath: ["train_adam_fused", "best_rate"],
        higherIsBetter: true, detail: "\(torch[index].records.count) run(s) × 3 epochs of 5000 samples"))
      rows.append(BenchmarkRow(
        section: "training", name: name, unit: "samples/s", fedhostMedian: rate, fedhostMin: fedhostBest[index],
        peer: "numpy np_mlp.py (reference)", peerMedian: nil,
        note: "not measured: the reference's numpy trainer runs batch 1 only", higherIsBetter: true))
      if peak != nil {
        let share = rate * flops / 1e9 / peakStatistics.median
        let wideShare = widePeak == nil ? ""
          : String(format: "; %.0f%% of the AVX-512 peak", rate * flops / 1e9 / widePeakStatistics.median * 100)
        rows.append(BenchmarkRow(
          section: "training", name: "batch-\(batch) training, dense FLOP rate", unit: "GFLOP/s",
          fedhostMedian: rate * flops / 1e9, fedhostMin: fedhostBest[index] * flops / 1e9,
          peer: "FP32 FMA peak, AVX2 (same run)", peerMedian: peakStatistics.median,
          note: String(format: "%.0f%% of peak at %d dense FLOPs per sample (forward 2·Σin·out, weight gradient "
                         + "2·Σin·out, propagated delta 2·Σin·out without the first layer; Adam not counted)",
                       share * 100, Int(flops)) + wideShare, higherIsBetter: true))
      }
    }
    return rows
  }
}

/// A C source from the repository compiled into a temporary directory, run as a child process.
struct CBinary {
  let directory: URL
  let executable: String

  init(source: String, flags: [String]) throws {
    guard FileManager.default.fileExists(atPath: source) else {
      throw BenchmarkFailure("\(source) not found (run from the project root)")
    }
    let name = ((source as NSString).lastPathComponent as NSString).deletingPathExtension
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("fedhost-\(name)-\(getpid())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    executable = directory.appendingPathComponent(name).path
    // Libraries (-l…) after the source, as the linker wants them.
    let libraries = flags.filter { $0.hasPrefix("-l") }
    let compile = try ChildProcess.run("/usr/bin/env", ["gcc"] + flags.filter { !$0.hasPrefix("-l") }
      + ["-o", executable, source] + libraries)
    guard compile.status == 0 else {
      try? FileManager.default.removeItem(at: directory)
      throw BenchmarkFailure("gcc failed or is missing for \(source): \(compile.output.prefix(200))")
    }
  }

  /// Runs the binary with FTZ=1 and returns the number on its first output line that has
  /// `before` after it or `after` before it.
  func number(arguments: [String] = [], before: String?, after: String?) throws -> Double {
    var environment = ProcessInfo.processInfo.environment
    environment["FTZ"] = "1"
    let result = try ChildProcess.run(executable, arguments, environment: environment)
    guard result.status == 0 else {
      throw BenchmarkFailure("\(executable) exited with \(result.status): \(result.lastLine)")
    }
    for line in result.output.split(separator: "\n") {
      if let before, line.contains(before), let value = CReference.number(in: line, before: before) { return value }
      if let after, line.contains(after), let value = CReference.number(in: line, after: after) { return value }
    }
    throw BenchmarkFailure("unexpected output of \(executable): \(result.output.prefix(300))")
  }

  func removeFiles() {
    try? FileManager.default.removeItem(at: directory)
  }
}
