import PluginAPI
import PluginKit

/// Central DP-FedAvg with server-side fixed clipping (McMahan et al. 2018; Flower's
/// DifferentialPrivacyServerSideFixedClipping around FedAvg): every delta is scaled to norm
/// at most C, s_k = min(1, C/‖Δ_k‖), the clipped deltas are averaged by sample count, and
/// Gaussian noise N(0, (z·C/n)²) is added to every element of the result, n being the updates
/// of the round (Flower's num_sampled_clients):
///
///     w ← w + Σ_k p_k·s_k·Δ_k + N(0, (z·C/n)²)
///
/// With coverage masks the norm is over the covered elements, each element averages over the
/// clients covering it (Σ p_k·s_k·Δ_k / Σ_cover p_k), and elements nobody covers get neither
/// an update nor noise. The noise comes from the config's seed and the count of noisy rounds
/// so far (the saved state), so runs replay and resume bit for bit.
/// out_weights: each update's share p_k·s_k / Σ_j p_j·s_j of the noiseless update.
final class DPFedAvgPlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.dp-fedavg", name: "DPFedAvg (server-side fixed clipping)", version: "1.0.0",
    summary: "FedAvg of deltas clipped to norm clipping_norm plus seeded Gaussian noise of standard deviation "
      + "noise_multiplier*clipping_norm/n_updates on every covered element.",
    capabilities: [.aggregate, .state],
    configKeys: [
      .number("clipping_norm", default: 1.0, in: 1e-12...1e12, "C: every delta is scaled to L2 norm at most C"),
      .number("noise_multiplier", default: 0.0, in: 0...1e6,
              "z: noise std = z*C/n_updates; 0 (clipping only) by default, >= 1 for strong privacy"),
    ])

  private let clippingNorm: Double
  private let noiseMultiplier: Double
  private let seed: UInt64
  /// Rounds aggregated so far: the noise stream of the next round. Saved.
  private var releases: UInt64 = 0

  init(config: PluginConfig, host: PluginHost) throws {
    clippingNorm = try config.number("clipping_norm")
    noiseMultiplier = try config.number("noise_multiplier")
    seed = config.seed
  }

  func aggregate(_ round: AggregationRound) throws {
    let shares = FederatedAveraging.sampleWeights(round.updates)
    let clipped = try zip(shares, round.deltaSquaredNorms()).map { share, squaredNorm in
      share * min(1, clippingNorm / squaredNorm.squareRoot())
    }
    try round.writeGlobalPlusMean(weights: clipped, normalizingWeights: shares, step: 1)
    if noiseMultiplier > 0 {
      try round.addGaussianNoise(standardDeviation: noiseMultiplier * clippingNorm / Double(round.updates.count),
                                 seed: seed, stream: releases)
    }
    releases += 1
    let total = clipped.reduce(0, +)
    round.reportWeights(clipped.map { $0 / total })
  }

  func saveState(into writer: inout StateWriter) throws { writer.write(releases) }
  func loadState(from reader: inout StateReader) throws { releases = try reader.read() }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(DPFedAvgPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
