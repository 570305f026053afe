import Glibc
import PluginAPI
import PluginKit

/// q-FedAvg (Li et al. 2020, q-FFL), as Flower's: with L = 1/client_learning_rate, client k's
/// loss F_k (metric "train_loss") and ε = 1e-10,
///
///     Δw_k = L·(w − w_k) = −L·Δ_k,   h_k = q·(F_k+ε)^(q−1)·‖Δw_k‖² + L·(F_k+ε)^q
///     w ← w − Σ_k (F_k+ε)^q·Δw_k / Σ_k h_k  =  w + Σ_k c_k·Δ_k,   c_k = L·(F_k+ε)^q / Σ_j h_j
///
/// a linear combination of the deltas whose coefficients need each client's squared norm (one
/// sweep, PluginKit's `deltaSquaredNorms`) before the weighted sum (a second). With coverage
/// masks the norms are over the covered elements, and each element takes the step
/// Σ_k c_k times the c-weighted mean over the clients covering it. out_weights: c_k / Σ_j c_j
/// (the step length Σ_j c_j is not a weight). Stateless.
final class QFedAvgPlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.qfedavg", name: "QFedAvg", version: "1.0.0",
    summary: "q-FedAvg (fair FL): clients with higher train_loss get more weight, (loss)^q, with Flower's "
      + "Lipschitz step L = 1/client_learning_rate.",
    capabilities: [.aggregate],
    configKeys: [
      .number("q", default: 0.1, in: 0...1000, "fairness exponent q (0: FedAvg-like step)"),
      .number("client_learning_rate", default: 0.1, in: 1e-12...1e6,
              "the clients' learning rate; L = 1/client_learning_rate (Flower requires it; 0.1 as FedOpt's eta_l)"),
    ])

  private let q: Double
  private let lipschitz: Double

  init(config: PluginConfig, host: PluginHost) throws {
    q = try config.number("q")
    lipschitz = 1 / (try config.number("client_learning_rate"))
  }

  func aggregate(_ round: AggregationRound) throws {
    let losses = try round.updates.map { update -> Double in
      let loss = try update.requiredMetric(FHP_METRIC_TRAIN_LOSS)
      guard loss >= 0 else { throw PluginFailure.invalid("client \(update.clientID): train_loss \(loss) is negative") }
      return loss + 1e-10
    }
    let norms = try round.deltaSquaredNorms()
    let h = zip(losses, norms).map { loss, norm in
      q * pow(loss, q - 1) * lipschitz * lipschitz * norm + lipschitz * pow(loss, q)
    }.reduce(0, +)
    let coefficients = losses.map { lipschitz * pow($0, q) / h }
    let step = coefficients.reduce(0, +)
    guard step > 0, step.isFinite else {
      throw PluginFailure.numeric("round \(round.round): the q-FedAvg step is \(step)")
    }
    let weights = coefficients.map { $0 / step }
    try round.writeGlobalPlusMean(weights: weights, step: step)
    round.reportWeights(weights)
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(QFedAvgPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
