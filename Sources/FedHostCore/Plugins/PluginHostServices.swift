import Dispatch
import Glibc
import PluginAPI
import Synchronization

/// What the host offers one plugin instance through its `fhp_host`: the log, since ABI 1.1
/// the worker threads (`parallel_for`), since 1.2 `get_extension`. The instance's
/// `fhp_host.ctx` points here.
final class PluginHostServices: @unchecked Sendable {
  let emit: @Sendable (PluginLogLevel, String) -> Void
  /// Tasks of one `parallel_for` run on at most this many threads (the run's `--threads`).
  let threadCount: Int
  /// Set while a `parallel_for` spreads tasks over threads. A nested call (from a task) or a
  /// concurrent one (from another thread's plugin call) finds it set and runs inline instead,
  /// so that no call ever waits for workers that are waiting for it.
  private let spreading = Atomic<Bool>(false)
  /// Set when a plugin handed the ABI 1.0 struct calls `parallel_for` anyway: in a real 1.0
  /// host that member lies past the struct's end (see `makeHostStruct`).
  private let calledPastStructSize = Atomic<Bool>(false)

  /// Whether the plugin called `parallel_for` although its `fhp_host` was the 1.0 struct.
  var readPastStructSize: Bool { calledPastStructSize.load(ordering: .relaxed) }

  init(threadCount: Int, log emit: @escaping @Sendable (PluginLogLevel, String) -> Void) {
    precondition(threadCount >= 1, "a plugin host needs at least one thread")
    self.threadCount = threadCount
    self.emit = emit
  }

  typealias Task = @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void

  /// Runs `task(context, i)` for every i in 0..<count and returns when all have returned.
  func parallelFor(count: UInt64, task: Task, context: UnsafeMutableRawPointer?) {
    let workers = Int(min(UInt64(threadCount), count))
    guard workers > 1, spreading.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    else {
      for index in 0..<count { task(context, index) }
      return
    }
    defer { spreading.store(false, ordering: .releasing) }
    let batch = TaskBatch(count: count, task: task, context: context)
    DispatchQueue.concurrentPerform(iterations: workers) { _ in batch.work() }
  }

  /// The `fhp_host` a plugin instance receives; `ctx` is this object (kept alive by the instance).
  /// `abiMinor` 0 gives the 1.0 struct, as an older host would: `struct_size` ends before
  /// `parallel_for`, whose slot holds a tripwire that runs nothing, returns
  /// FHP_E_UNSUPPORTED and is remembered (`readPastStructSize`), so that a plugin that skips
  /// FHP_HAS_MEMBER is caught here instead of crashing in a real 1.0 host. `abiMinor` 1 ends
  /// the struct before `get_extension`.
  func makeHostStruct(abiMinor: UInt32) -> fhp_host {
    var host = fhp_host()
    host.struct_size = UInt32(abiMinor == 0 ? MemoryLayout<fhp_host>.offset(of: \.parallel_for)!
                              : abiMinor == 1 ? MemoryLayout<fhp_host>.offset(of: \.get_extension)!
                              : MemoryLayout<fhp_host>.size)
    host.ctx = Unmanaged.passUnretained(self).toOpaque()
    host.host_name = HostStrings.name
    host.host_version = HostStrings.version
    host.log = { ctx, level, message in
      guard let ctx, let message else { return }
      PluginHostServices.from(ctx).emit(PluginLogLevel(rawValue: level) ?? .info, String(cString: message))
    }
    if abiMinor >= 1 {
      host.parallel_for = { ctx, count, task, taskContext in
        guard let ctx, let task else { return Int32(FHP_E_INVALID) }
        PluginHostServices.from(ctx).parallelFor(count: count, task: task, context: taskContext)
        return Int32(FHP_OK)
      }
    } else {
      host.parallel_for = { ctx, _, _, _ in
        if let ctx { PluginHostServices.from(ctx).calledPastStructSize.store(true, ordering: .relaxed) }
        return Int32(FHP_E_UNSUPPORTED)
      }
    }
    // This host publishes no extension yet: every id is answered NULL, as the header allows.
    host.get_extension = abiMinor >= 2 ? { _, _ in nil } : nil
    return host
  }

  private static func from(_ ctx: UnsafeMutableRawPointer) -> PluginHostServices {
    Unmanaged<PluginHostServices>.fromOpaque(ctx).takeUnretainedValue()
  }
}

/// One `parallel_for` call shared by its workers: the plugin's task, handed out by index to
/// whichever worker asks next. The plugin vouches for its tasks' thread safety (the header's
/// contract), hence `@unchecked`.
private final class TaskBatch: @unchecked Sendable {
  let count: UInt64
  let task: PluginHostServices.Task
  let context: UnsafeMutableRawPointer?
  /// The calling thread's floating-point environment: every task runs in it, so rounding and
  /// flush-to-zero do not depend on which thread took the task.
  let callerEnvironment: fenv_t
  private let next = Atomic<UInt64>(0)

  init(count: UInt64, task: PluginHostServices.Task, context: UnsafeMutableRawPointer?) {
    self.count = count
    self.task = task
    self.context = context
    var environment = fenv_t()
    fegetenv(&environment)
    callerEnvironment = environment
  }

  func work() {
    var saved = fenv_t()
    fegetenv(&saved)
    var environment = callerEnvironment
    fesetenv(&environment)
    defer { fesetenv(&saved) }
    while case let index = next.wrappingAdd(1, ordering: .relaxed).oldValue, index < count {
      task(context, index)
    }
  }
}
