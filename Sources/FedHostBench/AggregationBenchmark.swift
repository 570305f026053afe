import FedHostCore
import Glibc

/// Aggregation throughput of the strategy plugins against the machine's own memory
/// bandwidth, measured in the same run: each plugin on one thread and on every core (the
/// plugins spread their work with the host's `parallel_for`), each run against the better of
/// one-thread and all-core copy bandwidth timed right before it.
///
/// Aggregation reads every client delta once and is memory-bound, so its honest yardstick
/// is a plain copy: rows report GB/s with bytes = clients·params·4 read + 2·params·4
/// (global read, output written), the STREAM convention, and the ratio to copy bandwidth.
/// Arrays are far larger than L3 so caches do not flatter either side. The plugins are
/// loaded through the host's loader, so the figures include everything a real round pays.
enum AggregationBenchmark {
  /// The plugins measured, by library name (the C example is a readable reference
  /// implementation, not a tuned strategy, and is not built by `swift build`).
  static let plugins = ["FedAvg", "FedProx", "SimilarityAware", "MEFLVariance"]
  /// How many times each plugin must read every delta: a client's weight in SimilarityAware
  /// (the cosine to the mean) and MEFLVariance (the variance and median) depends on all clients,
  /// and the weighted sum needs it. A plugin's bound is that many of FedAvg's one-read times.
  static let reads = ["FedAvg": 1, "FedProx": 1, "SimilarityAware": 2, "MEFLVariance": 2]

  static func run(quick: Bool, pluginDirectory: String) throws -> [BenchmarkRow] {
    let repetitions = quick ? 3 : 5
    // Every shape holds 100 M delta floats (400 MB), a quarter of that in quick mode:
    // still several times the 32 MB L3.
    let scale = quick ? 4 : 1
    let shapes = [(10, 10_000_000 / scale), (100, 1_000_000 / scale), (1_000, 100_000 / scale)]

    let threads = WorkerPool.defaultThreadCount
    let bandwidth = MemoryBandwidth(floats: 64_000_000 / scale, threads: threads)
    let copies = Statistics((0..<repetitions).map { _ in bandwidth.copy() }, higherIsBetter: true)
    let parallelCopies = Statistics(try (0..<repetitions).map { _ in try bandwidth.parallelCopy() }, higherIsBetter: true)
    let triads = Statistics((0..<repetitions).map { _ in bandwidth.triad() }, higherIsBetter: true)
    let arrays = "\(64 / scale) M floats per array"
    var rows = [
      BenchmarkRow(section: "aggregation", name: "copy bandwidth (memcpy, 1 thread)", unit: "GB/s",
                   fedhostMedian: copies.median, fedhostMin: copies.best, peer: nil, peerMedian: nil,
                   note: "\(arrays), read + write counted", higherIsBetter: true),
      BenchmarkRow(section: "aggregation", name: "copy bandwidth (memcpy, \(threads) threads)", unit: "GB/s",
                   fedhostMedian: parallelCopies.median, fedhostMin: parallelCopies.best, peer: nil,
                   peerMedian: nil, note: "same arrays, one contiguous part per thread", higherIsBetter: true),
      BenchmarkRow(section: "aggregation", name: "triad bandwidth (a = b + s·c, 1 thread)", unit: "GB/s",
                   fedhostMedian: triads.median, fedhostMin: triads.best, peer: nil,
                   peerMedian: nil, note: "same arrays as copy", higherIsBetter: true),
    ]
    let libraries = try plugins.compactMap { name -> (String, PluginLibrary)? in
      let path = "\(pluginDirectory)/lib\(name).so"
      guard access(path, R_OK) == 0 else { return nil }
      return (name, try PluginLibrary.open(path))
    }

    let fedAvg = libraries.first { $0.0 == "FedAvg" }?.1
    for (clients, parameters) in shapes {
      let workload = Workload(clients: clients, parameters: parameters)
      let bytes = Double(clients * parameters * 4 + 2 * parameters * 4)
      for (name, library) in libraries {
        for pluginThreads in Set([1, threads]).sorted() {
          let instance = try library.makeInstance(threads: pluginThreads)
          try workload.aggregate(instance)  // warm-up: page in the output, settle plugin state
          // The other plugins' bound: FedAvg on the same workload and threads.
          let oneRead = name == "FedAvg" ? nil : try fedAvg?.makeInstance(threads: pluginThreads)
          if let oneRead { try workload.aggregate(oneRead) }
          // Each run is paired with a copy (and FedAvg) timed right before it: this VM drifts
          // between speed states within seconds, and a ratio within a pair compares like with like.
          var rates = [Double](), yardsticks = [Double](), times = [Double](), oneReadTimes = [Double]()
          for _ in 0..<repetitions {
            yardsticks.append(try bandwidth.fasterCopy())
            if let oneRead { oneReadTimes.append(try seconds { try workload.aggregate(oneRead) }) }
            times.append(try seconds { try workload.aggregate(instance) })
            rates.append(bytes / times.last! / 1e9)
          }
          let stats = Statistics(rates, higherIsBetter: true)
          let ratios = zip(rates, yardsticks).map { $0 / $1 }.sorted()
          rows.append(BenchmarkRow(
            section: "aggregation",
            name: "\(name) aggregate \(clients) × \(parameters.formatted), \(pluginThreads) thread\(pluginThreads == 1 ? "" : "s")",
            unit: "GB/s", fedhostMedian: stats.median, fedhostMin: stats.best,
            peer: "copy bandwidth timed before each run (faster of 1 and \(threads) threads)",
            peerMedian: median(yardsticks),
            note: "ratio to copy \(percent(median(ratios))) (median of \(ratios.count) pairs, range "
              + "\(percent(ratios.first!))–\(percent(ratios.last!))); bytes = clients·params·4 + 2·params·4",
            higherIsBetter: true))
          if !oneReadTimes.isEmpty, let reads = reads[name] {
            rows.append(boundRow(name: name, shape: "\(clients) × \(parameters.formatted)", threads: pluginThreads,
                                 reads: reads, times: times, oneReadTimes: oneReadTimes))
          }
        }
      }
    }

    // Per-round cost of crossing the boundary: an aggregation of 1 client × 1 parameter.
    let tiny = Workload(clients: 1, parameters: 1)
    let calls = quick ? 2_000 : 20_000
    for (name, library) in libraries {
      let instance = try library.makeInstance()
      try tiny.aggregate(instance)
      let times = try (0..<repetitions).map { _ in
        try seconds { for _ in 0..<calls { try tiny.aggregate(instance) } } / Double(calls) * 1e6
      }
      let stats = Statistics(times, higherIsBetter: false)
      rows.append(BenchmarkRow(section: "aggregation", name: "\(name) call overhead (1 client × 1 param)", unit: "µs",
                               fedhostMedian: stats.median, fedhostMin: stats.best, peer: nil, peerMedian: nil,
                               note: "per aggregate through the host loader, \(calls) calls per repetition",
                               higherIsBetter: false))
    }
    return rows
  }

  /// A plugin's time beside its bound, `reads` × FedAvg's time on the same workload and threads,
  /// FedAvg timed right before each run; the ratio column is the plugin's share of its bound.
  private static func boundRow(name: String, shape: String, threads: Int, reads: Int, times: [Double],
                               oneReadTimes: [Double]) -> BenchmarkRow {
    let stats = Statistics(times.map { $0 * 1e3 }, higherIsBetter: false)
    let shares = zip(times, oneReadTimes).map { Double(reads) * $1 / $0 }.sorted()
    return BenchmarkRow(
      section: "aggregation",
      name: "\(name) aggregate \(shape), \(threads) thread\(threads == 1 ? "" : "s"), against its bound",
      unit: "ms", fedhostMedian: stats.median, fedhostMin: stats.best,
      peer: "\(reads) read\(reads == 1 ? "" : "s") × FedAvg's time (timed before each run)",
      peerMedian: Double(reads) * median(oneReadTimes) * 1e3,
      note: "share of the bound \(percent(median(shares))) (median of \(shares.count) pairs, range "
        + "\(percent(shares.first!))–\(percent(shares.last!)))", higherIsBetter: false)
  }

  private static func percent(_ fraction: Double) -> String { "\(Int((fraction * 100).rounded())) %" }
}

/// One aggregation input: a global model and `clients` updates with small, varied deltas
/// (and the metrics every plugin needs).
private struct Workload {
  let global: ParameterVector
  let output: ParameterVector
  let updates: [ClientUpdate]

  init(clients: Int, parameters: Int) {
    global = ParameterVector(count: parameters)
    output = ParameterVector(count: parameters)
    updates = (0..<clients).map { client in
      let delta = ParameterVector(count: parameters)
      let base = Float(client % 7 + 1) * 1e-3
      for index in 0..<parameters { delta[index] = base * Float(index % 13 + 1) }
      return ClientUpdate(clientID: UInt32(client), delta: delta, sampleCount: UInt64(10 + client % 50),
                          metrics: ["query_loss": 0.1 + Double(client % 5) * 0.05])
    }
  }

  func aggregate(_ instance: PluginInstance) throws {
    try instance.aggregate(round: 0, global: global, updates: updates, into: output)
  }
}

/// Copy (one thread and `threads` threads) and single-thread triad bandwidth over arrays far
/// larger than the last-level cache; each call times one pass.
private final class MemoryBandwidth {
  private let a: ParameterVector, b: ParameterVector, c: ParameterVector
  private let count: Int
  private let pool: WorkerPool
  private let parts: [Range<Int>]

  init(floats count: Int, threads: Int) {
    self.count = count
    a = ParameterVector(count: count)
    b = ParameterVector(count: count)
    c = ParameterVector(count: count)
    for index in 0..<count {
      b[index] = Float(index % 97)
      c[index] = Float(index % 89)
    }
    a.pointer.update(from: b.pointer, count: count)  // fault every page in before timing
    pool = WorkerPool(threadCount: threads)
    parts = (0..<threads).map { part in (count * part / threads)..<(count * (part + 1) / threads) }
  }

  /// GB/s of one memcpy of `b` into `a` on this thread (read + write counted).
  func copy() -> Double {
    Double(2 * count * 4) / seconds { a.pointer.update(from: b.pointer, count: count) } / 1e9
  }

  /// GB/s of the same copy, one contiguous part per pool thread.
  func parallelCopy() throws -> Double {
    Double(2 * count * 4) / (try seconds {
      _ = try pool.map(count: parts.count, makeState: { _ in () }) { [a, b, parts] _, part in
        (a.pointer + parts[part].lowerBound).update(from: b.pointer + parts[part].lowerBound, count: parts[part].count)
      }
    }) / 1e9
  }

  /// The yardstick: the faster of `copy()` and `parallelCopy()`, timed now.
  func fasterCopy() throws -> Double { max(copy(), try parallelCopy()) }

  /// GB/s of a = b + 3·c with 16-lane SIMD on this thread (three arrays counted).
  func triad() -> Double {
    let scalar = SIMD16<Float>(repeating: 3)
    return Double(3 * count * 4) / seconds {
      var index = 0
      while index + 16 <= count {
        let sum = UnsafeRawPointer(b.pointer).loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
          + scalar * UnsafeRawPointer(c.pointer).loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(a.pointer).storeBytes(of: sum, toByteOffset: index * 4, as: SIMD16<Float>.self)
        index += 16
      }
      while index < count {
        a[index] = b[index] + 3 * c[index]
        index += 1
      }
    } / 1e9
  }
}

extension Int {
  /// 10000000 → "10M", 100000 → "100k".
  fileprivate var formatted: String {
    if self >= 1_000_000, self % 1_000_000 == 0 { return "\(self / 1_000_000)M" }
    if self >= 1_000, self % 1_000 == 0 { return "\(self / 1_000)k" }
    return "\(self)"
  }
}
