import Glibc

/// The channel between the host and a plugin-host child (`IsolatedPluginProcess` and
/// `PluginServer`): fixed-size headers with a short payload over a Unix stream socket, and
/// the float data in a shared-memory arena both processes map. Both ends are the same binary,
/// so headers travel as raw bytes.
enum WireOp: UInt32 {
  // host → child: requests
  case create = 1, destroy, openLane, mapArena, aggregate, adjustGradient, trainLocal, initialize,
       saveState, loadState, localTraining, prepareClient, adjustGradientInContext, selectClients
  // child → host: the end of a request, or a host callback the plugin made during it
  case reply = 100, gradient, reportMetric, trainClient, evaluateClient
  /// During a long request (a client's local training): still working, no answer expected.
  case progress
  /// select_clients' loss oracle (a host callback, after `progress` to keep earlier values).
  case clientLoss
  // host → child: the answer to a callback
  case callbackReply = 200
}

struct WireHeader {
  var op: UInt32 = 0
  var status: Int32 = 0
  var payloadLength: UInt32 = 0
  var reserved: UInt32 = 0
  var values: SIMD8<UInt64> = .zero
  /// The caller's floating-point environment (FTZ/DAZ, rounding), which the child's thread
  /// adopts for the call so results match an in-process call bit for bit.
  var environment = fenv_t()
}

struct WireMessage {
  var op: WireOp
  var status: Int32 = statusOK
  var values: SIMD8<UInt64> = .zero
  var environment = fenv_t()
  var payload: [UInt8] = []

  init(_ op: WireOp, status: Int32 = statusOK, values: SIMD8<UInt64> = .zero, payload: [UInt8] = []) {
    self.op = op
    self.status = status
    self.values = values
    self.payload = payload
  }

  /// A request carrying the calling thread's floating-point environment.
  static func request(_ op: WireOp, _ values: SIMD8<UInt64> = .zero, payload: [UInt8] = []) -> WireMessage {
    var message = WireMessage(op, values: values, payload: payload)
    fegetenv(&message.environment)
    return message
  }

  var text: String { String(decoding: payload, as: UTF8.self) }
}

extension Double {
  var wire: UInt64 { bitPattern }
  init(wire: UInt64) { self.init(bitPattern: wire) }
}

/// Why a channel stopped working; the host turns these into `PluginError`s.
enum WireFailure: Error {
  /// The peer closed its end (in the child's case: it died).
  case closed
  /// No message within the call's time limit.
  case timedOut
  /// The peer sent something that is not a message of this protocol.
  case malformed(String)
}

/// One end of a stream socket carrying `WireMessage`s.
struct WireChannel {
  let descriptor: Int32

  /// Sends one message (and, with SCM_RIGHTS, one file descriptor). Never raises SIGPIPE.
  func send(_ message: WireMessage, passing file: Int32? = nil) throws {
    var header = WireHeader(op: message.op.rawValue, status: message.status,
                            payloadLength: UInt32(message.payload.count), values: message.values,
                            environment: message.environment)
    var bytes = withUnsafeBytes(of: &header) { [UInt8]($0) }
    bytes += message.payload
    var offset = 0
    if let file {
      offset = try sendWithDescriptor(bytes, file)
    }
    while offset < bytes.count {
      let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
      if sent < 0 {
        if errno == EINTR { continue }
        throw WireFailure.closed
      }
      offset += sent
    }
  }

  private func sendWithDescriptor(_ bytes: [UInt8], _ file: Int32) throws -> Int {
    var control = [UInt8](repeating: 0, count: controlSpace)
    control.withUnsafeMutableBytes { raw in
      let header = raw.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
      header.pointee.cmsg_len = controlLength
      header.pointee.cmsg_level = SOL_SOCKET
      header.pointee.cmsg_type = Int32(SCM_RIGHTS)
      raw.storeBytes(of: file, toByteOffset: MemoryLayout<cmsghdr>.size, as: Int32.self)
    }
    var bytesCopy = bytes
    let sent = bytesCopy.withUnsafeMutableBytes { payload in
      withMessageHeader(payload, &control) { header, _ in sendmsg(descriptor, &header, Int32(MSG_NOSIGNAL)) }
    }
    guard sent > 0 else { throw WireFailure.closed }
    return sent
  }

  /// Receives one message, blocking. With `deadline`, waits at most until then for each part
  /// and calls `whileWaiting` whenever `alsoWatching` is readable (the host drains the child's
  /// log there). Returns the message and a file descriptor if one came with it.
  func receive(deadline: Deadline? = nil, alsoWatching other: Int32 = -1,
               whileWaiting: () -> Void = {}) throws -> (WireMessage, Int32?) {
    var header = WireHeader()
    var file: Int32?
    try withUnsafeMutableBytes(of: &header) { (raw) throws in
      try readExactly(raw, deadline: deadline, other: other, whileWaiting: whileWaiting, file: &file)
    }
    guard let op = WireOp(rawValue: header.op), header.payloadLength <= maximumPayload else {
      throw WireFailure.malformed("unknown message \(header.op) with \(header.payloadLength) payload bytes")
    }
    var payload = [UInt8](repeating: 0, count: Int(header.payloadLength))
    var ignored: Int32?
    try payload.withUnsafeMutableBytes { (raw) throws in
      try readExactly(raw, deadline: deadline, other: other, whileWaiting: whileWaiting, file: &ignored)
    }
    if let ignored { close(ignored) }
    var message = WireMessage(op, status: header.status, values: header.values, payload: payload)
    message.environment = header.environment
    return (message, file)
  }

  private func readExactly(_ buffer: UnsafeMutableRawBufferPointer, deadline: Deadline?, other: Int32,
                           whileWaiting: () -> Void, file: inout Int32?) throws {
    var offset = 0
    while offset < buffer.count {
      if let deadline { try wait(until: deadline, other: other, whileWaiting: whileWaiting) }
      var control = [UInt8](repeating: 0, count: controlSpace)
      let received = withMessageHeader(UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]), &control) {
        header, controlBytes in
        let count = recvmsg(descriptor, &header, Int32(MSG_CMSG_CLOEXEC))
        if count > 0, header.msg_controllen >= Int(controlLength) {
          let cmsg = controlBytes.baseAddress!.assumingMemoryBound(to: cmsghdr.self).pointee
          if cmsg.cmsg_level == SOL_SOCKET, cmsg.cmsg_type == Int32(SCM_RIGHTS) {
            file = controlBytes.load(fromByteOffset: MemoryLayout<cmsghdr>.size, as: Int32.self)
          }
        }
        return count
      }
      if received < 0 && errno == EINTR { continue }
      guard received > 0 else { throw WireFailure.closed }
      offset += received
    }
  }

  /// A `msghdr` over one data buffer and a control buffer, for sendmsg/recvmsg.
  private func withMessageHeader<Result>(_ data: UnsafeMutableRawBufferPointer, _ control: inout [UInt8],
                                         _ body: (inout msghdr, UnsafeMutableRawBufferPointer) -> Result) -> Result {
    control.withUnsafeMutableBytes { controlBytes in
      var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
      return withUnsafeMutablePointer(to: &vector) { vectorPointer in
        var header = msghdr()
        header.msg_iov = vectorPointer
        header.msg_iovlen = 1
        header.msg_control = controlBytes.baseAddress
        header.msg_controllen = controlBytes.count
        return body(&header, controlBytes)
      }
    }
  }

  /// Polls until this channel is readable, serving `other` meanwhile.
  private func wait(until deadline: Deadline, other: Int32, whileWaiting: () -> Void) throws {
    while true {
      let remaining = deadline.remainingMilliseconds
      guard remaining > 0 else { throw WireFailure.timedOut }
      var watched = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
                     pollfd(fd: other, events: Int16(POLLIN), revents: 0)]
      let ready = poll(&watched, other >= 0 ? 2 : 1, Int32(min(remaining, Int(Int32.max))))
      if ready < 0 && errno != EINTR { throw WireFailure.closed }
      if watched[1].revents & Int16(POLLIN) != 0 { whileWaiting() }
      if watched[0].revents != 0 { return }
    }
  }

  private let maximumPayload: UInt32 = 64 << 20
}

private let controlLength = MemoryLayout<cmsghdr>.size + MemoryLayout<Int32>.size
private let controlSpace = MemoryLayout<cmsghdr>.size + 8

/// A point in time a call must be answered by, on the monotonic clock.
struct Deadline {
  private let end: ContinuousClock.Instant
  init(seconds: Double) { end = .now + .milliseconds(Int64((seconds * 1000).rounded(.up))) }

  var remainingMilliseconds: Int {
    let left = ContinuousClock.now.duration(to: end).components
    return Int(left.seconds) * 1000 + Int((left.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
  }
}

/// A shared-memory region (memfd) mapped by the host and by one child thread. The child maps
/// it with an inaccessible page right after its end, so a plugin that writes past an output
/// placed at the end of the arena faults at once.
final class SharedArena: @unchecked Sendable {
  let size: Int
  let base: UnsafeMutableRawPointer
  private let mappedLength: Int

  private init(size: Int, base: UnsafeMutableRawPointer, mappedLength: Int) {
    self.size = size
    self.base = base
    self.mappedLength = mappedLength
  }

  deinit { munmap(base, mappedLength) }

  static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

  static func roundedToPages(_ bytes: Int) -> Int {
    max(pageSize, (bytes + pageSize - 1) / pageSize * pageSize)
  }

  /// A new arena of at least `bytes` and its file descriptor, which the caller sends and closes.
  static func create(bytes: Int) throws -> (SharedArena, Int32) {
    let size = roundedToPages(bytes)
    let file = memfdCreate("fedhost-plugin-arena", 1 /* MFD_CLOEXEC */)
    guard file >= 0 else { throw WireFailure.malformed("memfd_create failed: \(String(cString: strerror(errno)))") }
    guard ftruncate(file, off_t(size)) == 0,
          let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0), base != MAP_FAILED else {
      let reason = String(cString: strerror(errno))
      close(file)
      throw WireFailure.malformed("cannot map a \(size)-byte shared arena: \(reason)")
    }
    return (SharedArena(size: size, base: base, mappedLength: size), file)
  }

  /// Maps an arena received from the host, followed by one PROT_NONE guard page.
  static func mapGuarded(file: Int32, size: Int) throws -> SharedArena {
    defer { close(file) }
    let length = size + pageSize
    guard let reserved = mmap(nil, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), reserved != MAP_FAILED else {
      throw WireFailure.malformed("cannot reserve \(length) bytes")
    }
    guard let base = mmap(reserved, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, file, 0), base == reserved else {
      munmap(reserved, length)
      throw WireFailure.malformed("cannot map the shared arena")
    }
    return SharedArena(size: size, base: base, mappedLength: length)
  }

  subscript<T>(offset: Int, as type: T.Type) -> UnsafeMutablePointer<T> {
    (base + offset).assumingMemoryBound(to: type)
  }
}

/// Offsets into an arena for one call: inputs from the start, the call's output at the very end
/// (so that the guard page follows it).
struct ArenaLayout {
  private(set) var used = 0

  /// Reserves `bytes` at a 64-byte boundary and returns their offset.
  mutating func reserve(_ bytes: Int) -> Int {
    let offset = (used + 63) & ~63
    used = offset + bytes
    return offset
  }

  /// Bytes an arena needs for this layout plus an output of `outputBytes` at its end.
  func arenaBytes(output outputBytes: Int) -> Int { used + 64 + outputBytes }

  /// Where an output of `bytes` starts in an arena of `size`: it ends on the arena's last byte.
  static func outputOffset(bytes: Int, arenaSize: Int) -> Int { arenaSize - bytes }
}

/// Entry points glibc exports but the Swift Glibc module does not declare (memfd_create), or
/// declares as variadic (prctl), looked up once.
private typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32
private typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32

nonisolated(unsafe) private let memfdCreate = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memfd_create")!,
                                                            to: MemfdCreate.self)
nonisolated(unsafe) private let prctlFunction = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "prctl")!,
                                                              to: Prctl.self)

func processControl(_ option: Int32, _ argument: UInt) { _ = prctlFunction(option, argument, 0, 0, 0) }

/// glibc's posix_spawn_file_actions_addclosefrom_np (2.34+), which the Glibc module does not declare.
private typealias SpawnCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
nonisolated(unsafe) private let spawnCloseFromFunction = dlsym(UnsafeMutableRawPointer(bitPattern: 0),
                                                              "posix_spawn_file_actions_addclosefrom_np")
  .map { unsafeBitCast($0, to: SpawnCloseFrom.self) }

/// Adds "close every descriptor from `lowest` on" to spawn actions; -1 where glibc lacks it.
func spawnCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ lowest: Int32) -> Int32 {
  spawnCloseFromFunction?(actions, lowest) ?? -1
}

/// A pair of connected Unix sockets whose descriptors close on exec.
func makeSocketPair(_ type: __socket_type) throws -> (Int32, Int32) {
  var ends: [Int32] = [-1, -1]
  guard socketpair(AF_UNIX, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
    throw WireFailure.malformed("socketpair failed: \(String(cString: strerror(errno)))")
  }
  return (ends[0], ends[1])
}
