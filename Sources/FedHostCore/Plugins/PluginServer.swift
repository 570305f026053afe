import Foundation
import Glibc
import PluginAPI

/// The child side of an isolated plugin instance: `host plugins serve LIB`, started by
/// `IsolatedPluginProcess` with its admin socket as fd 3 and its log socket as fd 4.
///
/// The main thread serves the admin channel (create, open a lane, destroy); every lane gets a
/// thread of its own that maps the lane's arena (with a guard page after it) and makes the
/// plugin calls with pointers into it. Host callbacks the plugin makes during a call travel
/// back over the call's lane. The process never dumps core and exits when its parent is gone.
public enum PluginServer {
  static let adminDescriptor: Int32 = 3
  static let logDescriptor: Int32 = 4
  /// Longer log messages are cut (one datagram each).
  static let maximumLogBytes = 16 << 10

  /// Exits once the parent is gone, even while a plugin call spins. (PR_SET_PDEATHSIG would fire
  /// when the host *thread* that started the child ends, which a worker thread may.)
  private static func exitWhenOrphaned() {
    let parent = getppid()
    let watcher = Thread {
      while getppid() == parent { sleep(1) }
      _exit(0)
    }
    watcher.stackSize = 256 << 10
    watcher.start()
  }

  /// Serves until the host closes the admin channel; returns the exit status.
  public static func run(library: PluginLibrary) -> Int32 {
    var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
    setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)
    processControl(4 /* PR_SET_DUMPABLE */, 0)
    exitWhenOrphaned()
    let session = ServerSession(library: library)
    session.serveAdmin(WireChannel(descriptor: adminDescriptor))
    return 0
  }
}

private final class ServerSession: @unchecked Sendable {
  let library: PluginLibrary
  /// Set by create and cleared by destroy on the admin thread; the host makes no call on a
  /// lane before create's reply or after destroy's request.
  var calls: InProcessPluginCalls?
  /// The same instance as a `PluginInstance`, for whole local trainings run here.
  var instance: PluginInstance?

  init(library: PluginLibrary) { self.library = library }

  func serveAdmin(_ admin: WireChannel) {
    while let (request, file) = try? admin.receive() {
      var reply = WireMessage(.reply)
      switch request.op {
      case .create:
        do {
          calls = try InProcessPluginCalls(library: library, configJSON: request.text,
                                           threads: max(1, Int(request.values[0])),
                                           abiMinor: UInt32(truncatingIfNeeded: request.values[1]), log: Self.sendLog)
          instance = calls.map { PluginInstance(library: library, calls: $0) }
        } catch PluginError.createFailed(_, _, let message) {
          reply = WireMessage(.reply, status: Int32(FHP_E_INVALID), payload: Array(message.utf8))
        } catch {
          reply = WireMessage(.reply, status: Int32(FHP_E_INTERNAL), payload: Array("\(error)".utf8))
        }
      case .openLane:
        guard let file else { return }
        let thread = Thread { [self] in serveLane(WireChannel(descriptor: file)) }
        thread.stackSize = 8 << 20
        thread.start()
      case .destroy:
        instance = nil
        calls = nil
      default:
        return
      }
      guard (try? admin.send(reply)) != nil else { return }
    }
  }

  /// The `fhp_host.log` of the child's instance: one datagram per message to the host.
  private static let sendLog: @Sendable (PluginLogLevel, String) -> Void = { level, message in
    var bytes = withUnsafeBytes(of: level.rawValue) { [UInt8]($0) }
    bytes += message.utf8.prefix(PluginServer.maximumLogBytes)
    _ = bytes.withUnsafeBytes { send(PluginServer.logDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
  }

  private func serveLane(_ channel: WireChannel) {
    defer { close(channel.descriptor) }
    var arena: SharedArena?
    var trainers = TrainerCache()
    while let (request, file) = try? channel.receive() {
      let reply: WireMessage
      if request.op == .localTraining, let arena, let instance {
        var environment = request.environment
        fesetenv(&environment)
        reply = localTraining(request, instance, arena, channel, &trainers)
      } else if request.op == .mapArena {
        guard let file, let mapped = try? SharedArena.mapGuarded(file: file, size: Int(request.values[0])) else { return }
        arena = mapped
        reply = WireMessage(.reply)
      } else {
        guard let arena, let calls else { return }
        var environment = request.environment
        fesetenv(&environment)
        reply = call(request, calls, arena, channel)
      }
      guard (try? channel.send(reply)) != nil else { return }
    }
  }

  /// A client's whole local training, the plugin called in this process; a `progress` message
  /// goes to the host at most every `values[0]` µs (a quarter of the host's call limit) while it runs.
  private func localTraining(_ request: WireMessage, _ instance: PluginInstance, _ arena: SharedArena,
                             _ channel: WireChannel, _ trainers: inout TrainerCache) -> WireMessage {
    let encoder = JSONEncoder()
    do {
      let header = try JSONDecoder().decode(LocalTrainingWireHeader.self, from: Data(request.payload))
      let job = try header.read(from: arena)
      let heartbeat = Heartbeat(channel, interval: .microseconds(Int64(clamping: request.values[0])))
      let result = try job.run(hook: instance, trainer: trainers.trainer(for: job.architecture), beat: heartbeat.beat)
      arena[header.trained, as: Float.self].update(from: result.trained.pointer, count: result.trained.count)
      if let offset = header.auxUp, let auxUp = result.auxUp {
        arena[offset, as: Float.self].update(from: auxUp.pointer, count: min(auxUp.count, header.auxUpLength))
      }
      return WireMessage(.reply, payload: Array(try encoder.encode(result.metrics)))
    } catch {
      let failure = (try? encoder.encode(LocalTrainingWireFailure(error))).map(Array.init) ?? []
      return WireMessage(.reply, status: Int32(FHP_E_INTERNAL), payload: failure)
    }
  }

  private func call(_ request: WireMessage, _ calls: InProcessPluginCalls, _ arena: SharedArena,
                    _ channel: WireChannel) -> WireMessage {
    let values = request.values
    func offset(_ index: Int) -> Int { Int(values[index]) }
    func done(_ status: Int32, _ result: UInt64 = 0, payload: [UInt8] = []) -> WireMessage {
      WireMessage(.reply, status: status, values: [result, 0, 0, 0, 0, 0, 0, 0],
                  payload: status == statusOK ? payload : Array(calls.lastError().utf8))
    }
    func malformed(_ what: String) -> WireMessage {
      WireMessage(.reply, status: Int32(FHP_E_INTERNAL), payload: Array("malformed \(what) request".utf8))
    }
    switch request.op {
    case .aggregate:
      let table = arena[offset(4), as: fhp_update.self]
      // The table's pointer fields hold offsets into the arena: make them pointers here.
      for index in 0..<Int(values[2]) {
        table[index].delta = UnsafePointer(arena[Int(bitPattern: table[index].delta), as: Float.self])
        if let coverage = table[index].coverage {
          table[index].coverage = UnsafePointer(arena[Int(bitPattern: coverage), as: UInt8.self])
        }
        if let metricsOffset = table[index].metrics {
          let metrics = arena[Int(bitPattern: metricsOffset), as: fhp_metric.self]
          for slot in 0..<Int(table[index].n_metrics) {
            metrics[slot].key = UnsafePointer(arena[Int(bitPattern: metrics[slot].key), as: CChar.self])
          }
          table[index].metrics = UnsafePointer(metrics)
        }
      }
      guard let wire = try? JSONDecoder().decode(RoundContextWire.self, from: Data(request.payload)) else {
        return malformed("aggregate")
      }
      let (status, metrics) = calls.aggregate(
        context: wire.context, auxUp: wire.auxUpPointers(in: arena), auxUpLength: wire.auxUpLength,
        global: arena[offset(3), as: Float.self], count: values[1], updates: values[2] == 0 ? nil : table,
        updateCount: UInt32(truncatingIfNeeded: values[2]), output: arena[offset(6), as: Float.self],
        weights: values[5] == UInt64.max ? nil : arena[offset(5), as: Double.self])
      return done(status, payload: Array((try? JSONEncoder().encode(metrics)) ?? Data("{}".utf8)))
    case .prepareClient:
      guard let context = try? JSONDecoder().decode(RoundContext.self, from: Data(request.payload)) else {
        return malformed("prepare_client")
      }
      return done(calls.prepareClient(context: context, clientID: UInt32(truncatingIfNeeded: values[0]),
                                      global: arena[offset(2), as: Float.self], count: values[1],
                                      auxDown: arena[offset(4), as: Float.self], length: values[3]))
    case .selectClients:
      guard let wire = try? JSONDecoder().decode(SelectionWire.self, from: Data(request.payload)) else {
        return malformed("select_clients")
      }
      let bridge = CallbackBridge(channel: channel, arena: arena, count: 0, scratch: 0, scratchGradient: 0)
      let selection = ClientSelection(sampleCounts: wire.sampleCounts) { client in
        let reply = bridge.ask(.request(.clientLoss, [UInt64(client), 0, 0, 0, 0, 0, 0, 0]))
        guard reply.status == statusOK else { throw HostCallbackError(reply.text) }
        return Double(wire: reply.values[0])
      }
      let (status, _) = calls.selectClients(context: wire.context, selection: selection,
                                            global: arena[offset(1), as: Float.self], count: values[0],
                                            output: arena[offset(3), as: UInt32.self],
                                            selectCount: UInt32(truncatingIfNeeded: values[2]))
      return done(status)
    case .adjustGradientInContext:
      guard let wire = try? JSONDecoder().decode(ClientVectorsWire.self, from: Data(request.payload)) else {
        return malformed("adjust_gradient_in_context")
      }
      return done(calls.adjustGradient(context: wire.context, vectors: wire.vectors(in: arena),
                                       local: arena[offset(2), as: Float.self], global: arena[offset(3), as: Float.self],
                                       gradient: arena[offset(4), as: Float.self]))
    case .adjustGradient:
      return done(calls.adjustGradient(clientID: UInt32(truncatingIfNeeded: values[0]),
                                       local: arena[offset(2), as: Float.self], global: arena[offset(3), as: Float.self],
                                       gradient: arena[offset(4), as: Float.self], count: values[1]))
    case .trainLocal:
      let bridge = CallbackBridge(channel: channel, arena: arena, count: Int(values[0]),
                                  scratch: offset(5), scratchGradient: offset(6))
      var ops = fhp_client_ops()
      ops.struct_size = UInt32(MemoryLayout<fhp_client_ops>.size)
      ops.client_id = UInt32(truncatingIfNeeded: values[1])
      ops.n_support = values[2]
      ops.n_query = values[3]
      ops.coverage = values[4] == UInt64.max ? nil : UnsafePointer(arena[offset(4), as: UInt8.self])
      ops.ctx = Unmanaged.passUnretained(bridge).toOpaque()
      ops.gradient = { ctx, split, rows, rowCount, weights, gradient, outLoss in
        let bridge = CallbackBridge.from(ctx)
        guard let weights, let gradient else { return bridge.refuse("gradient: NULL weights or gradient buffer") }
        guard rowCount <= UInt64(PluginServer.maximumRowsPerGradient) || rows == nil else {
          return bridge.refuse("gradient: \(rowCount) rows in one request")
        }
        bridge.arena[bridge.scratch, as: Float.self].update(from: weights, count: bridge.count)
        let rowBytes = rows.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(rowCount) * 8)) } ?? []
        let reply = bridge.ask(.request(.gradient, [UInt64(split), rowCount, rows == nil ? 0 : 1, 0, 0, 0, 0, 0],
                                        payload: rowBytes))
        if reply.status == statusOK {
          gradient.update(from: bridge.arena[bridge.scratchGradient, as: Float.self], count: bridge.count)
          outLoss?.pointee = Double(wire: reply.values[0])
        }
        return reply.status
      }
      ops.report_metric = { ctx, key, value in
        let bridge = CallbackBridge.from(ctx)
        guard let key else { return bridge.refuse("report_metric: NULL key") }
        return bridge.ask(.request(.reportMetric, [value.wire, 0, 0, 0, 0, 0, 0, 0],
                                   payload: Array(String(cString: key).utf8))).status
      }
      ops.last_error = { ctx in UnsafePointer(CallbackBridge.from(ctx).message) }
      let contextWire = request.payload.isEmpty ? nil
        : try? JSONDecoder().decode(ClientVectorsWire.self, from: Data(request.payload))
      if !request.payload.isEmpty && contextWire == nil { return malformed("train_local") }
      func train() -> Int32 {
        withExtendedLifetime(bridge) { calls.trainLocal(ops: &ops, weights: arena[offset(7), as: Float.self], count: values[0]) }
      }
      guard let contextWire else { return done(train()) }
      return done(contextWire.vectors(in: arena).withRaw(contextWire.context) { context in
        ops.context = context
        return train()
      })
    case .initialize:
      let bridge = CallbackBridge(channel: channel, arena: arena, count: Int(values[0]), scratch: offset(2),
                                  scratchGradient: offset(2))
      var ops = fhp_initializer_ops()
      ops.struct_size = UInt32(MemoryLayout<fhp_initializer_ops>.size)
      ops.n_clients = UInt32(truncatingIfNeeded: values[1])
      ops.ctx = Unmanaged.passUnretained(bridge).toOpaque()
      ops.train_client = { ctx, client, weights, count, epochs, outLoss in
        let bridge = CallbackBridge.from(ctx)
        guard let weights, count <= UInt64(bridge.count) else {
          return bridge.refuse("train_client: NULL weights or more than the call's \(bridge.count) parameters")
        }
        bridge.arena[bridge.scratch, as: Float.self].update(from: weights, count: Int(count))
        let reply = bridge.ask(.request(.trainClient, [UInt64(client), count, UInt64(epochs), 0, 0, 0, 0, 0]))
        if reply.status == statusOK {
          weights.update(from: bridge.arena[bridge.scratch, as: Float.self], count: Int(count))
          outLoss?.pointee = Double(wire: reply.values[0])
        }
        return reply.status
      }
      ops.evaluate_client = { ctx, client, weights, count, outLoss, outAccuracy in
        let bridge = CallbackBridge.from(ctx)
        guard let weights, count <= UInt64(bridge.count) else {
          return bridge.refuse("evaluate_client: NULL weights or more than the call's \(bridge.count) parameters")
        }
        bridge.arena[bridge.scratch, as: Float.self].update(from: weights, count: Int(count))
        let reply = bridge.ask(.request(.evaluateClient, [UInt64(client), count, 0, 0, 0, 0, 0, 0]))
        if reply.status == statusOK {
          outLoss?.pointee = Double(wire: reply.values[0])
          outAccuracy?.pointee = Double(wire: reply.values[1])
        }
        return reply.status
      }
      ops.last_error = { ctx in UnsafePointer(CallbackBridge.from(ctx).message) }
      let status = withExtendedLifetime(bridge) {
        calls.initialize(ops: &ops, weights: arena[offset(3), as: Float.self], count: values[0])
      }
      return done(status)
    case .saveState:
      var length: UInt64 = 0
      let status = calls.saveState(buffer: values[0] == 0 ? nil : arena[offset(2), as: UInt8.self],
                                   capacity: values[1], length: &length)
      return done(status, length)
    case .loadState:
      return done(calls.loadState(buffer: arena[offset(1), as: UInt8.self], length: values[0]))
    default:
      return WireMessage(.reply, status: Int32(FHP_E_INTERNAL), payload: Array("unexpected request \(request.op)".utf8))
    }
  }
}

extension PluginServer {
  /// Rows one gradient request may name (their indices travel in the message).
  static let maximumRowsPerGradient = 4 << 20
}

/// Tells the host, over a lane, that a long request is still running.
private final class Heartbeat: @unchecked Sendable {
  private let channel: WireChannel
  private let lock = NSLock()
  private let interval: Duration
  private var last = ContinuousClock.now

  init(_ channel: WireChannel, interval: Duration) {
    self.channel = channel
    self.interval = interval
  }

  func beat() {
    let now = ContinuousClock.now
    let due = lock.withLock {
      guard now - last >= interval else { return false }
      last = now
      return true
    }
    if due { try? channel.send(WireMessage(.progress)) }
  }
}

/// One call's host callbacks in the child: they ask the host over the call's lane, with the
/// vectors in the lane's arena, and keep the host's message for `last_error`.
private final class CallbackBridge {
  let channel: WireChannel
  let arena: SharedArena
  let count: Int
  let scratch: Int
  let scratchGradient: Int
  private(set) var message: UnsafeMutablePointer<CChar> = strdup("")!

  init(channel: WireChannel, arena: SharedArena, count: Int, scratch: Int, scratchGradient: Int) {
    self.channel = channel
    self.arena = arena
    self.count = count
    self.scratch = scratch
    self.scratchGradient = scratchGradient
  }

  deinit { free(message) }

  static func from(_ ctx: UnsafeMutableRawPointer?) -> CallbackBridge {
    Unmanaged<CallbackBridge>.fromOpaque(ctx!).takeUnretainedValue()
  }

  /// Sends a callback request and waits for the host's answer. A host that is gone leaves
  /// nothing to serve: the child exits.
  func ask(_ request: WireMessage) -> WireMessage {
    guard (try? channel.send(request)) != nil, let (reply, _) = try? channel.receive(), reply.op == .callbackReply else {
      _exit(1)
    }
    if reply.status != statusOK { remember(reply.text) }
    return reply
  }

  func refuse(_ text: String) -> Int32 {
    remember(text)
    return Int32(FHP_E_INVALID)
  }

  private func remember(_ text: String) {
    free(message)
    message = strdup(text)!
  }
}
