import Glibc
import PluginAPI

/// The round an aggregator works on (`fhp_round_context`, ABI 1.2).
public struct RoundContext: Sendable, Codable, Equatable {
  public var round: Int
  /// Rounds the run plans (0: not known).
  public var roundCount: Int
  /// The federation's size: client ids are 0..<clientCount.
  public var clientCount: Int
  /// Ids asked to train this round, ascending.
  public var sampled: [UInt32]
  /// Ids of `sampled` that sent no update, ascending.
  public var failed: [UInt32]

  public init(round: Int, roundCount: Int, clientCount: Int, sampled: [UInt32], failed: [UInt32] = []) {
    self.round = round
    self.roundCount = roundCount
    self.clientCount = clientCount
    self.sampled = sampled.sorted()
    self.failed = failed.sorted()
  }

  /// For a call outside a run (validation, benchmarks): the updates' clients are the sample
  /// and the federation is as large as the largest id needs.
  public static func standalone(round: Int, clients: [UInt32]) -> RoundContext {
    RoundContext(round: round, roundCount: 0, clientCount: Int(clients.max() ?? 0) + 1, sampled: clients)
  }
}

/// What `select_clients` may ask about the federation (ABI 1.2): every client's training rows
/// and the loss of the round's global model on a client's training rows.
public struct ClientSelection {
  public var sampleCounts: [UInt64]
  public var loss: (UInt32) throws -> Double

  public init(sampleCounts: [UInt64], loss: @escaping (UInt32) throws -> Double) {
    self.sampleCounts = sampleCounts
    self.loss = loss
  }
}

/// What `aggregate` returned besides the model.
public struct AggregationOutcome: Sendable {
  /// Each update's share of the result (see the header's out_weights).
  public var weights: [Double]
  /// Scalars the plugin reported for the round (`fhp_round_context.report_metric`).
  public var metrics: [String: Double]
}

/// The host's part of one client's round for its client hook (`fhp_client_context`, ABI 1.2);
/// the vectors travel beside it (`ClientVectors`).
public struct ClientContext: Sendable, Codable, Equatable {
  public var clientID: UInt32
  public var round: UInt32
  public var epochs: UInt32
  public var batchSize: UInt32
  public var learningRate: Double
  public var seed: UInt64
  public var sampleCount: UInt64
  /// The global model's length: every vector of the context has it.
  public var parameterCount: Int

  public init(clientID: UInt32, round: Int, options: TrainingOptions, sampleCount: Int, parameterCount: Int) {
    self.clientID = clientID
    self.round = UInt32(clamping: round)
    epochs = UInt32(clamping: options.epochs)
    batchSize = UInt32(clamping: options.batchSize)
    learningRate = Double(options.optimizer.learningRate)
    seed = options.seed
    self.sampleCount = UInt64(sampleCount)
    self.parameterCount = parameterCount
  }

  init(_ raw: fhp_client_context) {
    clientID = raw.client_id
    round = raw.round
    epochs = raw.local_epochs
    batchSize = raw.batch_size
    learningRate = raw.learning_rate
    seed = raw.seed
    sampleCount = raw.n_samples
    parameterCount = Int(raw.n_params)
  }
}

/// The global-shaped buffers an `fhp_client_context` points to, borrowed for one call.
struct ClientVectors {
  var coverage: UnsafePointer<UInt8>?
  var auxDown: UnsafeBufferPointer<Float>?
  var auxUp: UnsafeMutableBufferPointer<Float>?

  /// The C struct for `context` over these buffers, valid inside `body`.
  func withRaw<Result>(_ context: ClientContext, _ body: (UnsafePointer<fhp_client_context>) throws -> Result) rethrows
    -> Result
  {
    var raw = fhp_client_context()
    raw.struct_size = UInt32(MemoryLayout<fhp_client_context>.size)
    raw.client_id = context.clientID
    raw.round = context.round
    raw.local_epochs = context.epochs
    raw.batch_size = context.batchSize
    raw.learning_rate = context.learningRate
    raw.seed = context.seed
    raw.n_samples = context.sampleCount
    raw.n_params = UInt64(context.parameterCount)
    raw.coverage = coverage
    raw.aux_down = auxDown?.baseAddress
    raw.aux_down_len = UInt64(auxDown?.count ?? 0)
    raw.aux_up = auxUp?.baseAddress
    raw.aux_up_len = UInt64(auxUp?.count ?? 0)
    return try body(&raw)
  }
}

/// One call's `fhp_round_context`: the arrays it points to, and the metrics the plugin reports
/// through it (aggregate_round only).
final class RoundContextCall {
  private(set) var metrics: [String: Double] = [:]
  private let acceptsMetrics: Bool
  /// select_clients only: the loss oracle and the first error it threw (the host's, rethrown).
  private let selection: ClientSelection?
  private(set) var callbackError: Error?
  private var message: UnsafeMutablePointer<CChar> = strdup("")!

  init(acceptsMetrics: Bool, selection: ClientSelection? = nil) {
    self.acceptsMetrics = acceptsMetrics
    self.selection = selection
  }
  deinit { free(message) }

  /// Calls `body` with the C struct for `context`; `auxUp` holds each update's aux_up vectors
  /// (nil: the strategy declares none).
  func withRaw<Result>(_ context: RoundContext, auxUp: [UnsafePointer<Float>?]?, auxUpLength: Int,
                       _ body: (UnsafePointer<fhp_round_context>) throws -> Result) rethrows -> Result {
    try context.sampled.withUnsafeBufferPointer { sampled in
      try context.failed.withUnsafeBufferPointer { failed in
        try (auxUp ?? []).withUnsafeBufferPointer { aux in
         try (selection?.sampleCounts ?? []).withUnsafeBufferPointer { sampleCounts in
          var raw = fhp_round_context()
          raw.struct_size = UInt32(MemoryLayout<fhp_round_context>.size)
          raw.round = UInt32(clamping: context.round)
          raw.n_rounds = UInt32(clamping: context.roundCount)
          raw.n_clients = UInt32(clamping: context.clientCount)
          raw.sampled = sampled.baseAddress
          raw.n_sampled = UInt32(sampled.count)
          raw.failed = failed.baseAddress
          raw.n_failed = UInt32(failed.count)
          raw.aux_up = auxUp == nil ? nil : aux.baseAddress
          raw.aux_up_len = auxUp == nil ? 0 : UInt64(auxUpLength)
          raw.ctx = Unmanaged.passUnretained(self).toOpaque()
          raw.report_metric = { ctx, key, value in RoundContextCall.from(ctx).record(key, value) }
          raw.last_error = { ctx in UnsafePointer(RoundContextCall.from(ctx).message) }
          if selection != nil {
            raw.sample_counts = sampleCounts.baseAddress
            raw.client_loss = { ctx, client, loss in RoundContextCall.from(ctx).clientLoss(client, loss) }
          }
          return try withExtendedLifetime(self) { try body(&raw) }
         }
        }
      }
    }
  }

  private func clientLoss(_ client: UInt32, _ loss: UnsafeMutablePointer<Double>?) -> Int32 {
    guard let selection else { return refuse(Int32(FHP_E_UNSUPPORTED), "client_loss: only during select_clients") }
    guard let loss else { return refuse(Int32(FHP_E_INVALID), "client_loss: out_loss is NULL") }
    guard Int(client) < selection.sampleCounts.count else {
      return refuse(Int32(FHP_E_INVALID), "client_loss: client \(client) is beyond the federation's \(selection.sampleCounts.count)")
    }
    do {
      loss.pointee = try selection.loss(client)
      return statusOK
    } catch {
      if callbackError == nil { callbackError = error }
      return refuse(statusHostError, "client_loss(\(client)): \(error)")
    }
  }

  private func record(_ key: UnsafePointer<CChar>?, _ value: Double) -> Int32 {
    guard acceptsMetrics else { return refuse(Int32(FHP_E_UNSUPPORTED), "report_metric: only during aggregate_round") }
    guard let key, key.pointee != 0 else { return refuse(Int32(FHP_E_INVALID), "report_metric: NULL or empty key") }
    let name = String(cString: key)
    guard value.isFinite else { return refuse(Int32(FHP_E_NUMERIC), "report_metric: \"\(name)\" is \(value)") }
    metrics[name] = value
    return statusOK
  }

  private func refuse(_ status: Int32, _ text: String) -> Int32 {
    free(message)
    message = strdup(text)!
    return status
  }

  private static func from(_ ctx: UnsafeMutableRawPointer?) -> RoundContextCall {
    Unmanaged<RoundContextCall>.fromOpaque(ctx!).takeUnretainedValue()
  }
}

extension ClientVectors {
  /// The buffers an existing `fhp_client_context` points to.
  init(_ raw: fhp_client_context) {
    coverage = raw.coverage
    auxDown = raw.aux_down.map { UnsafeBufferPointer(start: $0, count: Int(raw.aux_down_len)) }
    auxUp = raw.aux_up.map { UnsafeMutableBufferPointer(start: $0, count: Int(raw.aux_up_len)) }
  }
}

/// How a round context crosses to a plugin-host child: the context as JSON in the request, each
/// update's aux_up vectors in the lane's arena.
struct RoundContextWire: Codable {
  var context: RoundContext
  var auxUpLength: Int
  /// Per update, the arena offset of its aux_up vectors; nil: the strategy declares none.
  var auxUp: [Int?]?

  /// The aux_up pointers in the child's mapping of the arena.
  func auxUpPointers(in arena: SharedArena) -> [UnsafePointer<Float>?]? {
    auxUp?.map { offset in offset.map { UnsafePointer(arena[$0, as: Float.self]) } }
  }
}

/// How select_clients' context crosses to a plugin-host child: the round and every client's
/// rows as JSON; the losses come back one host callback (`clientLoss`) each.
struct SelectionWire: Codable {
  var context: RoundContext
  var sampleCounts: [UInt64]
}

/// How a client context and its vectors cross to a plugin-host child: the context as JSON, the
/// vectors in the lane's arena (aux_up comes back there).
struct ClientVectorsWire: Codable {
  var context: ClientContext
  var coverage: Int?
  var auxDown: Int?
  var auxDownLength: Int
  var auxUp: Int?
  var auxUpLength: Int

  init(context: ClientContext, reserving vectors: ClientVectors, in layout: inout ArenaLayout) {
    self.context = context
    coverage = vectors.coverage.map { _ in layout.reserve(context.parameterCount) }
    auxDownLength = vectors.auxDown?.count ?? 0
    auxDown = vectors.auxDown.map { layout.reserve($0.count * 4) }
    auxUpLength = vectors.auxUp?.count ?? 0
    auxUp = vectors.auxUp.map { layout.reserve($0.count * 4) }
  }

  /// The host's side: the vectors into the arena.
  func write(_ vectors: ClientVectors, into arena: SharedArena) {
    if let coverage, let source = vectors.coverage {
      arena[coverage, as: UInt8.self].update(from: source, count: context.parameterCount)
    }
    if let auxDown, let source = vectors.auxDown?.baseAddress { arena[auxDown, as: Float.self].update(from: source, count: auxDownLength) }
    if let auxUp, let source = vectors.auxUp?.baseAddress { arena[auxUp, as: Float.self].update(from: source, count: auxUpLength) }
  }

  /// The host's side, after the call: what the plugin wrote into aux_up.
  func readBack(_ vectors: ClientVectors, from arena: SharedArena) {
    if let auxUp, let target = vectors.auxUp?.baseAddress { target.update(from: arena[auxUp, as: Float.self], count: auxUpLength) }
  }

  /// The child's side: the vectors in its mapping of the arena.
  func vectors(in arena: SharedArena) -> ClientVectors {
    ClientVectors(coverage: coverage.map { UnsafePointer(arena[$0, as: UInt8.self]) },
                  auxDown: auxDown.map { UnsafeBufferPointer(start: arena[$0, as: Float.self], count: auxDownLength) },
                  auxUp: auxUp.map { UnsafeMutableBufferPointer(start: arena[$0, as: Float.self], count: auxUpLength) })
  }
}
