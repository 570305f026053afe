import PluginAPI
import PluginKit

/// FedMedian (Yin et al. 2018): the coordinate-wise median of the client deltas (numpy's: the
/// mean of the two middle values for an even count), per element over the covering clients.
/// Stateless. Kernel: PluginKit's `writeCoordinateWindowMeans(.median)`.
final class FedMedianPlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.fedmedian", name: "FedMedian", version: "1.0.0",
    summary: "Coordinate-wise median of the client deltas, per element over the clients covering it; "
      + "out_weights: each client's share of the medians.",
    capabilities: [.aggregate])

  init(config: PluginConfig, host: PluginHost) {}

  func aggregate(_ round: AggregationRound) throws {
    round.reportWeights(try round.writeCoordinateWindowMeans(.median))
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(FedMedianPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
