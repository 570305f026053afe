import FedHostCore
import Foundation
import Synchronization
import Testing

/// Plugins on the host's worker threads (`fhp_host.parallel_for`, ABI 1.1): the host's side
/// checked by a plain-C probe plugin, and the project's plugins checked for giving the same
/// bits on one thread, on two, and under an ABI 1.0 host that has no `parallel_for`.
@Suite("Plugins on the host's threads (parallel_for)")
struct ParallelAggregationTests {
  /// Tests/Fixtures/plugins/parallel_probe.c, compiled with the system C compiler.
  static let probe = Result {
    try PluginFixture.compileCPlugin("Tests/Fixtures/plugins/parallel_probe.c", name: "ParallelProbe",
                                     standard: "c11", extraArguments: ["-lpthread"])
  }

  /// Runs the probe once on 3 clients; returns its log lines. The output must be the plain
  /// mean, computed here the way the probe's C does it. With `waitingForThreads` the probe's
  /// first task waits until that many tasks have started.
  private func runProbe(threads: Int, hostABIMinor: UInt32 = hostABIMinor, flushingSubnormals: Bool,
                        waitingForThreads: Int = 0) throws -> [String] {
    let lines = Mutex<[String]>([])
    let plugin = try Self.probe.get().makeInstance(configJSON: #"{"expect_threads":\#(waitingForThreads)}"#,
                                                   threads: threads, hostABIMinor: hostABIMinor) { _, line in
      lines.withLock { $0.append(line) }
    }
    var random = TestRandom(seed: 5)
    let global = random.vector(10_001)
    let updates = (0..<3).map { PluginFixture.update(UInt32($0), random.vector(10_001, scale: 0.1)) }
    let result = flushingSubnormals
      ? try FloatEnvironment.withSubnormalsFlushed { try PluginFixture.aggregate(plugin, global: global, updates) }
      : try PluginFixture.aggregate(plugin, global: global, updates)
    let expected = global.indices.map { element in
      Float(Double(global[element]) + updates.reduce(0.0) { $0 + Double($1.delta[element]) } / 3)
    }
    #expect(result.global == expected)
    return lines.withLock { $0 }
  }

  /// With two host threads on a machine with two cores, the probe's first task waits for a
  /// second to start, so both threads are seen to run tasks (and the float mode to reach both).
  @Test(arguments: [(1, false), (2, false), (2, true)])
  func everyTaskRunsOnceInTheCallersFloatModeOnTheHostsThreads(threads: Int, flushing: Bool) throws {
    // The probe itself fails the call if a task ran twice or never, saw another float mode than
    // the caller's, if a nested parallel_for did not run inline and in order, or if a NULL task
    // was not refused with FHP_E_INVALID.
    let expected = min(threads, WorkerPool.defaultThreadCount)
    let lines = try runProbe(threads: threads, flushingSubnormals: flushing, waitingForThreads: expected)
    let used = lines.compactMap { line -> Int? in
      guard line.hasPrefix("parallel_for: 64 tasks on ") else { return nil }
      return Int(line.split(separator: " ")[4])
    }
    #expect(used.count == 1, "log: \(lines)")
    #expect(used.first == expected, "log: \(lines)")
  }

  /// `host plugins validate` compares 1 thread, 2 threads and a 1.0 host: it passes the probe
  /// and catches a variant whose result changes without `parallel_for`, and one that reads
  /// `parallel_for` without checking the host's `struct_size`.
  @Test func validationCatchesAPluginWhoseBitsDependOnTheHost() throws {
    let check = "aggregate: same bits on 1 and 2 host threads and under an ABI 1.0 host"
    func outcome(_ library: PluginLibrary) -> PluginConformance.Outcome? {
      PluginConformance(library: library).run().first { $0.check == check }
    }
    let drifting = try PluginFixture.compileCPlugin("Tests/Fixtures/plugins/parallel_probe.c", name: "DriftingProbe",
                                                    standard: "c11",
                                                    extraArguments: ["-lpthread", "-DDRIFT_WITHOUT_PARALLEL_FOR"])
    #expect(try outcome(Self.probe.get())?.failure == nil)
    let failure = outcome(drifting)?.failure
    #expect(failure?.contains("an ABI 1.0 host (no parallel_for)") == true, "\(failure ?? "no failure")")
    let careless = try PluginFixture.compileCPlugin("Tests/Fixtures/plugins/parallel_probe.c", name: "CarelessProbe",
                                                    standard: "c11", extraArguments: ["-lpthread", "-DSKIP_HAS_MEMBER"])
    let carelessFailure = outcome(careless)?.failure
    #expect(carelessFailure?.contains("test FHP_HAS_MEMBER(host, fhp_host, parallel_for) first") == true,
            "\(carelessFailure ?? "no failure")")
  }

  @Test func anABI10HostOffersNoParallelFor() throws {
    #expect(try runProbe(threads: 2, hostABIMinor: 0, flushingSubnormals: false) == ["parallel_for: absent"])
  }

  /// 6 clients × 400,003 parameters (9.6 MB of deltas: several of the kernels' ~4 MiB
  /// tasks), two clients with coverage masks if `masked` (the kernels have separate masked
  /// paths), three rounds (MEFL carries state between them). The bits must not depend on the
  /// threads, nor on whether the host has threads.
  @Test(arguments: [("FedAvg", "{}", true), ("FedProx", "{}", true), ("SimilarityAware", "{}", true),
                    ("SimilarityAware", "{}", false), ("MEFLVariance", #"{"variance_mode": "v1"}"#, true),
                    ("MEFLVariance", #"{"variance_mode": "v2"}"#, true), ("MEFLVariance", #"{"variance_mode": "v3"}"#, false),
                    ("FedAvgM", #"{"server_momentum": 0.9}"#, true), ("FedAdam", "{}", true), ("FedYogi", "{}", false),
                    ("FedAdagrad", "{}", true), ("FedMedian", "{}", true), ("FedTrimmedAvg", #"{"beta": 0.3}"#, false),
                    ("Krum", "{}", true), ("MultiKrum", #"{"num_clients_to_keep": 3}"#, false),
                    ("Bulyan", #"{"num_malicious_clients": 0}"#, true), ("QFedAvg", "{}", true),
                    ("DPFedAvg", #"{"clipping_norm": 0.5, "noise_multiplier": 1}"#, true)])
  func sameBitsOnOneThreadTwoThreadsAndAnOlderHost(plugin name: String, config: String, masked: Bool) throws {
    var random = TestRandom(seed: 41)
    let count = 400_003
    let initialGlobal = random.vector(count)
    let drift = random.vector(count, scale: 0.02)
    func update(_ client: Int) -> ClientUpdate {
      let delta: [Float] = zip(drift, random.vector(count, scale: 0.01)).map(+)
      let coverage: [UInt8]? = masked && client % 3 == 2 ? random.mask(count, coverage: 0.7) : nil
      return PluginFixture.update(UInt32(client), delta, samples: UInt64(10 + client), coverage: coverage,
                                  metrics: ["query_loss": Double(random.below(100)) / 50,
                                            "grad_var": Double(random.below(100)) / 1000,
                                            "train_loss": Double(random.below(100)) / 40])
    }
    let rounds: [[ClientUpdate]] = (0..<3).map { _ in (0..<6).map(update) }
    func run(threads: Int, hostABIMinor: UInt32) throws -> [([Float], [Double])] {
      let plugin = try PluginFixture.library(name).makeInstance(configJSON: config, threads: threads,
                                                                hostABIMinor: hostABIMinor)
      var global = initialGlobal
      return try rounds.enumerated().map { round, updates in
        let result = try PluginFixture.aggregate(plugin, global: global, updates, round: round)
        global = result.global
        return (result.global, result.weights)
      }
    }
    let oneThread = try run(threads: 1, hostABIMinor: hostABIMinor)
    let twoThreads = try run(threads: 2, hostABIMinor: hostABIMinor)
    let olderHost = try run(threads: 2, hostABIMinor: 0)
    for round in oneThread.indices {
      #expect(oneThread[round].0 == twoThreads[round].0, "round \(round): outputs differ between 1 and 2 threads")
      #expect(oneThread[round].1 == twoThreads[round].1, "round \(round): weights differ between 1 and 2 threads")
      #expect(oneThread[round].0 == olderHost[round].0, "round \(round): outputs differ under an ABI 1.0 host")
      #expect(oneThread[round].1 == olderHost[round].1, "round \(round): weights differ under an ABI 1.0 host")
    }
  }

  /// Non-finite deltas in two tasks of one round (6 × 400,003 floats): on any number of
  /// threads each plugin names the first bad element in client and element order.
  @Test(arguments: ["FedAvg", "SimilarityAware", "MEFLVariance"])
  func theFirstNonFiniteDeltaIsNamedOnAnyNumberOfThreads(plugin name: String) throws {
    var random = TestRandom(seed: 3)
    let count = 400_003
    let global = random.vector(count)
    let updates = (0..<6).map { client -> ClientUpdate in
      var delta = random.vector(count, scale: 0.01)
      if client == 1 { delta[390_000] = .nan }
      if client == 4 { delta[12] = .infinity }
      return PluginFixture.update(UInt32(client), delta, samples: 10, metrics: ["query_loss": 0.5])
    }
    for threads in [1, 2] {
      let plugin = try PluginFixture.library(name).makeInstance(threads: threads)
      let message = PluginFixture.errorText { _ = try PluginFixture.aggregate(plugin, global: global, updates) }
      #expect(message?.contains("client 1: delta[390000] is nan") == true, "\(threads) threads: \(message ?? "no error")")
    }
  }
}
