import PluginAPI
import PluginKit

/// Fed-Meta-Align (seed paper 002): Phase 1 serial meta-initialization (Algorithm 2) as an
/// INITIALIZER and Phase 2 similarity-aware aggregation (Algorithm 3) as an AGGREGATOR.
///
/// Aggregation, per round, for clients t with deltas Δ_t and query losses L_t:
///
///     s_t = 1 / (1 + L_t)                       query score (metric "query_loss")
///     Δ̄  = (1/|C|) Σ_t Δ_t                      plain, unweighted mean (the paper's "average")
///     θ_t = cos(Δ_t, Δ̄)                         in Double; 0 if either vector is zero
///     w_t = s_t · max(c, θ_t),  ŵ_t = w_t / Σ_j w_j
///     global ← global + α Σ_t ŵ_t Δ_t
///
/// With coverage masks: Δ̄ is the plain mean per element over the clients covering it;
/// θ_t is taken over the elements client t covers (its sub-model); and the final sum
/// renormalizes ŵ per element over the covering clients, so elements nobody covers keep
/// the global value. Δ̄ is rounded to float32 before the cosines; the sums are in Double.
final class SimilarityAwarePlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.similarity-aware", name: "SimilarityAware (Fed-Meta-Align)", version: "1.0.0",
    summary: "Fed-Meta-Align: serial meta-initialization over a seeded client order per round, then "
      + "aggregation weighted by query score 1/(1+query_loss) times max(floor, cosine to the mean delta).",
    capabilities: [.aggregate, .initialize, .state],
    configKeys: [
      .number("similarity_floor", default: 0.1, in: 0...1,
              "c: lower bound of the cosine term in w_t = s_t*max(c, cos(delta_t, mean delta))"),
      .number("server_learning_rate", default: 1.0, in: 0...1000,
              "alpha: global += alpha * sum_t w_t*delta_t"),
      .integer("serial_rounds", default: 10, in: 0...1_000_000,
               "R_serial: rounds of serial meta-initialization, each over every client in a fresh random order"),
      .integer("serial_epochs", default: 1, in: 1...1_000_000,
               "E_serial: epochs each client trains the passed-along model per serial round"),
    ])

  private let similarityFloor: Double
  private let serverLearningRate: Double
  private let serialRounds: Int
  private let serialEpochs: Int
  private let host: PluginHost
  /// Draws the client order of each serial round; saved with the state.
  private var generator: SeededGenerator

  init(config: PluginConfig, host: PluginHost) throws {
    similarityFloor = try config.number("similarity_floor")
    serverLearningRate = try config.number("server_learning_rate")
    serialRounds = Int(try config.integer("serial_rounds"))
    serialEpochs = Int(try config.integer("serial_epochs"))
    generator = SeededGenerator(seed: config.seed)
    self.host = host
  }

  // MARK: Phase 2: similarity-aware aggregation (Algorithm 3)

  func aggregate(_ round: AggregationRound) throws {
    // Scores first: a missing metric should fail before any pass over the deltas.
    let scores = try round.updates.map { update -> Double in
      let loss = try update.requiredMetric(FHP_METRIC_QUERY_LOSS)
      guard loss > -1 else {
        throw PluginFailure.invalid("client \(update.clientID): query_loss \(loss) gives no score 1/(1+L) (needs L > -1)")
      }
      return 1 / (1 + loss)
    }
    // Two sweeps over the deltas: the mean and the cosines together, then the weighted sum.
    let uniform = FederatedAveraging.uniformWeights(round.updates)
    let similarities = try round.compareUpdatesWithWeightedMean(weights: uniform, measuringDistance: false)
      .map(\.cosine)

    let rawWeights = zip(scores, similarities).map { score, cosine in score * max(similarityFloor, cosine) }
    let total = rawWeights.reduce(0, +)
    guard total > 0, total.isFinite else {
      throw PluginFailure.numeric("round \(round.round): the weights sum to \(total) (every cosine is <= 0 and "
                                  + "similarity_floor is 0?); nothing to normalize")
    }
    let weights = rawWeights.map { $0 / total }
    try round.writeGlobalPlusMean(weights: weights, step: serverLearningRate)
    round.reportWeights(weights)
  }

  // MARK: Phase 1: serial meta-initialization (Algorithm 2)

  func initialize(_ services: InitializerServices, weights: UnsafeMutableBufferPointer<Float>) throws {
    guard services.clientCount > 0 else {
      host.log(.warn, "serial meta-initialization: no clients, the model is unchanged")
      return
    }
    for serialRound in stride(from: 1, through: serialRounds, by: 1) {
      let order = generator.permutation(of: services.clientCount)
      host.log(.debug, "serial meta-initialization round \(serialRound)/\(serialRounds): client order \(order)")
      for client in order {
        let trainLoss = try services.trainClient(client, weights: weights, epochs: serialEpochs)
        guard weights.allSatisfy(\.isFinite) else {
          throw PluginFailure.numeric("serial round \(serialRound): training on client \(client) produced non-finite weights")
        }
        // Diagnostics only, as in the paper: the query split does not steer the tour.
        let query = try services.evaluateClient(client, weights: UnsafeBufferPointer(weights))
        host.log(.debug, "serial round \(serialRound) client \(client): train loss \(trainLoss), "
                 + "query loss \(query.loss), query accuracy \(query.accuracy)")
      }
    }
  }

  // MARK: State: the generator (aggregation itself keeps nothing between rounds)

  func saveState(into writer: inout StateWriter) throws {
    writer.write(generator)
  }

  func loadState(from reader: inout StateReader) throws {
    generator = try reader.read()
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(SimilarityAwarePlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
