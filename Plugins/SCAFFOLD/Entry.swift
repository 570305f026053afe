import PluginAPI
import PluginKit

/// SCAFFOLD (Karimireddy et al. 2020, option II): local SGD corrected by control variates,
/// which remove the client drift that non-IID data causes.
///
/// Client i, starting from x with its control c_i and the server's c, runs K steps of
/// y ← y − η·(g(y) + c − c_i) over the host's epochs and minibatches, then sends its delta
/// y − x and Δc_i = (x − y)/(K·η) − c. The server steps x ← x + η_g·mean_i(y_i − x) (each
/// element over the clients covering it), c_i ← c_i + Δc_i and c ← c + Σ_i Δc_i / N, N the
/// federation's size.
///
/// The controls travel as ABI 1.2 auxiliary vectors (down: c_i then c; up: Δc_i), so the
/// server (which keeps c and every c_i it has seen, in its saved state) and the clients never
/// share memory: the strategy runs the same isolated, in process or distributed. Needs a 1.2
/// host (round and client contexts). out_weights: 1/K for each of the K updates.
final class SCAFFOLDPlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.scaffold", name: "SCAFFOLD", version: "1.0.0",
    summary: "Control-variate corrected local SGD (SCAFFOLD, option II): clients step with g + c - c_i, "
      + "the server averages the deltas and updates c and c_i from the clients' control updates.",
    capabilities: [.aggregate, .prepareClient, .trainLocal, .state],
    configKeys: [
      .number("server_learning_rate", default: 1, in: 1e-6...1e3, "eta_g: the server's step on the mean delta"),
      .number("learning_rate", default: 0, in: 0...1e3,
              "eta: the clients' SGD step; 0 uses the host's local learning rate (--learning-rate)"),
    ],
    auxDownVectors: 2, auxUpVectors: 1)

  private let serverLearningRate: Double
  private let localLearningRate: Double
  private let seed: UInt64
  /// The server control c (empty until the first round) and each client's c_i seen so far.
  private var serverControl: [Float] = []
  private var clientControls: [UInt32: [Float]] = [:]

  init(config: PluginConfig, host: PluginHost) throws {
    serverLearningRate = try config.number("server_learning_rate")
    localLearningRate = try config.number("learning_rate")
    seed = config.seed
  }

  private static let needsContext = PluginFailure.unsupported(
    "SCAFFOLD needs an ABI 1.2 host: its control variates travel in the round and client contexts")

  /// c, sized on first use; a round of another length is an error.
  private func control(length: Int) throws -> [Float] {
    if serverControl.isEmpty { serverControl = [Float](repeating: 0, count: length) }
    guard serverControl.count == length else {
      throw PluginFailure.invalid("n_params \(length) differs from the \(serverControl.count) of earlier rounds")
    }
    return serverControl
  }

  // MARK: server

  func prepareClient(_ round: RoundContextView, clientID: UInt32, global: UnsafeBufferPointer<Float>,
                     auxDown: UnsafeMutableBufferPointer<Float>) throws {
    let count = global.count
    guard auxDown.count == 2 * count else {
      throw PluginFailure.invalid("prepare_client: aux_down holds \(auxDown.count) floats, expected \(2 * count)")
    }
    let c = try control(length: count)
    if let own = clientControls[clientID] {
      for index in 0..<count { auxDown[index] = own[index] }
    } else {
      for index in 0..<count { auxDown[index] = 0 }
    }
    for index in 0..<count { auxDown[count + index] = c[index] }
  }

  func aggregate(_ round: AggregationRound) throws {
    guard let context = round.context else { throw Self.needsContext }
    let count = round.parameterCount
    var c = try control(length: count)
    try FederatedAveraging.aggregateUniformly(round, step: serverLearningRate)
    // Controls: c_i += Δc_i on the elements client i trained; c += Σ Δc_i / N.
    var sum = [Double](repeating: 0, count: count)
    var updatedControls: [(UInt32, [Float])] = []
    for update in round.updates {
      guard let change = update.auxUp, change.count == count else {
        throw PluginFailure.invalid("client \(update.clientID) sent no control update (aux_up of \(count) floats)")
      }
      var own = clientControls[update.clientID] ?? [Float](repeating: 0, count: count)
      for index in 0..<count where update.coverage.map({ $0[index] != 0 }) ?? true {
        guard change[index].isFinite else {
          throw PluginFailure.numeric("client \(update.clientID): control update element \(index) is \(change[index])")
        }
        own[index] += change[index]
        sum[index] += Double(change[index])
      }
      updatedControls.append((update.clientID, own))
    }
    let federation = Double(max(context.clientCount, round.updates.count))
    var squaredNorm = 0.0
    for index in 0..<count {
      c[index] += Float(sum[index] / federation)
      squaredNorm += Double(c[index]) * Double(c[index])
    }
    // Committed only once nothing can fail, so a refused round leaves the state as it was.
    serverControl = c
    for (client, own) in updatedControls { clientControls[client] = own }
    try context.reportMetric("control_norm", squaredNorm.squareRoot())
  }

  // MARK: client

  func trainLocal(_ services: ClientServices, weights: UnsafeMutableBufferPointer<Float>) throws {
    guard let client = services.context else { throw Self.needsContext }
    let count = weights.count
    guard let auxDown = client.auxDown, auxDown.count == 2 * count, let auxUp = client.auxUp, auxUp.count == count else {
      throw PluginFailure.invalid("train_local: the client context lacks SCAFFOLD's control vectors (2 down, 1 up)")
    }
    let stepSize = Float(localLearningRate > 0 ? localLearningRate : client.learningRate)
    let covered = { (index: Int) in client.coverage.map { $0[index] != 0 } ?? true }
    // The correction c − c_i, zero where this client does not train.
    let correction = (0..<count).map { covered($0) ? auxDown[count + $0] - auxDown[$0] : 0 }
    let start = Array(weights)
    var gradient = [Float](repeating: 0, count: count)
    var generator = SeededGenerator(seed: seed, streams: client.seed)
    let rows = services.supportCount
    let batch = max(1, client.batchSize)
    var steps = 0
    var epochLoss = 0.0
    for _ in 0..<max(1, client.epochs) {
      let order = generator.permutation(of: rows)
      epochLoss = 0
      for first in stride(from: 0, to: rows, by: batch) {
        let batchRows = order[first..<min(first + batch, rows)].map { UInt64($0) }
        let loss = try gradient.withUnsafeMutableBufferPointer { buffer in
          try services.gradient(.support, rows: batchRows, weights: UnsafeBufferPointer(weights), into: buffer)
        }
        epochLoss += loss * Double(batchRows.count)
        for index in 0..<count { weights[index] -= stepSize * (gradient[index] + correction[index]) }
        steps += 1
      }
    }
    guard steps > 0 else { throw PluginFailure.invalid("train_local: client \(client.clientID) has no rows") }
    let scale = 1 / (Float(steps) * stepSize)
    for index in 0..<count {
      auxUp[index] = covered(index) ? (start[index] - weights[index]) * scale - auxDown[count + index] : 0
      guard auxUp[index].isFinite, weights[index].isFinite else {
        throw PluginFailure.numeric("client \(client.clientID): local training diverged at element \(index)")
      }
    }
    try services.reportMetric("train_loss", epochLoss / Double(rows))
  }

  // MARK: state

  func saveState(into writer: inout StateWriter) throws {
    writer.write(serverControl)
    writer.write(UInt64(clientControls.count))
    for client in clientControls.keys.sorted() {
      writer.write(UInt32(client))
      writer.write(clientControls[client]!)
    }
  }

  func loadState(from reader: inout StateReader) throws {
    let control: [Float] = try reader.read()
    let clients: UInt64 = try reader.read()
    var controls: [UInt32: [Float]] = [:]
    for _ in 0..<clients {
      let client: UInt32 = try reader.read()
      let own: [Float] = try reader.read()
      guard own.count == control.count else { throw PluginFailure.state("client \(client)'s control has \(own.count) floats, c has \(control.count)") }
      controls[client] = own
    }
    serverControl = control
    clientControls = controls
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(SCAFFOLDPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
