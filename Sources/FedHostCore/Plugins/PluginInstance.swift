import Foundation
import Glibc
import PluginAPI

/// Severity of a plugin's log line (`FHP_LOG_*`).
public enum PluginLogLevel: Int32, Sendable {
  case debug = 0, info, warn, error

  var label: String { ["debug", "info", "warning", "error"][Int(rawValue)] }
}

/// Where plugins' `fhp_host.log` lines go by default: stderr, one line each, prefixed with the
/// plugin's name; debug lines are dropped.
public enum PluginLog {
  public static func standardError(pluginName: String) -> @Sendable (PluginLogLevel, String) -> Void {
    { level, message in
      guard level != .debug else { return }
      let line = "[\(pluginName)] \(level.label): \(message.escapingControlCharacters)\n"
      _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    }
  }
}

/// One live plugin instance (`fhp_instance`), destroyed when this object is released. It lives
/// in this process or, isolated, in a child plugin-host process (`PluginIsolation`); the
/// methods are the same either way.
///
/// Calls follow the header's threading tags: the `[serialized]` ones (aggregate,
/// initialize, state) must not overlap on one instance — the federation layer calls them
/// from one thread — while `adjustGradient` and `trainLocal` may run on many threads.
public final class PluginInstance: @unchecked Sendable {
  public let library: PluginLibrary
  public var id: String { library.descriptor.id }
  /// Which calls the plugin offers (read from the vtable loaded in this process).
  let table: VtableView
  /// In this process or in a child plugin-host process.
  let calls: PluginCallTarget

  /// `threads` bounds the host's `parallel_for`; `abiMinor` 0 offers the ABI 1.0 `fhp_host`.
  init(library: PluginLibrary, configJSON: String, threads: Int, abiMinor: UInt32, isolation: PluginIsolation,
       log: @escaping @Sendable (PluginLogLevel, String) -> Void) throws {
    self.library = library
    table = VtableView(library.vtable)
    switch isolation {
    case .none:
      calls = try InProcessPluginCalls(library: library, configJSON: configJSON, threads: threads,
                                       abiMinor: abiMinor, log: log)
    case let .process(callTimeout, hostExecutable):
      calls = try IsolatedPluginProcess(library: library, configJSON: configJSON, threads: threads,
                                        abiMinor: abiMinor, callTimeout: callTimeout,
                                        hostExecutable: hostExecutable, log: log)
    }
  }

  /// An instance around calls already made (the plugin-host child's own instance).
  init(library: PluginLibrary, calls: PluginCallTarget) {
    self.library = library
    table = VtableView(library.vtable)
    self.calls = calls
  }

  /// Under an emulated ABI 1.0 host: whether the plugin called `parallel_for`, a member past
  /// that host's `struct_size` (it skipped FHP_HAS_MEMBER).
  var readPastHostStructSize: Bool { calls.readPastHostStructSize }

  /// For an isolated instance, its child plugin-host process: the process id and, once the
  /// child was killed and reaped, its wait status. nil for an in-process instance.
  public var childProcess: (id: pid_t, waitStatus: Int32?)? { (calls as? IsolatedPluginProcess)?.child }

  public var supportsAggregate: Bool { table.function(\.aggregate) != nil || table.function(\.aggregate_round) != nil }
  public var supportsInitialize: Bool { table.function(\.initialize) != nil }
  public var supportsAdjustGradient: Bool {
    table.function(\.adjust_gradient) != nil || table.function(\.adjust_gradient_in_context) != nil
  }
  /// ABI 1.2's `adjust_gradient_in_context` (global-shaped vectors, the client's context).
  var supportsAdjustGradientInContext: Bool { table.function(\.adjust_gradient_in_context) != nil }
  public var supportsAggregateRound: Bool { table.function(\.aggregate_round) != nil }
  public var supportsSelectClients: Bool { table.function(\.select_clients) != nil }
  public var supportsTrainLocal: Bool { table.function(\.train_local) != nil }
  public var supportsState: Bool { table.function(\.save_state) != nil && table.function(\.load_state) != nil }

  /// Turns a non-OK status into an error carrying the plugin's message (read on this thread,
  /// right after the call, as the header requires).
  func check(_ status: Int32, _ function: String) throws {
    guard status != statusOK else { return }
    let message = calls.lastError()
    throw PluginError.callFailed(id: id, function: function, status: status,
                                 message: message.isEmpty ? "(no message)" : message)
  }

  func missing(_ function: String) -> PluginError {
    .callFailed(id: id, function: function, status: Int32(FHP_E_UNSUPPORTED),
                message: "not implemented by this plugin")
  }

  // MARK: aggregator

  /// `aggregate(_:global:updates:into:)` outside a run (`RoundContext.standalone`): returns
  /// each update's share.
  @discardableResult
  public func aggregate(round: Int, global: ParameterVector, updates: [ClientUpdate],
                        into output: ParameterVector) throws -> [Double] {
    try aggregate(.standalone(round: round, clients: updates.map(\.clientID)), global: global, updates: updates,
                  into: output).weights
  }

  /// Aggregates `updates` into `output` (`aggregate_round` with `context`, or `aggregate`);
  /// returns each update's share and the metrics the plugin reported. `output` is filled with
  /// a sentinel first, so an element the plugin left unwritten is named in the error, as is a
  /// non-finite output or weight, or (for a 1.2 plugin) shares that do not sum to 1.
  public func aggregate(_ context: RoundContext, global: ParameterVector, updates: [ClientUpdate],
                        into output: ParameterVector) throws -> AggregationOutcome {
    guard output.count == global.count, output !== global else {
      throw PluginError.invalidArgument(id: id, function: "aggregate",
                                        reason: "output must be a distinct vector of \(global.count) elements")
    }
    for update in updates where update.delta.count != global.count {
      throw PluginError.invalidArgument(
        id: id, function: "aggregate",
        reason: "client \(update.clientID) sent \(update.delta.count) parameters, global has \(global.count)")
    }
    let auxLength = library.descriptor.auxUpVectors * global.count
    for update in updates where auxLength > 0 && update.auxUp?.count != auxLength {
      throw PluginError.invalidArgument(
        id: id, function: "aggregate",
        reason: "client \(update.clientID) sent \(update.auxUp?.count ?? 0) aux_up floats, the strategy declares \(auxLength)")
    }
    AggregateOutputCheck.fill(output)
    let outcome = try aggregateUnchecked(context, global: global, updates: updates, into: output)
    try AggregateOutputCheck.verify(output, weights: outcome.weights, path: library.path,
                                    sharesSumToOne: library.descriptor.abiMinor >= 2)
    return outcome
  }

  /// `aggregate` without the host's argument checks, so the validator can see how a plugin
  /// copes with bad input itself.
  func aggregateUnchecked(_ context: RoundContext, global: ParameterVector, updates: [ClientUpdate],
                          into output: ParameterVector, declaredCount: Int? = nil) throws -> AggregationOutcome {
    guard supportsAggregate else { throw missing("aggregate") }
    let auxLength = library.descriptor.auxUpVectors * global.count
    let auxUp = auxLength == 0 ? nil : updates.map { $0.auxUp.map { UnsafePointer($0.pointer) } }
    let keyStorage = MetricKeyStorage(updates.flatMap { $0.metrics.keys })
    defer { keyStorage.release() }
    let metricRows: [[fhp_metric]] = updates.map { update in
      update.metrics.keys.sorted().map { fhp_metric(key: keyStorage[$0], value: update.metrics[$0]!) }
    }
    var weights = [Double](repeating: 0, count: updates.count)
    let (status, metrics) = try metricRows.withNestedUnsafeBuffers { metricPointers in
      let raw = updates.indices.map { index -> fhp_update in
        let update = updates[index]
        return fhp_update(struct_size: UInt32(MemoryLayout<fhp_update>.size), client_id: update.clientID,
                          delta: UnsafePointer(update.delta.pointer), n_params: UInt64(declaredCount ?? update.delta.count),
                          n_samples: update.sampleCount,
                          coverage: update.coverage.map { UnsafePointer($0.pointer) },
                          metrics: metricPointers[index].baseAddress,
                          n_metrics: UInt32(metricPointers[index].count), flags: 0)
      }
      return try raw.withUnsafeBufferPointer { rawUpdates in
        try weights.withUnsafeMutableBufferPointer { weightBuffer in
          try calls.aggregate(context: context, auxUp: auxUp, auxUpLength: auxLength,
                              global: global.pointer, count: UInt64(global.count),
                              updates: rawUpdates.isEmpty ? nil : rawUpdates.baseAddress,
                              updateCount: UInt32(rawUpdates.count), output: output.pointer,
                              weights: weightBuffer.baseAddress)
        }
      }
    }
    withExtendedLifetime(updates) {}
    try check(status, supportsAggregateRound ? "aggregate_round" : "aggregate")
    return AggregationOutcome(weights: weights, metrics: metrics)
  }

  /// The `count` clients the aggregator chooses for this round (`select_clients`), sorted and
  /// checked: distinct and inside the federation. A failed `selection.loss` is rethrown as is.
  public func selectClients(_ context: RoundContext, global: ParameterVector, count: Int,
                            selection: ClientSelection) throws -> [Int] {
    guard supportsSelectClients else { throw missing("select_clients") }
    var chosen = [UInt32](repeating: UInt32.max, count: count)
    let (status, callbackError) = try chosen.withUnsafeMutableBufferPointer { output in
      try calls.selectClients(context: context, selection: selection, global: global.pointer,
                              count: UInt64(global.count), output: output.baseAddress!, selectCount: UInt32(count))
    }
    if status != statusOK, let callbackError { throw callbackError }
    try check(status, "select_clients")
    let sorted = chosen.sorted()
    guard let bad = sorted.first(where: { Int($0) >= context.clientCount }) ?? zip(sorted, sorted.dropFirst()).first(where: { $0 == $1 })?.0
    else { return sorted.map(Int.init) }
    throw PluginError.badOutput(path: library.path, function: "select_clients",
                                problem: bad == UInt32.max ? "left out_ids unwritten"
                                  : Int(bad) >= context.clientCount ? "chose client \(bad) of a federation of \(context.clientCount)"
                                  : "chose client \(bad) twice")
  }

  /// The aux_down vectors the aggregator sends client `clientID` this round (`prepare_client`),
  /// `auxDownVectors` × the global length, checked finite.
  public func prepareClient(_ context: RoundContext, clientID: UInt32, global: ParameterVector) throws -> ParameterVector {
    guard table.function(\.prepare_client) != nil else { throw missing("prepare_client") }
    let auxDown = ParameterVector(count: library.descriptor.auxDownVectors * global.count)
    try check(try calls.prepareClient(context: context, clientID: clientID, global: global.pointer,
                                      count: UInt64(global.count), auxDown: auxDown.pointer,
                                      length: UInt64(auxDown.count)), "prepare_client")
    if let bad = auxDown.firstNonFiniteIndex {
      throw PluginError.badOutput(path: library.path, function: "prepare_client",
                                  problem: "wrote a non-finite aux_down[\(bad)] = \(auxDown[bad]) for client \(clientID)")
    }
    return auxDown
  }

  // MARK: client hook

  /// Lets the plugin edit a local gradient in place (`adjust_gradient`, [concurrent]).
  public func adjustGradient(clientID: UInt32, local: UnsafePointer<Float>, global: UnsafePointer<Float>,
                             gradient: UnsafeMutablePointer<Float>, count: Int) throws {
    guard table.function(\.adjust_gradient) != nil else { throw missing("adjust_gradient") }
    try check(try calls.adjustGradient(clientID: clientID, local: local, global: global, gradient: gradient,
                                       count: UInt64(count)), "adjust_gradient")
  }

  /// `adjust_gradient_in_context` ([concurrent]): every vector global-shaped.
  func adjustGradient(context: ClientContext, vectors: ClientVectors, local: UnsafePointer<Float>,
                      global: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>) throws {
    guard supportsAdjustGradientInContext else { throw missing("adjust_gradient_in_context") }
    try check(try calls.adjustGradient(context: context, vectors: vectors, local: local, global: global,
                                       gradient: gradient), "adjust_gradient_in_context")
  }

  /// Runs client `job.clientID`'s local training for a round with this instance as its client
  /// hook: in this process, or whole in an isolated instance's child process.
  public func trainLocally(_ job: LocalTraining, trainer: MLPTrainer) throws -> LocalTrainingResult {
    try calls.trainLocally(job, instance: self, trainer: trainer)
  }

  // MARK: state

  /// The plugin's opaque state (empty for a stateless plugin).
  public func saveState() throws -> [UInt8] {
    guard supportsState else { return [] }
    var length: UInt64 = 0
    try check(try calls.saveState(buffer: nil, capacity: 0, length: &length), "save_state")
    var bytes = [UInt8](repeating: 0, count: Int(length))
    var written: UInt64 = 0
    try bytes.withUnsafeMutableBufferPointer { buffer in
      try check(try calls.saveState(buffer: buffer.baseAddress, capacity: length, length: &written), "save_state")
    }
    guard written <= length else {
      throw PluginError.callFailed(id: id, function: "save_state", status: Int32(FHP_E_STATE),
                                   message: "wrote \(written) bytes into a \(length)-byte buffer")
    }
    return Array(bytes.prefix(Int(written)))
  }

  /// Restores state written by `saveState` of the same plugin.
  public func loadState(_ bytes: [UInt8]) throws {
    guard table.function(\.load_state) != nil else {
      guard bytes.isEmpty else { throw missing("load_state") }
      return
    }
    try bytes.withUnsafeBufferPointer { buffer in
      try check(try calls.loadState(buffer: buffer.baseAddress, length: UInt64(buffer.count)), "load_state")
    }
  }

  /// An extension table by id, or nil (always nil for an isolated instance: the table lives
  /// in the child's memory).
  public func extensionTable(_ extensionID: String) -> UnsafeRawPointer? {
    calls.extensionTable(extensionID)
  }
}

/// Numeric status codes as Swift `Int32` (C's anonymous enums import as `Int`).
let statusOK = Int32(FHP_OK)
let statusHostError = Int32(FHP_E_HOST)

/// C strings for the host's name and version, alive for the whole process.
enum HostStrings {
  nonisolated(unsafe) static let name = UnsafePointer(strdup("fedhost")!)
  nonisolated(unsafe) static let version = UnsafePointer(strdup(fedHostVersion)!)
}

public let fedHostVersion = "0.1.0"

/// NUL-terminated copies of metric keys, alive for one call.
final class MetricKeyStorage {
  private var pointers: [String: UnsafeMutablePointer<CChar>] = [:]
  init(_ keys: [String]) {
    for key in keys where pointers[key] == nil { pointers[key] = strdup(key) }
  }
  subscript(key: String) -> UnsafePointer<CChar> { UnsafePointer(pointers[key]!) }
  func release() { pointers.values.forEach { free($0) } }
}

extension Array {
  /// Calls `body` with stable buffer pointers to every inner array at once.
  func withNestedUnsafeBuffers<Inner, Result>(
    _ body: ([UnsafeBufferPointer<Inner>]) throws -> Result
  ) rethrows -> Result where Element == [Inner] {
    var pinned: [UnsafeBufferPointer<Inner>] = []
    pinned.reserveCapacity(count)
    func pin(_ index: Int) throws -> Result {
      if index == count { return try body(pinned) }
      return try self[index].withUnsafeBufferPointer { buffer in
        pinned.append(buffer)
        return try pin(index + 1)
      }
    }
    return try pin(0)
  }
}
