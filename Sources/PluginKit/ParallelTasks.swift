import PluginAPI

extension PluginHost {
  /// Runs `task(i)` for every i in `0..<count` and returns when all have returned: on the
  /// host's worker threads when it offers them (`fhp_host.parallel_for`, ABI 1.1), otherwise —
  /// or when `count < 2` — in index order on this thread. Tasks may run concurrently, so each
  /// must write only its own outputs; cut work into tasks by the data alone, never by the
  /// thread count, and results are the same with any number of threads.
  ///
  /// The compiler does not check this: `task` is not `@Sendable` (kernels hand raw pointers
  /// to disjoint ranges), so `var total = 0; parallelFor(n) { total += … }` compiles and
  /// races. Return per-task values with `parallelMap` and combine them afterwards instead.
  public func parallelFor(_ count: Int, _ task: (Int) -> Void) {
    guard count > 1, let raw, hasMember(raw, \fhp_host.parallel_for, size: MemoryLayout<fhp_host>.size),
          let parallelFor = raw.pointee.parallel_for
    else {
      for index in 0..<count { task(index) }
      return
    }
    withoutActuallyEscaping(task) { task in
      let box = TaskBox(task)
      let status = withExtendedLifetime(box) {
        parallelFor(raw.pointee.ctx, UInt64(count), { context, index in
          Unmanaged<TaskBox>.fromOpaque(context!).takeUnretainedValue().run(Int(index))
        }, Unmanaged.passUnretained(box).toOpaque())
      }
      // A host refuses only a NULL task, before running any; be robust all the same.
      if status != PluginStatus.ok { for index in 0..<count { task(index) } }
    }
  }

  /// `parallelFor` for tasks that return a value or fail: the values in task order, or the
  /// error of the lowest failing task (every task still runs).
  @inlinable  // specialized in the plugin: generic metadata lookups would cost microseconds per round
  public func parallelMap<Value>(_ count: Int, _ task: (Int) throws -> Value) throws -> [Value] {
    let slots = UnsafeMutableBufferPointer<Result<Value, any Error>?>.allocate(capacity: count)
    slots.initialize(repeating: nil)
    defer {
      _ = slots.deinitialize()
      slots.deallocate()
    }
    parallelFor(count) { index in slots[index] = Result { try task(index) } }
    return try slots.map { try $0!.get() }
  }
}

/// A task closure carried through the C `task_ctx` pointer.
private final class TaskBox {
  let run: (Int) -> Void
  init(_ run: @escaping (Int) -> Void) { self.run = run }
}

extension AggregationRound {
  /// Deltas one parallel task streams: enough to dwarf the hand-off, small enough that the
  /// benchmark shapes (400 MB of deltas) give ~100 tasks to balance over the threads.
  @usableFromInline static let taskBytes = 4 << 20

  /// Runs `task` once per parallel task of the round and returns its results in task order.
  /// Each task gets its consecutive blocks of `blockLength` elements: whole blocks, about
  /// `taskBytes` of deltas per task (one task for a small round). The tasks run on the host's
  /// threads (`PluginHost.parallelMap`), or with `inOrder` one after another on this thread,
  /// for work that must see the blocks in order. The cut depends on the round's shape alone,
  /// so per-task partial results combined in task order give the same bits with any thread count.
  @inlinable  // specialized in the plugin: generic metadata lookups would cost microseconds per round
  public func mapTasks<Value>(blockLength: Int, inOrder: Bool = false,
                              _ task: (_ blocks: [Range<Int>]) throws -> Value) throws -> [Value] {
    let blocksPerTask = max(1, Self.taskBytes / (4 * updates.count * blockLength))
    let ranges = elementBlocks(0..<parameterCount, length: blocksPerTask * blockLength)
    func run(_ index: Int) throws -> Value { try task(elementBlocks(ranges[index], length: blockLength)) }
    return inOrder ? try ranges.indices.map(run) : try host.parallelMap(ranges.count, run)
  }
}
