import PluginAPI
import PluginKit

/// FedAdagrad (Reddi et al. 2021): Adagrad on the server over the pseudo-gradient, v ← v + Δ²,
/// w ← w + η·Δ/(√v + τ) (PluginKit's `ServerOptimizer`, rule `.adagrad`). State: m, v.
final class FedAdagradPlugin: ServerOptimizerPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.fedadagrad", name: "FedAdagrad", version: "1.0.0",
    summary: "Adagrad on the server over the mean client delta (FedOpt); elements no client covers keep their "
      + "weight and accumulated squares.",
    capabilities: [.aggregate, .state],
    configKeys: ConfigKey.fedOptKeys(eta: 0.1, etaL: 0.1, beta1: nil, beta2: nil, tau: 1e-3))

  var optimizer: ServerOptimizer

  init(config: PluginConfig, host: PluginHost) throws {
    optimizer = ServerOptimizer(rule: .adagrad(eta: try config.number("eta"), tau: try config.number("tau")))
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(FedAdagradPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
