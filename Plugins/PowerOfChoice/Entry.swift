import PluginAPI
import PluginKit

/// Power-of-Choice client selection (Cho, Wang and Joshi 2020, π_pow-d): each round, d
/// candidates are drawn without replacement with probability proportional to their training
/// rows, the global model's loss is computed on each candidate's training rows, and the m with
/// the highest loss train (ties to the lower id). The server then takes the plain mean of the
/// chosen deltas, as the paper does (selection already favours large clients), each element
/// over the clients covering it. Draws come from the seed and the round number, so the
/// plugin keeps no state. Needs a 1.2 host for the selection (an older host samples itself).
/// out_weights: 1/m each.
final class PowerOfChoicePlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.power-of-choice", name: "Power-of-Choice", version: "1.0.0",
    summary: "Biased client selection (Cho et al. 2020): of d candidates drawn by data size, the m with the highest "
      + "loss on the global model train; the server averages their deltas.",
    capabilities: [.aggregate, .selectClients],
    configKeys: [
      .integer("candidates", default: 0, in: 0...1_000_000,
               "d: candidates drawn per round (at least the clients per round m); 0: min(clients, 2m)"),
    ])

  private let candidates: Int
  private let seed: UInt64

  init(config: PluginConfig, host: PluginHost) throws {
    candidates = Int(try config.integer("candidates"))
    seed = config.seed
  }

  func selectClients(_ round: RoundContextView, global: UnsafeBufferPointer<Float>, count: Int) throws -> [UInt32] {
    guard let sizes = round.sampleCounts, sizes.count == round.clientCount, count <= round.clientCount else {
      throw PluginFailure.invalid("select_clients: the round context describes no clients")
    }
    let drawn = min(round.clientCount, candidates == 0 ? 2 * count : candidates)
    guard drawn >= count else {
      throw PluginFailure.invalid("candidates \(candidates) is below the \(count) clients per round")
    }
    // Weighted draws without replacement: each draw picks among the clients left, by rows.
    var generator = SeededGenerator(seed: seed, streams: UInt64(round.round))
    var remaining = Array(0..<round.clientCount)
    var pool: [UInt32] = []
    for _ in 0..<drawn {
      let total = remaining.reduce(0.0) { $0 + Double(sizes[$1]) }
      var target = generator.nextUnitInterval() * total
      var pick = remaining.count - 1
      for (position, client) in remaining.enumerated() {
        target -= Double(sizes[client])
        if target < 0 { pick = position; break }
      }
      pool.append(UInt32(remaining.remove(at: pick)))
    }
    let losses = try pool.map { try round.clientLoss($0) }
    let ranked = zip(pool, losses).sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
    return ranked.prefix(count).map(\.0)
  }

  func aggregate(_ round: AggregationRound) throws {
    try FederatedAveraging.aggregateUniformly(round)
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(PowerOfChoicePlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
