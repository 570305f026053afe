import PluginAPI
import PluginKit

/// FedAvgM (Hsu et al. 2019): FedAvg's mean delta Δ fed to server momentum,
/// m ← μ·m + Δ, w ← w + η_s·m (PluginKit's `ServerOptimizer`, rule `.momentum`).
/// Flower's defaults (η_s = 1, μ = 0) make it FedAvg. State: m.
final class FedAvgMPlugin: ServerOptimizerPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.fedavgm", name: "FedAvgM", version: "1.0.0",
    summary: "FedAvg with server momentum: m = server_momentum*m + mean delta, global += server_learning_rate*m; "
      + "elements no client covers keep their weight and momentum.",
    capabilities: [.aggregate, .state],
    configKeys: [
      .number("server_learning_rate", default: 1.0, in: 0...1e6, "server learning rate eta_s"),
      .number("server_momentum", default: 0.0, in: 0...1, "server momentum mu"),
    ])

  var optimizer: ServerOptimizer

  init(config: PluginConfig, host: PluginHost) throws {
    optimizer = ServerOptimizer(rule: .momentum(learningRate: try config.number("server_learning_rate"),
                                                momentum: try config.number("server_momentum")))
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(FedAvgMPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
