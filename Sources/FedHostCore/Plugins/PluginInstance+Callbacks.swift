import Foundation
import PluginAPI

/// What an initializer plugin may ask of the host (`fhp_initializer_ops`).
public struct InitializerServices {
  public var clientCount: Int
  /// Trains the weights in place on a client's support split; returns the last epoch's loss.
  public var trainClient: (_ clientID: Int, _ weights: UnsafeMutableBufferPointer<Float>, _ epochs: Int) throws -> Double
  /// Evaluates weights on a client's query split: (loss, accuracy).
  public var evaluateClient: (_ clientID: Int, _ weights: UnsafeBufferPointer<Float>) throws -> (loss: Double, accuracy: Double)

  public init(clientCount: Int,
              trainClient: @escaping (Int, UnsafeMutableBufferPointer<Float>, Int) throws -> Double,
              evaluateClient: @escaping (Int, UnsafeBufferPointer<Float>) throws -> (loss: Double, accuracy: Double)) {
    self.clientCount = clientCount
    self.trainClient = trainClient
    self.evaluateClient = evaluateClient
  }
}

/// What a client-side procedure may ask of the host (`fhp_client_ops`): a gradient oracle.
public struct ClientServices {
  public var clientID: UInt32
  public var supportCount: Int
  public var queryCount: Int
  /// Mean loss at `weights` over `rows` (nil: all) of a split, gradient written to `gradient`.
  public var gradient: (_ split: DataSplit, _ rows: UnsafeBufferPointer<UInt64>?, _ weights: UnsafePointer<Float>,
                        _ gradient: UnsafeMutablePointer<Float>) throws -> Double
  /// A named scalar to attach to the client's update.
  public var reportMetric: (_ key: String, _ value: Double) -> Void
  /// The elements a sub-model client trains (nil: all).
  public var coverage: CoverageMask?
  /// The client's round as `fhp_client_ops.context` gives it (ABI 1.2), with the buffers it
  /// points to; nil only for calls outside a run (the plugin then sees NULL).
  var context: (ClientContext, ClientVectors)?

  init(clientID: UInt32, supportCount: Int, queryCount: Int, coverage: CoverageMask? = nil,
       context: (ClientContext, ClientVectors)?,
       gradient: @escaping (DataSplit, UnsafeBufferPointer<UInt64>?, UnsafePointer<Float>,
                            UnsafeMutablePointer<Float>) throws -> Double,
       reportMetric: @escaping (String, Double) -> Void) {
    self.init(clientID: clientID, supportCount: supportCount, queryCount: queryCount, coverage: coverage,
              gradient: gradient, reportMetric: reportMetric)
    self.context = context
  }

  public init(clientID: UInt32, supportCount: Int, queryCount: Int, coverage: CoverageMask? = nil,
              gradient: @escaping (DataSplit, UnsafeBufferPointer<UInt64>?, UnsafePointer<Float>,
                                   UnsafeMutablePointer<Float>) throws -> Double,
              reportMetric: @escaping (String, Double) -> Void) {
    self.clientID = clientID
    self.supportCount = supportCount
    self.queryCount = queryCount
    self.gradient = gradient
    self.reportMetric = reportMetric
    self.coverage = coverage
  }
}

/// The two splits of a client's local data a plugin can address (`FHP_SPLIT_*`).
public enum DataSplit: UInt32, Sendable {
  case support = 0, query = 1
}

/// Carries Swift closures through a C `void *ctx` and remembers the first error they threw,
/// so the host can rethrow its own error instead of the plugin's paraphrase of it.
private final class CallbackContext<Services> {
  let services: Services
  var error: Error?
  /// The last error as a C string owned here (the plugin may read it until the next callback).
  private(set) var message: UnsafeMutablePointer<CChar> = strdup("")!
  init(_ services: Services) { self.services = services }
  deinit { free(message) }

  /// Runs a host callback body; errors become FHP_E_HOST plus a stored message.
  func run(_ body: () throws -> Void) -> Int32 {
    do {
      try body()
      return statusOK
    } catch {
      if self.error == nil { self.error = error }
      free(message)
      message = strdup(String(describing: error))!
      return statusHostError
    }
  }

  static func from(_ ctx: UnsafeMutableRawPointer?) -> CallbackContext {
    Unmanaged<CallbackContext>.fromOpaque(ctx!).takeUnretainedValue()
  }
}

extension PluginInstance {
  /// Runs an initializer plugin: it turns `weights` into the initial global model, calling
  /// back into `services` to train and evaluate clients.
  public func initialize(weights: ParameterVector, services: InitializerServices) throws {
    guard supportsInitialize else { throw missing("initialize") }
    let context = CallbackContext(services)
    var ops = fhp_initializer_ops()
    ops.struct_size = UInt32(MemoryLayout<fhp_initializer_ops>.size)
    ops.n_clients = UInt32(services.clientCount)
    ops.ctx = Unmanaged.passUnretained(context).toOpaque()
    ops.train_client = { ctx, client, weights, count, epochs, outLoss in
      let context = CallbackContext<InitializerServices>.from(ctx)
      return context.run {
        guard let weights, Int(client) < context.services.clientCount else {
          throw HostCallbackError("train_client: client \(client) out of range or NULL weights")
        }
        let loss = try context.services.trainClient(Int(client), .init(start: weights, count: Int(count)), Int(epochs))
        outLoss?.pointee = loss
      }
    }
    ops.evaluate_client = { ctx, client, weights, count, outLoss, outAccuracy in
      let context = CallbackContext<InitializerServices>.from(ctx)
      return context.run {
        guard let weights, Int(client) < context.services.clientCount else {
          throw HostCallbackError("evaluate_client: client \(client) out of range or NULL weights")
        }
        let result = try context.services.evaluateClient(Int(client), .init(start: weights, count: Int(count)))
        outLoss?.pointee = result.loss
        outAccuracy?.pointee = result.accuracy
      }
    }
    ops.last_error = { ctx in
      UnsafePointer(CallbackContext<InitializerServices>.from(ctx).message)
    }
    let status = try withExtendedLifetime(context) {
      try calls.initialize(ops: &ops, weights: weights.pointer, count: UInt64(weights.count))
    }
    try finish(status, "initialize", context)
  }

  /// Runs a client-side procedure plugin on one client's weights, in place ([concurrent]).
  public func trainLocal(weights: UnsafeMutableBufferPointer<Float>, services: ClientServices) throws {
    guard supportsTrainLocal, let start = weights.baseAddress else { throw missing("train_local") }
    let context = CallbackContext(services)
    var ops = fhp_client_ops()
    ops.struct_size = UInt32(MemoryLayout<fhp_client_ops>.size)
    ops.client_id = services.clientID
    ops.ctx = Unmanaged.passUnretained(context).toOpaque()
    ops.n_support = UInt64(services.supportCount)
    ops.n_query = UInt64(services.queryCount)
    ops.coverage = services.coverage.map { UnsafePointer($0.pointer) }
    ops.gradient = { ctx, split, rows, rowCount, weights, gradient, outLoss in
      let context = CallbackContext<ClientServices>.from(ctx)
      return context.run {
        guard let dataSplit = DataSplit(rawValue: split) else { throw HostCallbackError("gradient: unknown split \(split)") }
        guard let weights, let gradient else { throw HostCallbackError("gradient: NULL weights or gradient buffer") }
        let limit = dataSplit == .support ? context.services.supportCount : context.services.queryCount
        let rowBuffer = rows.map { UnsafeBufferPointer(start: $0, count: Int(rowCount)) }
        if let rowBuffer, let bad = rowBuffer.first(where: { $0 >= UInt64(limit) }) {
          throw HostCallbackError("gradient: row \(bad) out of range (split has \(limit) rows)")
        }
        let loss = try context.services.gradient(dataSplit, rowBuffer, weights, gradient)
        outLoss?.pointee = loss
      }
    }
    ops.report_metric = { ctx, key, value in
      let context = CallbackContext<ClientServices>.from(ctx)
      return context.run {
        guard let key else { throw HostCallbackError("report_metric: NULL key") }
        context.services.reportMetric(String(cString: key), value)
      }
    }
    ops.last_error = { ctx in
      UnsafePointer(CallbackContext<ClientServices>.from(ctx).message)
    }
    let status = try withExtendedLifetime(context) {
      guard let (clientContext, vectors) = services.context else {
        return try calls.trainLocal(ops: &ops, weights: start, count: UInt64(weights.count))
      }
      return try vectors.withRaw(clientContext) { raw in
        ops.context = raw
        return try calls.trainLocal(ops: &ops, weights: start, count: UInt64(weights.count))
      }
    }
    try finish(status, "train_local", context)
  }
}

extension PluginInstance {
  /// After a call that used host callbacks: the host's own error if a callback failed (not the
  /// plugin's paraphrase of it), else the plugin's status and message.
  fileprivate func finish<Services>(_ status: Int32, _ function: String, _ context: CallbackContext<Services>) throws {
    if status != statusOK, let hostError = context.error { throw hostError }
    try check(status, function)
  }
}

/// A host callback refused a plugin's request.
public struct HostCallbackError: Error, CustomStringConvertible {
  public let description: String
  init(_ description: String) { self.description = description }
}
