import PluginAPI
import PluginKit

/// Multi-Krum (El Mhamdi et al. 2018): the m clients with the lowest Krum scores, averaged by
/// sample count (PluginKit's `KrumSelection`). Stateless. out_weights: n_k renormalized over the
/// chosen clients, 0 for the others.
final class MultiKrumPlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.multikrum", name: "MultiKrum", version: "1.0.0",
    summary: "Multi-Krum: the num_clients_to_keep deltas with the lowest Krum scores, sample-weighted mean "
      + "(uncovered elements count as 0 in distances; averaged over the chosen clients covering them).",
    capabilities: [.aggregate],
    configKeys: [
      .integer("num_malicious_clients", default: 0, in: 0...1_000_000, "f: Byzantine clients tolerated"),
      .integer("num_clients_to_keep", default: 1, in: 1...1_000_000, "m: clients averaged (all if fewer reply)"),
    ])

  private let malicious: Int
  private let keep: Int

  init(config: PluginConfig, host: PluginHost) throws {
    malicious = Int(try config.integer("num_malicious_clients"))
    keep = Int(try config.integer("num_clients_to_keep"))
  }

  func aggregate(_ round: AggregationRound) throws {
    try KrumSelection.aggregate(round, malicious: malicious, keep: keep)
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(MultiKrumPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
