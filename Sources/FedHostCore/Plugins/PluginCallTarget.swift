import Glibc
import PluginAPI

/// Where a `PluginInstance`'s calls go: the vtable's C signatures without the instance handle.
/// `InProcessPluginCalls` calls the plugin here; `IsolatedPluginProcess` forwards each call to a
/// child plugin-host process and throws a `PluginError` when that child crashes or hangs.
/// Statuses and `lastError` keep the vtable's meaning (the message of the last failed call on
/// the calling thread).
protocol PluginCallTarget: AnyObject, Sendable {
  func lastError() -> String
  /// `aggregate_round` with `context` when the plugin has it, else `aggregate`; the metrics
  /// the plugin reported for the round come back beside the status.
  func aggregate(context: RoundContext, auxUp: [UnsafePointer<Float>?]?, auxUpLength: Int,
                 global: UnsafePointer<Float>, count: UInt64, updates: UnsafePointer<fhp_update>?,
                 updateCount: UInt32, output: UnsafeMutablePointer<Float>,
                 weights: UnsafeMutablePointer<Double>?) throws -> (status: Int32, metrics: [String: Double])
  func prepareClient(context: RoundContext, clientID: UInt32, global: UnsafePointer<Float>, count: UInt64,
                     auxDown: UnsafeMutablePointer<Float>, length: UInt64) throws -> Int32
  /// `select_clients`; the error a `selection.loss` call threw, if any, comes back beside the status.
  func selectClients(context: RoundContext, selection: ClientSelection, global: UnsafePointer<Float>, count: UInt64,
                     output: UnsafeMutablePointer<UInt32>, selectCount: UInt32) throws -> (status: Int32, callbackError: Error?)
  func initialize(ops: UnsafePointer<fhp_initializer_ops>, weights: UnsafeMutablePointer<Float>,
                  count: UInt64) throws -> Int32
  func adjustGradient(clientID: UInt32, local: UnsafePointer<Float>, global: UnsafePointer<Float>,
                      gradient: UnsafeMutablePointer<Float>, count: UInt64) throws -> Int32
  /// `adjust_gradient_in_context`: global-shaped vectors, `vectors` the context's buffers.
  func adjustGradient(context: ClientContext, vectors: ClientVectors, local: UnsafePointer<Float>,
                      global: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>) throws -> Int32
  func trainLocal(ops: UnsafePointer<fhp_client_ops>, weights: UnsafeMutablePointer<Float>,
                  count: UInt64) throws -> Int32
  func saveState(buffer: UnsafeMutablePointer<UInt8>?, capacity: UInt64,
                 length: UnsafeMutablePointer<UInt64>) throws -> Int32
  func loadState(buffer: UnsafePointer<UInt8>?, length: UInt64) throws -> Int32
  /// Runs a client's whole local training with this plugin as its client hook (`instance` is
  /// the instance wrapping this target), where the plugin lives.
  func trainLocally(_ job: LocalTraining, instance: PluginInstance, trainer: MLPTrainer) throws -> LocalTrainingResult
  /// A plugin-owned extension table; only meaningful in the plugin's own process.
  func extensionTable(_ extensionID: String) -> UnsafeRawPointer?
  /// See `PluginInstance.readPastHostStructSize`.
  var readPastHostStructSize: Bool { get }
}

/// An instance created and called in this process through the plugin's vtable.
final class InProcessPluginCalls: PluginCallTarget, @unchecked Sendable {
  private let library: PluginLibrary
  private let vtable: UnsafePointer<fhp_vtable>
  private let handle: OpaquePointer
  private let host: UnsafeMutablePointer<fhp_host>
  private let services: Unmanaged<PluginHostServices>
  private let table: VtableView
  /// The ABI minor this host presents (below 2: an older host, which never calls 1.2 members).
  private let abiMinor: UInt32

  /// Creates the instance; throws `createFailed` with the plugin's message.
  init(library: PluginLibrary, configJSON: String, threads: Int, abiMinor: UInt32,
       log: @escaping @Sendable (PluginLogLevel, String) -> Void) throws {
    self.library = library
    vtable = library.vtable
    services = Unmanaged.passRetained(PluginHostServices(threadCount: threads, log: log))
    host = .allocate(capacity: 1)
    host.initialize(to: services.takeUnretainedValue().makeHostStruct(abiMinor: abiMinor))
    table = VtableView(vtable)
    self.abiMinor = abiMinor
    var created: OpaquePointer?
    let status = vtable.pointee.create!(host, configJSON, &created)
    guard status == statusOK, let created else {
      let message = library.lastError(nil)
      host.deallocate()
      services.release()
      throw PluginError.createFailed(path: library.path, id: library.descriptor.id,
                                     message: message.isEmpty ? statusName(status) : message)
    }
    handle = created
  }

  deinit {
    vtable.pointee.destroy!(handle)
    host.deallocate()
    services.release()
  }

  var readPastHostStructSize: Bool { services.takeUnretainedValue().readPastStructSize }

  func lastError() -> String { library.lastError(handle) }

  func aggregate(context: RoundContext, auxUp: [UnsafePointer<Float>?]?, auxUpLength: Int,
                 global: UnsafePointer<Float>, count: UInt64, updates: UnsafePointer<fhp_update>?,
                 updateCount: UInt32, output: UnsafeMutablePointer<Float>,
                 weights: UnsafeMutablePointer<Double>?) -> (status: Int32, metrics: [String: Double]) {
    guard abiMinor >= 2, let aggregateRound = table.function(\.aggregate_round) else {
      // An emulated older host cannot call a plugin that only has aggregate_round.
      guard let aggregate = table.function(\.aggregate) else { return (Int32(FHP_E_UNSUPPORTED), [:]) }
      return (aggregate(handle, UInt32(clamping: context.round), global, count, updates, updateCount, output, weights), [:])
    }
    let call = RoundContextCall(acceptsMetrics: true)
    let status = call.withRaw(context, auxUp: auxUp, auxUpLength: auxUpLength) {
      aggregateRound(handle, $0, global, count, updates, updateCount, output, weights)
    }
    return (status, call.metrics)
  }

  func prepareClient(context: RoundContext, clientID: UInt32, global: UnsafePointer<Float>, count: UInt64,
                     auxDown: UnsafeMutablePointer<Float>, length: UInt64) -> Int32 {
    RoundContextCall(acceptsMetrics: false).withRaw(context, auxUp: nil, auxUpLength: 0) {
      table.function(\.prepare_client)!(handle, $0, clientID, global, count, auxDown, length)
    }
  }

  func initialize(ops: UnsafePointer<fhp_initializer_ops>, weights: UnsafeMutablePointer<Float>, count: UInt64) -> Int32 {
    vtable.pointee.initialize!(handle, ops, weights, count)
  }

  func adjustGradient(clientID: UInt32, local: UnsafePointer<Float>, global: UnsafePointer<Float>,
                      gradient: UnsafeMutablePointer<Float>, count: UInt64) -> Int32 {
    vtable.pointee.adjust_gradient!(handle, clientID, local, global, gradient, count)
  }

  func selectClients(context: RoundContext, selection: ClientSelection, global: UnsafePointer<Float>, count: UInt64,
                     output: UnsafeMutablePointer<UInt32>, selectCount: UInt32) -> (status: Int32, callbackError: Error?) {
    let call = RoundContextCall(acceptsMetrics: false, selection: selection)
    let status = call.withRaw(context, auxUp: nil, auxUpLength: 0) {
      table.function(\.select_clients)!(handle, $0, global, count, output, selectCount)
    }
    return (status, call.callbackError)
  }

  func adjustGradient(context: ClientContext, vectors: ClientVectors, local: UnsafePointer<Float>,
                      global: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>) -> Int32 {
    vectors.withRaw(context) {
      table.function(\.adjust_gradient_in_context)!(handle, $0, local, global, gradient, UInt64(context.parameterCount))
    }
  }

  func trainLocal(ops: UnsafePointer<fhp_client_ops>, weights: UnsafeMutablePointer<Float>, count: UInt64) -> Int32 {
    vtable.pointee.train_local!(handle, ops, weights, count)
  }

  func saveState(buffer: UnsafeMutablePointer<UInt8>?, capacity: UInt64, length: UnsafeMutablePointer<UInt64>) -> Int32 {
    vtable.pointee.save_state!(handle, buffer, capacity, length)
  }

  func loadState(buffer: UnsafePointer<UInt8>?, length: UInt64) -> Int32 {
    vtable.pointee.load_state!(handle, buffer, length)
  }

  func trainLocally(_ job: LocalTraining, instance: PluginInstance, trainer: MLPTrainer) throws -> LocalTrainingResult {
    try job.run(hook: instance, trainer: trainer)
  }

  func extensionTable(_ extensionID: String) -> UnsafeRawPointer? {
    table.function(\.get_extension)?(handle, extensionID)
  }
}
