import PluginAPI
import PluginKit

/// Bulyan (El Mhamdi et al. 2018), as Flower's: with n updates and f tolerated Byzantine
/// clients, Multi-Krum selects θ = n − 2f of them (`KrumSelection`); then per element the
/// β = θ − 2f selected values closest to their median are averaged
/// (`writeCoordinateWindowMeans(.closestToMedian)`; with masks over the c selected clients
/// covering the element, max(1, c − 2f) values). Fewer than 4f + 3 updates: like Flower, the
/// round is skipped (the global model is kept, a warning logged). Stateless.
/// out_weights: each client's share of the averaged values (0 for the rejected).
final class BulyanPlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.bulyan", name: "Bulyan", version: "1.0.0",
    summary: "Bulyan: Multi-Krum keeps n-2f deltas, then per element the n-4f closest to their median are "
      + "averaged; a round with fewer than 4f+3 updates keeps the global model.",
    capabilities: [.aggregate],
    configKeys: [.integer("num_malicious_clients", default: 0, in: 0...1_000_000, "f: Byzantine clients tolerated")])

  private let malicious: Int
  private let host: PluginHost

  init(config: PluginConfig, host: PluginHost) throws {
    malicious = Int(try config.integer("num_malicious_clients"))
    self.host = host
  }

  func aggregate(_ round: AggregationRound) throws {
    let clients = round.updates.count
    guard clients >= 4 * malicious + 3 else {
      host.log(.warn, "Bulyan round \(round.round): \(clients) updates, at least 4f+3 = \(4 * malicious + 3) needed; "
               + "the global model is kept")
      round.output.update(from: round.global, count: round.parameterCount)
      round.reportWeights([Double](repeating: 0, count: clients))
      return
    }
    let selected = try KrumSelection.select(round, malicious: malicious, keep: clients - 2 * malicious)
    let shares = try round.selecting(selected).writeCoordinateWindowMeans(.closestToMedian(trim: malicious))
    var weights = [Double](repeating: 0, count: clients)
    for (index, share) in zip(selected, shares) { weights[index] = share }
    round.reportWeights(weights)
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(BulyanPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
