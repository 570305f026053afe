import PluginAPI
import PluginKit

/// FedYogi (Reddi et al. 2021): Yogi's additive second moment on the server over the
/// pseudo-gradient (PluginKit's `ServerOptimizer`, rule `.yogi`). State: m, v.
final class FedYogiPlugin: ServerOptimizerPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.fedyogi", name: "FedYogi", version: "1.0.0",
    summary: "Yogi on the server over the mean client delta (FedOpt): v -= (1-beta_2)*d^2*sign(v-d^2); "
      + "elements no client covers keep their weight and moments.",
    capabilities: [.aggregate, .state],
    configKeys: ConfigKey.fedOptKeys(eta: 0.01, etaL: 0.0316, beta1: 0.9, beta2: 0.99, tau: 1e-3))

  var optimizer: ServerOptimizer

  init(config: PluginConfig, host: PluginHost) throws {
    optimizer = ServerOptimizer(rule: try .yogi(config))
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(FedYogiPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
