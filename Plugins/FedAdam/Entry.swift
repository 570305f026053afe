import PluginAPI
import PluginKit

/// FedAdam (Reddi et al. 2021): Adam on the server over the pseudo-gradient (FedAvg's mean
/// delta), with Flower's bias correction (PluginKit's `ServerOptimizer`, rule `.adam`). State: m, v.
final class FedAdamPlugin: ServerOptimizerPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.fedadam", name: "FedAdam", version: "1.0.0",
    summary: "Adam on the server over the mean client delta (FedOpt); elements no client covers keep their "
      + "weight and moments.",
    capabilities: [.aggregate, .state],
    configKeys: ConfigKey.fedOptKeys(eta: 0.1, etaL: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3))

  var optimizer: ServerOptimizer

  init(config: PluginConfig, host: PluginHost) throws {
    optimizer = ServerOptimizer(rule: try .adam(config))
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(FedAdamPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
