import PluginAPI
import PluginKit

/// FedAvg (McMahan et al. 2017): the sample-weighted mean of the client deltas added to the
/// global model; with coverage masks each element is averaged over the clients that cover
/// it (HeteroFL). Stateless. The kernel lives in PluginKit (`FederatedAveraging`), shared
/// with FedProx, whose server step is the same.
final class FedAvgPlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.fedavg", name: "FedAvg", version: "1.0.0",
    summary: "Sample-weighted mean of the client deltas (FedAvg); with coverage masks each element "
      + "is averaged over the clients that trained it and kept where none did (HeteroFL).",
    capabilities: [.aggregate])

  init(config: PluginConfig, host: PluginHost) {}

  func aggregate(_ round: AggregationRound) throws {
    try FederatedAveraging.aggregate(round)
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(FedAvgPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
