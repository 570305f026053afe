import FedHostCore
import Glibc

/// What calling a plugin in a child plugin-host process costs per call, beside the same call
/// in process, measured interleaved in the same run (isolated and in-process repetitions
/// alternate, so both see the same speed state of the VM). The child is the `host` binary
/// next to the plugins.
enum IsolationBenchmark {
  static func run(quick: Bool, pluginDirectory: String) throws -> [BenchmarkRow] {
    let repetitions = quick ? 3 : 7
    let isolation = PluginIsolation.process(hostExecutable: pluginDirectory + "/host")
    let fedAvg = try PluginLibrary.open(pluginDirectory + "/libFedAvg.so")
    let fedProx = try PluginLibrary.open(pluginDirectory + "/libFedProx.so")
    var rows: [BenchmarkRow] = []

    for (clients, parameters, label, calls) in [(1, 1, "1 × 1", quick ? 500 : 5_000),
                                                (10, 10_000, "10 × 10,000", quick ? 100 : 1_000),
                                                (10, 1_000_000, "10 × 1,000,000", quick ? 5 : 20)] {
      let (global, updates) = workload(clients: clients, parameters: parameters)
      let output = ParameterVector(count: parameters)
      rows.append(try compare(
        "FedAvg aggregate \(label)", calls: calls, repetitions: repetitions,
        instances: (try fedAvg.makeInstance(isolation: isolation), try fedAvg.makeInstance(isolation: .none)),
        note: "includes the host's sentinel fill and output check in both; isolated copies the inputs into "
          + "and the output out of the shared arena") { instance in
        try instance.aggregate(round: 0, global: global, updates: updates, into: output)
      })
    }

    // One optimizer step's hook on the paper's model (46,637 parameters).
    let (global, updates) = workload(clients: 2, parameters: 46_637)
    let gradient = ParameterVector(count: 46_637)
    rows.append(try compare(
      "FedProx adjust_gradient, 46,637 params", calls: quick ? 200 : 2_000, repetitions: repetitions,
      instances: (try fedProx.makeInstance(isolation: isolation), try fedProx.makeInstance(isolation: .none)),
      note: "once per optimizer step; isolated copies w_local, w_global and the gradient in, the gradient out") { instance in
      try instance.adjustGradient(clientID: 0, local: updates[0].delta.pointer, global: global.pointer,
                                  gradient: gradient.pointer, count: gradient.count)
    })

    // Starting a child and creating an instance there, against creating it in process.
    let starts = quick ? 3 : 10
    var isolatedStarts = [Double](), localStarts = [Double]()
    for _ in 0..<repetitions {
      isolatedStarts.append(try seconds { for _ in 0..<starts { _ = try fedAvg.makeInstance(isolation: isolation) } } / Double(starts) * 1e3)
      localStarts.append(try seconds { for _ in 0..<starts { _ = try fedAvg.makeInstance(isolation: .none) } } / Double(starts) * 1e3)
    }
    let startStats = Statistics(isolatedStarts, higherIsBetter: false)
    rows.append(BenchmarkRow(section: "isolation", name: "FedAvg instance created and destroyed", unit: "ms",
                             fedhostMedian: startStats.median, fedhostMin: startStats.best, peer: "in process, same run",
                             peerMedian: median(localStarts),
                             note: "isolated: in the child the previous instance left (a healthy child serves the next "
                               + "instance of its plugin; only the first starts `host plugins serve`)",
                             higherIsBetter: false))
    return rows
  }

  /// µs per call, isolated (FedHost column) against in process (peer column), interleaved.
  private static func compare(_ name: String, calls: Int, repetitions: Int,
                              instances: (isolated: PluginInstance, local: PluginInstance), note: String,
                              _ call: (PluginInstance) throws -> Void) throws -> BenchmarkRow {
    try call(instances.isolated)  // warm-up: open a lane, map its arena, page it in
    try call(instances.local)
    var isolated = [Double](), local = [Double]()
    for _ in 0..<repetitions {
      isolated.append(try seconds { for _ in 0..<calls { try call(instances.isolated) } } / Double(calls) * 1e6)
      local.append(try seconds { for _ in 0..<calls { try call(instances.local) } } / Double(calls) * 1e6)
    }
    let stats = Statistics(isolated, higherIsBetter: false)
    return BenchmarkRow(section: "isolation", name: name + " per call (isolated)", unit: "µs",
                        fedhostMedian: stats.median, fedhostMin: stats.best, peer: "in process, same run",
                        peerMedian: median(local), note: note + "; \(calls) calls per repetition",
                        higherIsBetter: false)
  }

  private static func workload(clients: Int, parameters: Int) -> (ParameterVector, [ClientUpdate]) {
    let global = ParameterVector((0..<parameters).map { (index: Int) -> Float in Float(index % 17) * 0.01 })
    let updates = (0..<clients).map { (client: Int) -> ClientUpdate in
      let delta = ParameterVector((0..<parameters).map { (index: Int) -> Float in Float((index + client) % 13) * 1e-3 })
      return ClientUpdate(clientID: UInt32(client), delta: delta, sampleCount: UInt64(10 + client),
                          metrics: ["query_loss": 0.2])
    }
    return (global, updates)
  }
}
