import PluginAPI

/// A strategy plugin written in Swift: its metadata, how to build an instance from a
/// config, and the math. `exportPlugin(_:...)` turns a conforming type into the static
/// descriptor and vtable the host negotiates with.
///
/// Implement the methods named by `metadata.capabilities`; the others keep their default,
/// which is never called (its vtable slot is NULL). Methods may throw `PluginFailure` (or
/// any error, reported as `FHP_E_INTERNAL`); nothing escapes the C boundary. They must not
/// trap on plugin inputs: a trap kills the host.
///
/// Threading follows the header: `aggregate`, `initialize`, `saveState`, `loadState` are
/// [serialized]; `adjustGradient` and `trainLocal` are [concurrent] and may run on many
/// threads at once for the same instance, so they may only read shared state (or guard it).
public protocol FedHostPlugin: AnyObject {
  static var metadata: PluginMetadata { get }

  /// Creates an instance; `host` stays valid until the instance is destroyed.
  init(config: PluginConfig, host: PluginHost) throws

  /// AGGREGATOR: writes the next global model into `round.output` and the effective
  /// weights with `round.reportWeights`. Inputs are already validated (see `AggregationRound`).
  func aggregate(_ round: AggregationRound) throws
  /// INITIALIZER: turns `weights` into the initial global model through `services`.
  func initialize(_ services: InitializerServices, weights: UnsafeMutableBufferPointer<Float>) throws
  /// CLIENT_HOOK [concurrent]: edits a local gradient in place; a pure function.
  func adjustGradient(clientID: UInt32, local: UnsafeBufferPointer<Float>, global: UnsafeBufferPointer<Float>,
                      gradient: UnsafeMutableBufferPointer<Float>) throws
  /// CLIENT_HOOK [concurrent], ABI 1.2: edits a local gradient in place; every vector is
  /// global-shaped and `client` says which round and with which host settings.
  func adjustGradient(_ client: ClientContextView, local: UnsafeBufferPointer<Float>, global: UnsafeBufferPointer<Float>,
                      gradient: UnsafeMutableBufferPointer<Float>) throws
  /// AGGREGATOR, ABI 1.2: writes the aux_down vectors client `clientID` receives this round.
  func prepareClient(_ round: RoundContextView, clientID: UInt32, global: UnsafeBufferPointer<Float>,
                     auxDown: UnsafeMutableBufferPointer<Float>) throws
  /// CLIENT_HOOK [concurrent]: runs one client's whole local procedure on `weights`.
  func trainLocal(_ services: ClientServices, weights: UnsafeMutableBufferPointer<Float>) throws
  /// AGGREGATOR, ABI 1.2: the `count` distinct clients that train this round (`round.sampled`
  /// is the host's own sample; `round.clientLoss` and `round.sampleCounts` describe every client).
  func selectClients(_ round: RoundContextView, global: UnsafeBufferPointer<Float>, count: Int) throws -> [UInt32]
  /// Writes every piece of state that influences future results.
  func saveState(into writer: inout StateWriter) throws
  /// Restores what `saveState` wrote; the header has been checked already.
  func loadState(from reader: inout StateReader) throws
}

extension FedHostPlugin {
  public func aggregate(_ round: AggregationRound) throws { throw Self.notImplemented("aggregate") }
  public func initialize(_ services: InitializerServices, weights: UnsafeMutableBufferPointer<Float>) throws {
    throw Self.notImplemented("initialize")
  }
  public func adjustGradient(clientID: UInt32, local: UnsafeBufferPointer<Float>, global: UnsafeBufferPointer<Float>,
                             gradient: UnsafeMutableBufferPointer<Float>) throws {
    throw Self.notImplemented("adjust_gradient")
  }
  public func trainLocal(_ services: ClientServices, weights: UnsafeMutableBufferPointer<Float>) throws {
    throw Self.notImplemented("train_local")
  }
  public func adjustGradient(_ client: ClientContextView, local: UnsafeBufferPointer<Float>,
                             global: UnsafeBufferPointer<Float>, gradient: UnsafeMutableBufferPointer<Float>) throws {
    throw Self.notImplemented("adjust_gradient_in_context")
  }
  public func prepareClient(_ round: RoundContextView, clientID: UInt32, global: UnsafeBufferPointer<Float>,
                            auxDown: UnsafeMutableBufferPointer<Float>) throws {
    throw Self.notImplemented("prepare_client")
  }
  public func selectClients(_ round: RoundContextView, global: UnsafeBufferPointer<Float>, count: Int) throws -> [UInt32] {
    throw Self.notImplemented("select_clients")
  }
  public func saveState(into writer: inout StateWriter) throws { throw Self.notImplemented("save_state") }
  public func loadState(from reader: inout StateReader) throws { throw Self.notImplemented("load_state") }

  private static func notImplemented(_ function: String) -> PluginFailure {
    .unsupported("\(metadata.id) does not implement \(function)")
  }
}

/// The host as a plugin sees it: its log callback, (ABI 1.1) its worker threads, `parallelFor`,
/// and (ABI 1.2) its extensions.
public struct PluginHost: @unchecked Sendable {
  let raw: UnsafePointer<fhp_host>?

  init(_ raw: UnsafePointer<fhp_host>?) { self.raw = raw }

  /// Log levels of `fhp_host.log`.
  public enum LogLevel: Int32, Sendable {
    case debug = 0, info, warn, error
  }

  /// Sends one diagnostic line to the host ([any-thread]); dropped if the host has no log.
  public func log(_ level: LogLevel, _ message: String) {
    guard let raw, hasMember(raw, \fhp_host.log, size: MemoryLayout<fhp_host>.size), let log = raw.pointee.log else {
      return
    }
    message.withCString { log(raw.pointee.ctx, level.rawValue, $0) }
  }

  /// A host extension's table by id, nil when this host does not offer it (or predates 1.2).
  public func extensionTable(_ extensionID: String) -> UnsafeRawPointer? {
    guard let raw, hasMember(raw, \fhp_host.get_extension, size: MemoryLayout<fhp_host>.size),
          let getExtension = raw.pointee.get_extension else { return nil }
    return extensionID.withCString { getExtension(raw.pointee.ctx, $0) }
  }
}

/// A failed host callback as a plugin error: `what` and the host's message (its `last_error`
/// for the callbacks' `ctx`), or the status when the host left none.
func hostCallbackFailure(_ what: String, _ status: fhp_status,
                         lastError: (@convention(c) (UnsafeMutableRawPointer?) -> UnsafePointer<CChar>?)?,
                         ctx: UnsafeMutableRawPointer?) -> PluginFailure {
  let text = lastError?(ctx).map { String(cString: $0) } ?? ""
  return .host("\(what): \(text.isEmpty ? "status \(status)" : text)")
}

/// True when the member at `keyPath` lies within the struct's `struct_size` (FHP_HAS_MEMBER).
func hasMember<Root, Member>(_ pointer: UnsafePointer<Root>, _ keyPath: KeyPath<Root, Member>, size structSize: Int)
  -> Bool
{
  guard let offset = MemoryLayout<Root>.offset(of: keyPath) else { return false }
  let declaredSize = pointer.withMemoryRebound(to: UInt32.self, capacity: 1) { Int($0.pointee) }
  return min(declaredSize, structSize) >= offset + MemoryLayout<Member>.size
}

/// An initializer's view of the host (`fhp_initializer_ops`), valid during `initialize` only.
public struct InitializerServices {
  private let ops: fhp_initializer_ops

  init(_ raw: UnsafePointer<fhp_initializer_ops>?) throws {
    guard let raw else { throw PluginFailure.invalid("initialize: ops is NULL") }
    let size = MemoryLayout<fhp_initializer_ops>.size
    guard hasMember(raw, \.last_error, size: size), raw.pointee.train_client != nil,
          raw.pointee.evaluate_client != nil else {
      throw PluginFailure.invalid("initialize: ops lacks train_client or evaluate_client")
    }
    ops = raw.pointee
  }

  /// Client ids are 0..<clientCount.
  public var clientCount: Int { Int(ops.n_clients) }

  private func hostMessage(_ call: String, _ status: fhp_status) -> PluginFailure {
    hostCallbackFailure("\(call) failed", status, lastError: ops.last_error, ctx: ops.ctx)
  }

  /// Trains `weights` in place on a client's support split; returns the last epoch's loss.
  public func trainClient(_ clientID: Int, weights: UnsafeMutableBufferPointer<Float>, epochs: Int) throws -> Double {
    var loss = 0.0
    let status = ops.train_client?(ops.ctx, UInt32(truncatingIfNeeded: clientID), weights.baseAddress,
                                   UInt64(weights.count), UInt32(clamping: epochs), &loss) ?? PluginStatus.host
    guard status == PluginStatus.ok else { throw hostMessage("train_client(client \(clientID))", status) }
    return loss
  }

  /// Evaluates `weights` on a client's query split.
  public func evaluateClient(_ clientID: Int, weights: UnsafeBufferPointer<Float>) throws
    -> (loss: Double, accuracy: Double)
  {
    var loss = 0.0
    var accuracy = 0.0
    let status = ops.evaluate_client?(ops.ctx, UInt32(truncatingIfNeeded: clientID), weights.baseAddress,
                                      UInt64(weights.count), &loss, &accuracy) ?? PluginStatus.host
    guard status == PluginStatus.ok else { throw hostMessage("evaluate_client(client \(clientID))", status) }
    return (loss, accuracy)
  }
}

/// The data splits a client procedure can ask gradients for (`FHP_SPLIT_*`).
public enum DataSplit: UInt32, Sendable {
  case support = 0, query = 1
}

/// A client procedure's view of the host (`fhp_client_ops`), valid during `train_local` only
/// and only on the calling thread.
public struct ClientServices {
  private let ops: fhp_client_ops

  init(_ raw: UnsafePointer<fhp_client_ops>?) throws {
    guard let raw else { throw PluginFailure.invalid("train_local: ops is NULL") }
    guard hasMember(raw, \.last_error, size: MemoryLayout<fhp_client_ops>.size), raw.pointee.gradient != nil,
          raw.pointee.report_metric != nil else {
      throw PluginFailure.invalid("train_local: ops lacks gradient or report_metric")
    }
    ops = raw.pointee
    context = hasMember(raw, \.context, size: MemoryLayout<fhp_client_ops>.size) && raw.pointee.context != nil
      ? try ClientContextView(raw.pointee.context) : nil
  }

  public var clientID: UInt32 { ops.client_id }
  /// The client's round (ABI 1.2): round number, the host's epochs, batch size, learning rate,
  /// seed and the aux vectors; nil from an older host.
  public let context: ClientContextView?
  /// Rows in the support split (the local training data).
  public var supportCount: Int { Int(clamping: ops.n_support) }
  /// Rows in the query split (may be 0).
  public var queryCount: Int { Int(clamping: ops.n_query) }

  private func hostMessage(_ call: String, _ status: fhp_status) -> PluginFailure {
    hostCallbackFailure("\(call) failed for client \(ops.client_id)", status, lastError: ops.last_error, ctx: ops.ctx)
  }

  /// Mean loss at `weights` over `rows` of `split` (nil: the whole split); the gradient goes
  /// into `gradient` (same length as `weights`).
  public func gradient(_ split: DataSplit, rows: [UInt64]?, weights: UnsafeBufferPointer<Float>,
                       into gradient: UnsafeMutableBufferPointer<Float>) throws -> Double {
    var loss = 0.0
    let status: fhp_status
    if let rows {
      status = rows.withUnsafeBufferPointer { rowBuffer in
        ops.gradient?(ops.ctx, split.rawValue, rowBuffer.baseAddress, UInt64(rowBuffer.count), weights.baseAddress,
                      gradient.baseAddress, &loss) ?? PluginStatus.host
      }
    } else {
      status = ops.gradient?(ops.ctx, split.rawValue, nil, 0, weights.baseAddress, gradient.baseAddress, &loss)
        ?? PluginStatus.host
    }
    guard status == PluginStatus.ok else { throw hostMessage("gradient", status) }
    return loss
  }

  /// Attaches a named scalar to this client's update; it reaches `aggregate` as a metric.
  public func reportMetric(_ key: String, _ value: Double) throws {
    let status = key.withCString { ops.report_metric?(ops.ctx, $0, value) ?? PluginStatus.host }
    guard status == PluginStatus.ok else { throw hostMessage("report_metric(\(key))", status) }
  }
}
