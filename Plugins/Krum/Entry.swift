import PluginAPI
import PluginKit

/// Krum (Blanchard et al. 2017): the one client whose summed squared distance to its n − f − 2
/// nearest others is lowest becomes the new global model's delta (PluginKit's `KrumSelection`).
/// Stateless. out_weights: 1 for the chosen client, 0 for the others.
final class KrumPlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.krum", name: "Krum", version: "1.0.0",
    summary: "Krum: the delta with the lowest sum of squared distances to its n-f-2 nearest others is applied "
      + "(uncovered elements count as 0 in distances and keep global's value).",
    capabilities: [.aggregate],
    configKeys: [.integer("num_malicious_clients", default: 0, in: 0...1_000_000, "f: Byzantine clients tolerated")])

  private let malicious: Int

  init(config: PluginConfig, host: PluginHost) throws {
    malicious = Int(try config.integer("num_malicious_clients"))
  }

  func aggregate(_ round: AggregationRound) throws {
    try KrumSelection.aggregate(round, malicious: malicious, keep: 1)
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(KrumPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
