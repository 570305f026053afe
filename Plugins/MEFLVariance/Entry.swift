import PluginAPI
import PluginKit
import Synchronization

/// MEFL (Tang et al., Entropy 2025), as reconstructed in docs algorithms.md §1.
///
/// Server — EOA (§1.3). Deltas Δ_k = −g_k. The EMA direction is kept in delta convention
/// (m_Δ = −m), which leaves every cosine and distance unchanged. Per round:
///  1. reference r = m_Δ if initialized and nonzero, else this round's FedAvg mean delta;
///  2. s_k = max(cos(Δ_k, r), s_min);
///  3. u_k: V1 ‖Δ_k − r‖²/d_k; V2 μ_k ← λμ_k + (1−λ)Δ_k (μ_k starts at 0), u_k = ‖Δ_k − μ_k‖²/d_k;
///     V3 the client's reported "grad_var";
///  4. v_k = u_k the first time, else γ v_k + (1−γ) u_k;
///  5. ω_k = s_k / (v_k + ε), ε = ε_rel·median(v over this round's clients) + ε_abs
///     (× n_k if weight_by_samples);
///  6. q_k = ω_k/Σω, or FedAvg's p_k when Σω is not positive and finite;
///  7. D_Δ = Σ q_k Δ_k (per element over covering clients), global ← global + η_g·D_Δ;
///  8. afterwards (A3) m_Δ = D_Δ the first time, else β_m m_Δ + (1−β_m) D_Δ.
/// d_k is the number of elements client k covers; cosines and distances run over them only.
///
/// Client — Meta-GDP (§1.2), first-order Meta-SGD through `train_local`:
///   φ_0 = θ; φ_{j+1} = φ_j − α ⊙ ∇L_support(φ_j; b_j) for J steps on seeded mini-batches;
///   G_θ = ∇L_query(φ_J); G_α = −G_θ ⊙ Σ_j ∇L_support(φ_j; b_j); θ ← θ − β_loc·G_θ.
/// α is ONE vector per plugin instance (FedMeta's federated α), initialized to the constant
/// alpha_init. It is only READ during `train_local`, which runs concurrently for many
/// clients: each call stores its G_α, and `aggregate` applies
///   α ← α − η_g·β_loc·Σ_k q̃_k G_α,k
/// with the EOA weights q renormalized over the clients that sent one — the α half of
/// §1.3 step 7 (Δα_k = −β_loc·G_α,k). Mini-batches come from a generator per
/// (seed, round, client), so the result is the same for any thread count.
///
/// Files: this one holds the config and the state's fields; EOAAggregation.swift the server,
/// MetaGDPClient.swift the client, State.swift save/load. Reusable pieces live in PluginKit
/// (`compareUpdates`, `WeightedDeltaSum`, `CoordinateVariance`, `distinctRows`, `median(of:)`).
final class MEFLVariancePlugin: FedHostPlugin, @unchecked Sendable {
  static let metadata = PluginMetadata(
    id: "org.fedhost.mefl-variance", name: "MEFL-EOA + Meta-GDP", version: "1.0.0",
    summary: "MEFL: server weights clients by max(cos to the EMA direction, floor) / (EMA variance + eps); "
      + "clients run first-order Meta-SGD with a shared, server-updated learning-rate vector alpha.",
    capabilities: [.aggregate, .trainLocal, .state],
    configKeys: [
      .string("variance_mode", default: "v1", choices: ["v1", "v2", "v3"],
              "variance observation: v1 distance to the reference, v2 distance to the client's EMA, v3 client-reported grad_var"),
      .number("direction_ema", default: 0.9, in: 0...1, "beta_m: EMA factor of the global update direction m"),
      .number("variance_ema", default: 0.9, in: 0...1, "gamma: EMA factor of each client's variance v_k"),
      .number("mean_ema", default: 0.9, in: 0...1, "lambda: EMA factor of each client's mean delta (v2 only)"),
      .number("similarity_floor", default: 0.1, in: 0...1, "s_min: lower bound of the cosine similarity"),
      .number("epsilon_relative", default: 1e-8, in: 0...1, "eps = epsilon_relative * median(v_k) + epsilon_absolute"),
      .number("epsilon_absolute", default: 1e-12, in: 0...1, "absolute part of eps"),
      .number("server_learning_rate", default: 1.0, in: 0...1000, "eta_g: global += eta_g * sum_k q_k delta_k"),
      .boolean("weight_by_samples", default: false, "multiply each raw weight by the client's sample count"),
      .integer("inner_steps", default: 5, in: 1...10_000, "J: inner Meta-SGD steps on support mini-batches"),
      .integer("inner_batch_size", default: 10, in: 1...1_000_000, "rows per support mini-batch"),
      .integer("outer_steps", default: 1, in: 1...1_000, "E_out: meta steps per round"),
      .number("meta_learning_rate", default: 1e-3, in: 0...1000, "beta_loc: theta -= beta_loc * G_theta"),
      .number("alpha_init", default: 0.01, in: -1000...1000, "initial value of every element of alpha"),
      .boolean("learn_alpha", default: true, "update alpha from the clients' alpha-gradients (else keep it fixed)"),
    ],
    stateVersion: 1)

  /// The metric V3 reads: mean over coordinates of the variance of the support gradients.
  static let gradientVarianceMetric = "grad_var"

  enum VarianceMode: String { case v1, v2, v3 }

  /// What EOA remembers about one client.
  struct ClientRecord {
    var variance = 0.0
    var seen = false
    /// μ_k (V2 only), empty until the client's first round.
    var meanDelta: [Float] = []
  }

  /// State `train_local` touches from many threads at once.
  struct SharedState {
    var alpha: [Float] = []
    var pendingAlphaGradients: [UInt32: [Float]] = [:]
  }

  // Config.
  let varianceMode: VarianceMode
  let directionDecay, varianceDecay, meanDecay: Double
  let similarityFloor, epsilonRelative, epsilonAbsolute, serverLearningRate: Double
  let weightBySamples: Bool
  let innerSteps, innerBatchSize, outerSteps: Int
  let metaLearningRate: Float
  let alphaInit: Float
  let learnAlpha: Bool
  let host: PluginHost

  // State, changed only in [serialized] calls (aggregate, load_state).
  var seed: UInt64
  var roundCount: UInt64 = 0
  var direction: [Float] = []
  /// Whether `direction` can serve as the reference (derived, not saved).
  var directionHasNonzeroElement = false
  /// The previous round's direction buffer, reused for the next one (scratch, not saved).
  var spareDirection: [Float] = []
  /// V2: the μ_k arrays the previous round replaced, reused for the next one (not saved).
  var spareMeanDeltas: [[Float]] = []
  var clients: [UInt32: ClientRecord] = [:]
  let shared = Mutex(SharedState())

  init(config: PluginConfig, host: PluginHost) throws {
    varianceMode = VarianceMode(rawValue: try config.string("variance_mode")) ?? .v1
    directionDecay = try config.number("direction_ema")
    varianceDecay = try config.number("variance_ema")
    meanDecay = try config.number("mean_ema")
    similarityFloor = try config.number("similarity_floor")
    epsilonRelative = try config.number("epsilon_relative")
    epsilonAbsolute = try config.number("epsilon_absolute")
    serverLearningRate = try config.number("server_learning_rate")
    weightBySamples = try config.boolean("weight_by_samples")
    innerSteps = Int(try config.integer("inner_steps"))
    innerBatchSize = Int(try config.integer("inner_batch_size"))
    outerSteps = Int(try config.integer("outer_steps"))
    metaLearningRate = Float(try config.number("meta_learning_rate"))
    alphaInit = Float(try config.number("alpha_init"))
    learnAlpha = try config.boolean("learn_alpha")
    seed = config.seed
    self.host = host
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(MEFLVariancePlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
