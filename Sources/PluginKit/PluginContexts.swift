import PluginAPI

/// The round an aggregator works on (`fhp_round_context`, ABI 1.2), valid during the call.
/// Absent (nil in `AggregationRound.context`) when a 1.0/1.1 host calls plain `aggregate`.
public struct RoundContextView {
  private let raw: fhp_round_context
  public let round: UInt32
  /// Rounds the run plans (0: not known).
  public let roundCount: Int
  /// The federation's size: client ids are 0..<clientCount.
  public let clientCount: Int
  /// Ids asked to train this round, ascending.
  public let sampled: [UInt32]
  /// Ids of `sampled` that sent no update.
  public let failed: [UInt32]
  /// select_clients only: the rows each client trains on (nil in the other calls).
  public let sampleCounts: [UInt64]?

  init(_ pointer: UnsafePointer<fhp_round_context>?) throws {
    guard let pointer else { throw PluginFailure.invalid("the round context is NULL") }
    guard hasMember(pointer, \.last_error, size: MemoryLayout<fhp_round_context>.size) else {
      throw PluginFailure.invalid("the round context's struct_size \(pointer.pointee.struct_size) is too small")
    }
    raw = readWithinStructSize(pointer)
    round = raw.round
    roundCount = Int(raw.n_rounds)
    clientCount = Int(raw.n_clients)
    guard raw.n_sampled == 0 || raw.sampled != nil, raw.n_failed == 0 || raw.failed != nil else {
      throw PluginFailure.invalid("the round context has NULL sampled or failed ids")
    }
    sampled = Array(UnsafeBufferPointer(start: raw.sampled, count: Int(raw.n_sampled)))
    failed = Array(UnsafeBufferPointer(start: raw.failed, count: Int(raw.n_failed)))
    let context = raw
    sampleCounts = context.sample_counts.map { Array(UnsafeBufferPointer(start: $0, count: Int(context.n_clients))) }
  }

  /// select_clients only: the loss of the round's global model on `client`'s training rows.
  public func clientLoss(_ client: UInt32) throws -> Double {
    guard sampleCounts != nil, let oracle = raw.client_loss else {
      throw PluginFailure.host("client_loss is only offered during select_clients")
    }
    var loss = 0.0
    let status = oracle(raw.ctx, client, &loss)
    guard status == PluginStatus.ok else {
      throw hostCallbackFailure("client_loss(\(client)) failed", status, lastError: raw.last_error, ctx: raw.ctx)
    }
    return loss
  }

  /// Update `index`'s aux_up vectors (its `n_aux_up` × n_params floats), nil when the host sent
  /// none; plugins read them as `ClientUpdateView.auxUp`.
  func auxUp(ofUpdate index: Int) -> UnsafeBufferPointer<Float>? {
    guard let vectors = raw.aux_up, let pointer = vectors[index] else { return nil }
    return UnsafeBufferPointer(start: pointer, count: Int(raw.aux_up_len))
  }

  /// Reports an aggregated scalar for the round into the run's report (aggregate_round only).
  public func reportMetric(_ key: String, _ value: Double) throws {
    guard let report = raw.report_metric else { throw PluginFailure.host("the host offers no report_metric") }
    let status = key.withCString { report(raw.ctx, $0, value) }
    guard status == PluginStatus.ok else {
      throw hostCallbackFailure("report_metric(\(key)) failed", status, lastError: raw.last_error, ctx: raw.ctx)
    }
  }
}

/// One client's round as the host describes it to a client hook (`fhp_client_context`,
/// ABI 1.2), valid during the call. Every vector is global-shaped.
public struct ClientContextView {
  public let clientID: UInt32
  public let round: UInt32
  /// The host's local epochs, minibatch size, learning rate and shuffling seed for this round.
  public let epochs: Int
  public let batchSize: Int
  public let learningRate: Double
  public let seed: UInt64
  /// Rows the client trains on.
  public let sampleCount: Int
  /// The global model's length.
  public let parameterCount: Int
  /// nil: the client trains every element; else 1 = trained.
  public let coverage: UnsafeBufferPointer<UInt8>?
  /// What the aggregator's prepare_client wrote for this client (nil: none).
  public let auxDown: UnsafeBufferPointer<Float>?
  /// Where the hook writes the vectors it sends up (host-zeroed; nil: none).
  public let auxUp: UnsafeMutableBufferPointer<Float>?

  init(_ pointer: UnsafePointer<fhp_client_context>?) throws {
    guard let pointer else { throw PluginFailure.invalid("the client context is NULL") }
    guard hasMember(pointer, \.aux_up_len, size: MemoryLayout<fhp_client_context>.size) else {
      throw PluginFailure.invalid("the client context's struct_size \(pointer.pointee.struct_size) is too small")
    }
    let raw = readWithinStructSize(pointer)
    guard raw.n_params <= UInt64(Int.max / 16) else { throw PluginFailure.invalid("client context: n_params \(raw.n_params)") }
    guard raw.aux_down_len == 0 || raw.aux_down != nil, raw.aux_up_len == 0 || raw.aux_up != nil else {
      throw PluginFailure.invalid("client context: NULL aux vectors with a length")
    }
    clientID = raw.client_id
    round = raw.round
    epochs = Int(raw.local_epochs)
    batchSize = Int(raw.batch_size)
    learningRate = raw.learning_rate
    seed = raw.seed
    sampleCount = Int(clamping: raw.n_samples)
    parameterCount = Int(raw.n_params)
    coverage = raw.coverage.map { UnsafeBufferPointer(start: $0, count: Int(raw.n_params)) }
    auxDown = raw.aux_down.map { UnsafeBufferPointer(start: $0, count: Int(raw.aux_down_len)) }
    auxUp = raw.aux_up.map { UnsafeMutableBufferPointer(start: $0, count: Int(raw.aux_up_len)) }
  }
}

/// A host struct copied no further than its struct_size: members a smaller (older) host struct
/// lacks read as zero/NULL, and nothing past its end is read (header rule 2).
func readWithinStructSize<Struct>(_ pointer: UnsafePointer<Struct>) -> Struct {
  let declared = pointer.withMemoryRebound(to: UInt32.self, capacity: 1) { Int($0.pointee) }
  let copy = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<Struct>.size, alignment: MemoryLayout<Struct>.alignment)
  defer { copy.deallocate() }
  copy.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<Struct>.size)
  copy.copyMemory(from: pointer, byteCount: min(declared, MemoryLayout<Struct>.size))
  return copy.load(as: Struct.self)
}
