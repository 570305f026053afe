import Foundation
import Glibc
import PluginAPI

/// A plugin instance living in a child plugin-host process (`host plugins serve LIB`, see
/// `PluginServer`), called through the same C signatures as an in-process one.
///
/// Each call runs on a lane: a socket to a child thread plus a shared-memory arena where the
/// call's vectors live, its output last, right before the child's guard page. Calls take an
/// idle lane or open a new one, so concurrent `adjust_gradient`/`train_local` calls run in
/// parallel in the child. When the child crashes, exits or stays silent for `callTimeout`
/// seconds, the call throws a one-line `PluginError` naming the call and the signal; the
/// child is killed and reaped, and every later call throws `instanceDead`.
final class IsolatedPluginProcess: PluginCallTarget, @unchecked Sendable {
  private let path: String
  private let callTimeout: Double
  private let log: @Sendable (PluginLogLevel, String) -> Void
  private let pid: pid_t
  private let admin: WireChannel
  private let logSocket: Int32
  /// Serializes requests on the admin channel (create, opening lanes, destroy).
  private let adminLock = NSLock()
  /// Guards `idleLanes`, `death` and `reaped`.
  private let stateLock = NSLock()
  private var idleLanes: [Lane] = []
  private var death: PluginError?
  private var reaped = false
  private var isShutDown = false
  /// The child's wait status once reaped.
  private var waitStatus: Int32 = 0
  private let lastErrorKey: String
  /// Which idle children this instance may take over and give back: same executable and plugin.
  private let poolKey: String

  init(library: PluginLibrary, configJSON: String, threads: Int, abiMinor: UInt32, callTimeout: Double,
       hostExecutable: String?, log: @escaping @Sendable (PluginLogLevel, String) -> Void) throws {
    path = library.path
    self.callTimeout = callTimeout
    self.log = log
    lastErrorKey = "fedhost.plugin.lastError.\(UUID().uuidString)"
    let executable: String
    do {
      executable = try hostExecutable ?? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    } catch {
      throw PluginError.isolationFailed(path: library.path, function: "create", reason: "cannot find the host executable: \(error)")
    }
    poolKey = executable + "\u{0}" + library.path
    if let idle = Self.takeIdleChild(poolKey) {
      (pid, admin, logSocket, idleLanes) = (idle.pid, idle.admin, idle.logSocket, idle.lanes)
    } else {
      let (hostAdmin, childAdmin) = try makeSocketPair(SOCK_STREAM)
      let (hostLog, childLog) = try makeSocketPair(SOCK_DGRAM)
      admin = WireChannel(descriptor: hostAdmin)
      logSocket = hostLog
      do {
        // The child's ends close here right after the start: once the child is gone, nothing
        // holds them open, and the host reads end-of-file.
        defer { close(childAdmin); close(childLog) }
        pid = try Self.spawn(executable, ["plugins", "serve", library.path], admin: childAdmin, log: childLog)
      } catch {
        close(hostAdmin)
        close(hostLog)
        throw PluginError.isolationFailed(path: library.path, function: "create", reason: "cannot start the plugin process: \(error)")
      }
    }
    // Starting the child (a process, the Swift runtime, dlopen) may take seconds on a loaded machine.
    let reply = try adminRequest(timeout: max(callTimeout, Self.startupTimeout), .request(.create, [UInt64(threads), UInt64(abiMinor), 0, 0, 0, 0, 0, 0],
                                          payload: Array(configJSON.utf8)), "create")
    guard reply.status == statusOK else {
      shutDown()
      throw PluginError.createFailed(path: library.path, id: library.descriptor.id, message: reply.text)
    }
  }

  deinit { shutDown() }

  /// Destroys the instance in the child (if it still lives); then keeps the child, with its
  /// lanes, for the next instance of the same plugin, or kills and reaps it. Runs once (a failed
  /// init calls it, then deinit).
  private func shutDown() {
    guard !isShutDown else { return }
    isShutDown = true
    let healthy = stateLock.withLock { death == nil && !reaped }
      && (try? adminRequest(.request(.destroy), "destroy")) != nil
    drainLog()
    if healthy && Self.keepIdleChild(IdleChild(pid: pid, admin: admin, logSocket: logSocket, lanes: idleLanes), poolKey) {
      return
    }
    _ = stateLock.withLock { reap() }
    close(admin.descriptor)
    close(logSocket)
    idleLanes.removeAll()
  }

  // MARK: children kept between instances

  /// A live child whose instance was destroyed: a comparison creates an instance of each
  /// strategy per seed, and starting a process for each costs more than the run's plugin calls.
  private struct IdleChild {
    let pid: pid_t
    let admin: WireChannel
    let logSocket: Int32
    let lanes: [Lane]
  }

  nonisolated(unsafe) private static var idleChildren: [String: [IdleChild]] = [:]
  private static let idleChildrenLock = NSLock()
  /// Idle children kept at most (each holds a process and its lanes' threads and arenas).
  private static let idleChildLimit = 16

  private static func takeIdleChild(_ key: String) -> IdleChild? {
    idleChildrenLock.withLock { idleChildren[key]?.popLast() }
  }

  private static func keepIdleChild(_ child: IdleChild, _ key: String) -> Bool {
    idleChildrenLock.withLock {
      guard idleChildren.values.reduce(0, { $0 + $1.count }) < idleChildLimit else { return false }
      idleChildren[key, default: []].append(child)
      return true
    }
  }

  var readPastHostStructSize: Bool { false }
  /// The child's process id and, once it was reaped, its wait status.
  var child: (id: pid_t, waitStatus: Int32?) { stateLock.withLock { (pid, reaped ? waitStatus : nil) } }
  func extensionTable(_ extensionID: String) -> UnsafeRawPointer? { nil }

  func lastError() -> String { Thread.current.threadDictionary[lastErrorKey] as? String ?? "" }

  /// Keeps a failed call's message for `lastError` on this thread, as the vtable's contract says.
  private func finish(_ reply: WireMessage) -> Int32 {
    if reply.status != statusOK { Thread.current.threadDictionary[lastErrorKey] = reply.text }
    return reply.status
  }

  // MARK: calls

  func aggregate(context: RoundContext, auxUp: [UnsafePointer<Float>?]?, auxUpLength: Int,
                 global: UnsafePointer<Float>, count: UInt64, updates: UnsafePointer<fhp_update>?,
                 updateCount: UInt32, output: UnsafeMutablePointer<Float>,
                 weights: UnsafeMutablePointer<Double>?) throws -> (status: Int32, metrics: [String: Double]) {
    let parameters = Int(count)
    let updateList = UnsafeBufferPointer(start: updates, count: updates == nil ? 0 : Int(updateCount))
    var layout = ArenaLayout()
    let globalOffset = layout.reserve(parameters * 4)
    // Per update: its delta, coverage, metrics and metric keys, placed in the arena; the
    // update table holds their offsets in its pointer fields (the child adds its base).
    var placed: [fhp_update] = []
    var keyOffsets: [[Int]] = []
    for update in updateList {
      var copy = update
      copy.delta = UnsafePointer(bitPattern: layout.reserve(Int(update.n_params) * 4))
      copy.coverage = update.coverage == nil ? nil : UnsafePointer(bitPattern: layout.reserve(Int(update.n_params)))
      let metrics = UnsafeBufferPointer(start: update.metrics, count: update.metrics == nil ? 0 : Int(update.n_metrics))
      copy.metrics = metrics.isEmpty ? nil : UnsafePointer(bitPattern: layout.reserve(metrics.count * MemoryLayout<fhp_metric>.stride))
      keyOffsets.append(metrics.map { layout.reserve(strlen($0.key) + 1) })
      placed.append(copy)
    }
    let tableOffset = layout.reserve(placed.count * MemoryLayout<fhp_update>.stride)
    let weightsOffset = layout.reserve(placed.count * MemoryLayout<Double>.stride)
    let wireContext = RoundContextWire(context: context, auxUpLength: auxUpLength,
                                       auxUp: auxUp?.map { $0 == nil ? nil : layout.reserve(auxUpLength * 4) })
    let outputBytes = parameters * 4
    return try onLane("aggregate", arenaBytes: layout.arenaBytes(output: outputBytes)) { lane, arena in
      for (source, offset) in zip(auxUp ?? [], wireContext.auxUp ?? []) {
        if let source, let offset { arena[offset, as: Float.self].update(from: source, count: auxUpLength) }
      }
      arena[globalOffset, as: Float.self].update(from: global, count: parameters)
      for (index, update) in updateList.enumerated() {
        let target = placed[index]
        arena[Int(bitPattern: target.delta), as: Float.self].update(from: update.delta, count: Int(update.n_params))
        if let coverage = update.coverage {
          arena[Int(bitPattern: target.coverage), as: UInt8.self].update(from: coverage, count: Int(update.n_params))
        }
        if let metricsOffset = target.metrics {
          let metrics = arena[Int(bitPattern: metricsOffset), as: fhp_metric.self]
          for (slot, metric) in UnsafeBufferPointer(start: update.metrics, count: Int(update.n_metrics)).enumerated() {
            let keyOffset = keyOffsets[index][slot]
            strcpy(arena[keyOffset, as: CChar.self], metric.key)
            metrics[slot] = fhp_metric(key: UnsafePointer(bitPattern: keyOffset), value: metric.value)
          }
        }
      }
      arena[tableOffset, as: fhp_update.self].update(from: placed, count: placed.count)
      let outputOffset = ArenaLayout.outputOffset(bytes: outputBytes, arenaSize: arena.size)
      let arenaOutput = arena[outputOffset, as: Float.self]
      arenaOutput.update(from: output, count: parameters)  // the host's prefill (its sentinel)
      let reply = try exchange(lane, .request(.aggregate, [
        UInt64(context.round), count, UInt64(placed.count), UInt64(globalOffset), UInt64(tableOffset),
        weights == nil ? UInt64.max : UInt64(weightsOffset), UInt64(outputOffset), 0,
      ], payload: Array(try JSONEncoder().encode(wireContext))))
      var metrics: [String: Double] = [:]
      if reply.status == statusOK {
        output.update(from: arenaOutput, count: parameters)
        weights?.update(from: arena[weightsOffset, as: Double.self], count: placed.count)
        metrics = try JSONDecoder().decode([String: Double].self, from: Data(reply.payload))
      }
      return (finish(reply), metrics)
    }
  }

  func prepareClient(context: RoundContext, clientID: UInt32, global: UnsafePointer<Float>, count: UInt64,
                     auxDown: UnsafeMutablePointer<Float>, length: UInt64) throws -> Int32 {
    var layout = ArenaLayout()
    let globalOffset = layout.reserve(Int(count) * 4)
    let outputBytes = Int(length) * 4
    return try onLane("prepare_client", arenaBytes: layout.arenaBytes(output: outputBytes)) { lane, arena in
      arena[globalOffset, as: Float.self].update(from: global, count: Int(count))
      let outputOffset = ArenaLayout.outputOffset(bytes: outputBytes, arenaSize: arena.size)
      arena[outputOffset, as: Float.self].update(from: auxDown, count: Int(length))
      let reply = try exchange(lane, .request(.prepareClient, [
        UInt64(clientID), count, UInt64(globalOffset), length, UInt64(outputOffset), 0, 0, 0,
      ], payload: Array(try JSONEncoder().encode(context))))
      if reply.status == statusOK { auxDown.update(from: arena[outputOffset, as: Float.self], count: Int(length)) }
      return finish(reply)
    }
  }

  func selectClients(context: RoundContext, selection: ClientSelection, global: UnsafePointer<Float>, count: UInt64,
                     output: UnsafeMutablePointer<UInt32>, selectCount: UInt32) throws -> (status: Int32, callbackError: Error?) {
    var layout = ArenaLayout()
    let globalOffset = layout.reserve(Int(count) * 4)
    let outputBytes = Int(selectCount) * 4
    var callbackError: Error?
    let status = try onLane("select_clients", arenaBytes: layout.arenaBytes(output: outputBytes)) { lane, arena in
      arena[globalOffset, as: Float.self].update(from: global, count: Int(count))
      let outputOffset = ArenaLayout.outputOffset(bytes: outputBytes, arenaSize: arena.size)
      arena[outputOffset, as: UInt32.self].update(from: output, count: Int(selectCount))
      let wire = SelectionWire(context: context, sampleCounts: selection.sampleCounts)
      let reply = try exchange(lane, .request(.selectClients, [
        count, UInt64(globalOffset), UInt64(selectCount), UInt64(outputOffset), 0, 0, 0, 0,
      ], payload: Array(try JSONEncoder().encode(wire)))) { request in
        guard request.op == .clientLoss else { throw WireFailure.malformed("unexpected \(request.op) during select_clients") }
        do {
          let loss = try selection.loss(UInt32(truncatingIfNeeded: request.values[0]))
          return WireMessage(.callbackReply, values: [loss.wire, 0, 0, 0, 0, 0, 0, 0])
        } catch {
          if callbackError == nil { callbackError = error }
          return WireMessage(.callbackReply, status: statusHostError, payload: Array("\(error)".utf8))
        }
      }
      if reply.status == statusOK { output.update(from: arena[outputOffset, as: UInt32.self], count: Int(selectCount)) }
      return finish(reply)
    }
    return (status, callbackError)
  }

  func adjustGradient(context: ClientContext, vectors: ClientVectors, local: UnsafePointer<Float>,
                      global: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>) throws -> Int32 {
    let parameters = context.parameterCount
    var layout = ArenaLayout()
    let localOffset = layout.reserve(parameters * 4)
    let globalOffset = layout.reserve(parameters * 4)
    let wire = ClientVectorsWire(context: context, reserving: vectors, in: &layout)
    return try onLane("adjust_gradient_in_context", arenaBytes: layout.arenaBytes(output: parameters * 4)) { lane, arena in
      let gradientOffset = ArenaLayout.outputOffset(bytes: parameters * 4, arenaSize: arena.size)
      arena[localOffset, as: Float.self].update(from: local, count: parameters)
      arena[globalOffset, as: Float.self].update(from: global, count: parameters)
      arena[gradientOffset, as: Float.self].update(from: gradient, count: parameters)
      wire.write(vectors, into: arena)
      let reply = try exchange(lane, .request(.adjustGradientInContext, [
        0, UInt64(parameters), UInt64(localOffset), UInt64(globalOffset), UInt64(gradientOffset), 0, 0, 0,
      ], payload: Array(try JSONEncoder().encode(wire))))
      if reply.status == statusOK {
        gradient.update(from: arena[gradientOffset, as: Float.self], count: parameters)
        wire.readBack(vectors, from: arena)
      }
      return finish(reply)
    }
  }

  func adjustGradient(clientID: UInt32, local: UnsafePointer<Float>, global: UnsafePointer<Float>,
                      gradient: UnsafeMutablePointer<Float>, count: UInt64) throws -> Int32 {
    let parameters = Int(count)
    var layout = ArenaLayout()
    let localOffset = layout.reserve(parameters * 4)
    let globalOffset = layout.reserve(parameters * 4)
    return try onLane("adjust_gradient", arenaBytes: layout.arenaBytes(output: parameters * 4)) { lane, arena in
      let gradientOffset = ArenaLayout.outputOffset(bytes: parameters * 4, arenaSize: arena.size)
      arena[localOffset, as: Float.self].update(from: local, count: parameters)
      arena[globalOffset, as: Float.self].update(from: global, count: parameters)
      arena[gradientOffset, as: Float.self].update(from: gradient, count: parameters)
      let reply = try exchange(lane, .request(.adjustGradient, [
        UInt64(clientID), count, UInt64(localOffset), UInt64(globalOffset), UInt64(gradientOffset), 0, 0, 0,
      ]))
      if reply.status == statusOK { gradient.update(from: arena[gradientOffset, as: Float.self], count: parameters) }
      return finish(reply)
    }
  }

  func trainLocal(ops: UnsafePointer<fhp_client_ops>, weights: UnsafeMutablePointer<Float>, count: UInt64) throws -> Int32 {
    let parameters = Int(count)
    let ops = ops.pointee
    var layout = ArenaLayout()
    let coverageOffset = ops.coverage == nil ? nil : layout.reserve(parameters)
    let clientContext = ops.context.map { ClientContext($0.pointee) }
    let contextVectors = ops.context.map { ClientVectors($0.pointee) }
    let contextWire = clientContext.map { ClientVectorsWire(context: $0, reserving: contextVectors!, in: &layout) }
    let scratchWeights = layout.reserve(parameters * 4)
    let scratchGradient = layout.reserve(parameters * 4)
    return try onLane("train_local", arenaBytes: layout.arenaBytes(output: parameters * 4)) { lane, arena in
      let weightsOffset = ArenaLayout.outputOffset(bytes: parameters * 4, arenaSize: arena.size)
      if let coverage = ops.coverage, let coverageOffset {
        arena[coverageOffset, as: UInt8.self].update(from: coverage, count: parameters)
      }
      arena[weightsOffset, as: Float.self].update(from: weights, count: parameters)
      if let contextWire, let contextVectors { contextWire.write(contextVectors, into: arena) }
      let reply = try exchange(lane, .request(.trainLocal, [
        count, UInt64(ops.client_id), ops.n_support, ops.n_query, coverageOffset.map(UInt64.init) ?? UInt64.max,
        UInt64(scratchWeights), UInt64(scratchGradient), UInt64(weightsOffset),
      ], payload: try contextWire.map { Array(try JSONEncoder().encode($0)) } ?? [])) { request in
        switch request.op {
        case .gradient:
          let rowCount = request.values[1]
          let hasRows = request.values[2] != 0
          guard !hasRows || request.payload.count == Int(rowCount) * 8 else {
            throw WireFailure.malformed("gradient request with \(request.payload.count) bytes for \(rowCount) rows")
          }
          var loss = 0.0
          let status = request.payload.withUnsafeBytes { rows in
            ops.gradient(ops.ctx, UInt32(truncatingIfNeeded: request.values[0]),
                         hasRows ? rows.baseAddress?.assumingMemoryBound(to: UInt64.self) : nil, rowCount,
                         arena[scratchWeights, as: Float.self], arena[scratchGradient, as: Float.self], &loss)
          }
          return Self.callbackReply(status, [loss.wire, 0, 0, 0, 0, 0, 0, 0], ops.last_error, ops.ctx)
        case .reportMetric:
          let status = request.text.withCString { ops.report_metric(ops.ctx, $0, Double(wire: request.values[0])) }
          return Self.callbackReply(status, .zero, ops.last_error, ops.ctx)
        default:
          throw WireFailure.malformed("unexpected \(request.op) during train_local")
        }
      }
      weights.update(from: arena[weightsOffset, as: Float.self], count: parameters)
      if reply.status == statusOK, let contextWire, let contextVectors { contextWire.readBack(contextVectors, from: arena) }
      return finish(reply)
    }
  }

  func initialize(ops: UnsafePointer<fhp_initializer_ops>, weights: UnsafeMutablePointer<Float>, count: UInt64) throws -> Int32 {
    let parameters = Int(count)
    let ops = ops.pointee
    var layout = ArenaLayout()
    let scratch = layout.reserve(parameters * 4)
    return try onLane("initialize", arenaBytes: layout.arenaBytes(output: parameters * 4)) { lane, arena in
      let weightsOffset = ArenaLayout.outputOffset(bytes: parameters * 4, arenaSize: arena.size)
      arena[weightsOffset, as: Float.self].update(from: weights, count: parameters)
      let reply = try exchange(lane, .request(.initialize, [
        count, UInt64(ops.n_clients), UInt64(scratch), UInt64(weightsOffset), 0, 0, 0, 0,
      ])) { request in
        let client = UInt32(truncatingIfNeeded: request.values[0])
        let length = request.values[1]
        guard length <= count else { throw WireFailure.malformed("callback for \(length) of \(count) parameters") }
        var loss = 0.0
        switch request.op {
        case .trainClient:
          let status = ops.train_client(ops.ctx, client, arena[scratch, as: Float.self], length,
                                        UInt32(truncatingIfNeeded: request.values[2]), &loss)
          return Self.callbackReply(status, [loss.wire, 0, 0, 0, 0, 0, 0, 0], ops.last_error, ops.ctx)
        case .evaluateClient:
          var accuracy = 0.0
          let status = ops.evaluate_client(ops.ctx, client, arena[scratch, as: Float.self], length, &loss, &accuracy)
          return Self.callbackReply(status, [loss.wire, accuracy.wire, 0, 0, 0, 0, 0, 0], ops.last_error, ops.ctx)
        default:
          throw WireFailure.malformed("unexpected \(request.op) during initialize")
        }
      }
      weights.update(from: arena[weightsOffset, as: Float.self], count: parameters)
      return finish(reply)
    }
  }

  func saveState(buffer: UnsafeMutablePointer<UInt8>?, capacity: UInt64, length: UnsafeMutablePointer<UInt64>) throws -> Int32 {
    let bytes = buffer == nil ? 0 : Int(capacity)
    return try onLane("save_state", arenaBytes: ArenaLayout().arenaBytes(output: bytes)) { lane, arena in
      let offset = ArenaLayout.outputOffset(bytes: bytes, arenaSize: arena.size)
      let reply = try exchange(lane, .request(.saveState, [buffer == nil ? 0 : 1, capacity, UInt64(offset), 0, 0, 0, 0, 0]))
      length.pointee = reply.values[0]
      if let buffer, reply.status == statusOK {
        buffer.update(from: arena[offset, as: UInt8.self], count: Int(min(reply.values[0], capacity)))
      }
      return finish(reply)
    }
  }

  func loadState(buffer: UnsafePointer<UInt8>?, length: UInt64) throws -> Int32 {
    var layout = ArenaLayout()
    let offset = layout.reserve(Int(length))
    return try onLane("load_state", arenaBytes: layout.arenaBytes(output: 0)) { lane, arena in
      if let buffer { arena[offset, as: UInt8.self].update(from: buffer, count: Int(length)) }
      return finish(try exchange(lane, .request(.loadState, [length, UInt64(offset), 0, 0, 0, 0, 0, 0])))
    }
  }

  /// The whole local training in the child: one request, the child's `progress` messages
  /// keeping the watchdog (which then bounds each plugin call) from firing during long work.
  func trainLocally(_ job: LocalTraining, instance: PluginInstance, trainer: MLPTrainer) throws -> LocalTrainingResult {
    let function = instance.supportsTrainLocal ? "train_local" : "adjust_gradient"
    var (header, arenaBytes) = LocalTrainingWireHeader.layout(job)
    let trainedCount = job.architecture.parameterCount
    // A failure the child reported leaves the lane healthy: it is thrown after the lane is back.
    return try onLane(function, arenaBytes: arenaBytes) { lane, arena -> Result<LocalTrainingResult, Error> in
      header.trained = ArenaLayout.outputOffset(bytes: trainedCount * 4, arenaSize: arena.size)
      header.write(job, into: arena)
      // The child says it is alive four times per call limit.
      let heartbeat = UInt64(callTimeout * 250_000)
      let reply = try exchange(lane, .request(.localTraining, [heartbeat, 0, 0, 0, 0, 0, 0, 0],
                                              payload: Array(try JSONEncoder().encode(header))))
      let decoder = JSONDecoder()
      guard reply.status == statusOK else {
        guard let failure = try? decoder.decode(LocalTrainingWireFailure.self, from: Data(reply.payload)) else {
          throw WireFailure.malformed("an unreadable local-training failure")
        }
        return .failure(failure.error)
      }
      guard let metrics = try? decoder.decode([String: Double].self, from: Data(reply.payload)) else {
        throw WireFailure.malformed("unreadable local-training metrics")
      }
      let trained = ParameterVector(count: trainedCount)
      trained.pointer.update(from: arena[header.trained, as: Float.self], count: trainedCount)
      let auxUp = header.auxUp.map { offset in
        let vector = ParameterVector(count: job.auxUpLength)
        vector.pointer.update(from: arena[offset, as: Float.self], count: job.auxUpLength)
        return vector
      }
      return .success(LocalTrainingResult(trained: trained, metrics: metrics, auxUp: auxUp))
    }.get()
  }

  private static func callbackReply(_ status: Int32, _ values: SIMD8<UInt64>,
                                    _ lastError: (@convention(c) (UnsafeMutableRawPointer?) -> UnsafePointer<CChar>?)?,
                                    _ context: UnsafeMutableRawPointer?) -> WireMessage {
    let message = status == statusOK ? "" : lastError?(context).map { String(cString: $0) } ?? ""
    return WireMessage(.callbackReply, status: status, values: values, payload: Array(message.utf8))
  }

  // MARK: lanes and the child's fate

  private final class Lane {
    let channel: WireChannel
    var arena: SharedArena?
    init(_ descriptor: Int32) { channel = WireChannel(descriptor: descriptor) }
    deinit { close(channel.descriptor) }
  }

  /// Runs `body` on an idle lane whose arena holds at least `arenaBytes`; turns a broken
  /// channel into the child's fate as a `PluginError`.
  private func onLane<Result>(_ function: String, arenaBytes: Int,
                              _ body: (Lane, SharedArena) throws -> Result) throws -> Result {
    let lane = try checkOutLane(function)
    do {
      let arena = try arenaOf(lane, holding: arenaBytes)
      let result = try body(lane, arena)
      stateLock.withLock { idleLanes.append(lane) }
      return result
    } catch let failure as WireFailure {
      throw fate(of: failure, during: function)
    }
  }

  private func checkOutLane(_ function: String) throws -> Lane {
    let idle: Lane? = try stateLock.withLock {
      if let death { throw PluginError.instanceDead(path: path, function: function, cause: cause(of: death)) }
      return idleLanes.popLast()
    }
    if let idle { return idle }
    do {
      let (hostEnd, childEnd) = try makeSocketPair(SOCK_STREAM)
      defer { close(childEnd) }
      let lane = Lane(hostEnd)
      try adminLock.withLock {
        try admin.send(.request(.openLane), passing: childEnd)
        _ = try receiveReply(on: admin, serving: unexpectedCallback)
      }
      return lane
    } catch let failure as WireFailure {
      throw fate(of: failure, during: function)
    }
  }

  /// The lane's arena, replaced by a larger one (sent to the child) when it is too small.
  private func arenaOf(_ lane: Lane, holding bytes: Int) throws -> SharedArena {
    if let arena = lane.arena, arena.size >= bytes { return arena }
    let (arena, file) = try SharedArena.create(bytes: max(bytes, 2 * (lane.arena?.size ?? 0)))
    defer { close(file) }
    _ = try exchange(lane, .request(.mapArena, [UInt64(arena.size), 0, 0, 0, 0, 0, 0, 0]), passing: file)
    lane.arena = arena
    return arena
  }

  /// Seconds the child gets to start and create its instance, at least.
  static let startupTimeout: Double = 30

  private func adminRequest(timeout: Double? = nil, _ request: WireMessage, _ function: String) throws -> WireMessage {
    do {
      return try adminLock.withLock {
        try admin.send(request)
        return try receiveReply(on: admin, timeout: timeout, serving: unexpectedCallback)
      }
    } catch let failure as WireFailure {
      throw fate(of: failure, during: function)
    }
  }

  /// Sends a request and serves the child's callbacks until its reply; the time limit applies
  /// to each wait for the child, not to the host's own work in callbacks.
  private func exchange(_ lane: Lane, _ request: WireMessage, passing file: Int32? = nil,
                        serving callbacks: (WireMessage) throws -> WireMessage = unexpectedCallback) throws -> WireMessage {
    try lane.channel.send(request, passing: file)
    return try receiveReply(on: lane.channel, serving: callbacks)
  }

  private func receiveReply(on channel: WireChannel, timeout: Double? = nil,
                            serving callbacks: (WireMessage) throws -> WireMessage) throws -> WireMessage {
    while true {
      let (message, file) = try channel.receive(deadline: Deadline(seconds: timeout ?? callTimeout), alsoWatching: logSocket,
                                                whileWaiting: drainLog)
      if let file { close(file) }
      if message.op == .reply { return message }
      if message.op == .progress { continue }
      try channel.send(try callbacks(message))
    }
  }

  /// Delivers the child's log datagrams (level, then the message's bytes) to the log closure.
  private func drainLog() {
    var buffer = [UInt8](repeating: 0, count: PluginServer.maximumLogBytes + 4)
    while true {
      let received = buffer.withUnsafeMutableBytes { recv(logSocket, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
      guard received >= 4 else { return }
      let level = buffer.withUnsafeBytes { $0.load(as: Int32.self) }
      log(PluginLogLevel(rawValue: level) ?? .info, String(decoding: buffer[4..<received], as: UTF8.self))
    }
  }

  /// Records how the child ended (once: later failures of in-flight calls get the same error),
  /// making sure it is dead and reaped.
  private func fate(of failure: WireFailure, during function: String) -> PluginError {
    stateLock.withLock {
      if let death { return death }
      let status = reap()
      let error: PluginError
      switch failure {
      case .timedOut:
        error = .timedOut(path: path, function: function,
                          seconds: function == "create" ? max(callTimeout, Self.startupTimeout) : callTimeout)
      case .malformed(let reason): error = .isolationFailed(path: path, function: function, reason: reason)
      case .closed:
        let signal = status & 0x7F
        error = signal != 0 ? .crashed(path: path, function: function, signal: signal)
                            : .exited(path: path, function: function, status: (status >> 8) & 0xFF)
      }
      death = error
      return error
    }
  }

  /// Kills and reaps the child; returns its wait status. Call with `stateLock` held.
  @discardableResult
  private func reap() -> Int32 {
    guard !reaped else { return 0 }
    reaped = true
    kill(pid, SIGKILL)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    waitStatus = status
    return status
  }

  private func cause(of death: PluginError) -> String {
    let text = death.description
    return text.hasPrefix(path + ": ") ? String(text.dropFirst(path.count + 2)) : text
  }

  // MARK: starting the child

  /// Starts `executable arguments…` with `admin` as fd 3 and `log` as fd 4, signals unblocked,
  /// and Swift's crash backtracer off (a dying plugin is reported by the host, at once).
  private static func spawn(_ executable: String, _ arguments: [String], admin: Int32, log: Int32) throws -> pid_t {
    // Above the target numbers first, so that no dup2 overwrites the other source.
    let adminSource = fcntl(admin, F_DUPFD_CLOEXEC, 10)
    let logSource = fcntl(log, F_DUPFD_CLOEXEC, 10)
    defer { close(adminSource); close(logSource) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, adminSource, PluginServer.adminDescriptor)
    posix_spawn_file_actions_adddup2(&actions, logSource, PluginServer.logDescriptor)
    // Nothing else: a descriptor another thread opened without close-on-exec (a pipe to some
    // other child) would stay open in a child kept for reuse and hold that pipe open.
    _ = spawnCloseFrom(&actions, PluginServer.logDescriptor + 1)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGPIPE)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    var environment = ProcessInfo.processInfo.environment
    environment["SWIFT_BACKTRACE"] = "enable=no"
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid = pid_t()
    let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    guard result == 0 else { throw HostCallbackError("posix_spawn \(executable): \(String(cString: strerror(result)))") }
    return pid
  }
}

private func unexpectedCallback(_ message: WireMessage) throws -> WireMessage {
  throw WireFailure.malformed("unexpected \(message.op) from the plugin process")
}
