import PluginAPI
import PluginKit

/// FedTrimmedAvg (Yin et al. 2018): per element, drop ⌊β·c⌋ of the c covering clients' deltas at
/// each end and average the rest, as Flower's `trim_mean`. Stateless. Kernel: PluginKit's
/// `writeCoordinateWindowMeans(.trimmed)`.
final class FedTrimmedAvgPlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.fedtrimmedavg", name: "FedTrimmedAvg", version: "1.0.0",
    summary: "Coordinate-wise trimmed mean: per element, floor(beta*c) of the c covering clients' deltas are "
      + "cut at each end; out_weights: each client's share of the kept values.",
    capabilities: [.aggregate],
    configKeys: [.number("beta", default: 0.2, in: 0...0.5, "fraction cut at each end, < 0.5")])

  private let beta: Double

  init(config: PluginConfig, host: PluginHost) throws {
    beta = try config.number("beta")
    guard beta < 0.5 else { throw PluginFailure.invalid("config key \"beta\" must be below 0.5; got \(beta)") }
  }

  func aggregate(_ round: AggregationRound) throws {
    round.reportWeights(try round.writeCoordinateWindowMeans(.trimmed(fraction: beta)))
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(FedTrimmedAvgPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
