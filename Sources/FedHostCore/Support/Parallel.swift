import Dispatch
import Glibc
import Synchronization

/// A small deterministic worker pool for independent jobs, e.g. simulated clients.
///
/// `map` runs `count` jobs on `threadCount` workers. Each worker builds its own state once per
/// call (typically an `MLPTrainer`: scratch buffers are per worker, not per job) and takes job
/// indices from a shared counter. Results come back in job order, so as long as each job's result
/// depends only on its inputs — never on which worker ran it or on what ran before on that
/// worker — the output is bit-identical for any thread count. Every worker runs with subnormals
/// flushed (see `FloatEnvironment`), the same mode the single-thread trainer uses.
public struct WorkerPool: Sendable {
  /// Number of workers; 1 runs everything on the calling thread.
  public let threadCount: Int

  /// One worker per active core.
  public static var defaultThreadCount: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

  public init(threadCount: Int = WorkerPool.defaultThreadCount) {
    precondition(threadCount >= 1, "a worker pool needs at least one thread")
    self.threadCount = threadCount
  }

  /// Runs `job(&state, index)` for every index in `0..<count` and returns the results in index
  /// order. `makeState(workerIndex)` is called on each worker's own thread before its first job.
  /// If jobs throw, no new jobs start and the error of the lowest failing index is rethrown.
  public func map<State, Result: Sendable>(
    count: Int,
    makeState: @Sendable (_ workerIndex: Int) throws -> State,
    job: @Sendable (_ state: inout State, _ index: Int) throws -> Result
  ) throws -> [Result] {
    precondition(count >= 0)
    if count == 0 { return [] }
    let board = JobBoard<Result>(count: count)
    let workers = min(threadCount, count)
    if workers == 1 {
      board.work(workerIndex: 0, makeState: makeState, job: job)
    } else {
      DispatchQueue.concurrentPerform(iterations: workers) { workerIndex in
        board.work(workerIndex: workerIndex, makeState: makeState, job: job)
      }
    }
    return try board.results()
  }
}

/// Shared state of one `map` call: the next job index, one result slot per job, the first error.
private final class JobBoard<Result: Sendable>: @unchecked Sendable {
  private let nextIndex = Atomic<Int>(0)
  private let failed = Atomic<Bool>(false)
  // Each slot is written by exactly one worker and read after all workers have finished.
  private let slots: UnsafeMutableBufferPointer<Swift.Result<Result, any Error>?>
  private let count: Int

  init(count: Int) {
    self.count = count
    slots = .allocate(capacity: count)
    slots.initialize(repeating: nil)
  }

  deinit {
    slots.deinitialize()
    slots.deallocate()
  }

  func work<State>(workerIndex: Int, makeState: (Int) throws -> State,
                   job: (inout State, Int) throws -> Result) {
    FloatEnvironment.withSubnormalsFlushed {
      var state: State
      do {
        state = try makeState(workerIndex)
      } catch {
        // Report the failure against the first job this worker would have taken.
        let index = nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue
        if index < count { slots[index] = .failure(error) }
        failed.store(true, ordering: .relaxed)
        return
      }
      while !failed.load(ordering: .relaxed) {
        let index = nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue
        if index >= count { return }
        do {
          slots[index] = .success(try job(&state, index))
        } catch {
          slots[index] = .failure(error)
          failed.store(true, ordering: .relaxed)
        }
      }
    }
  }

  /// The results in job order, or the error of the lowest failing job.
  func results() throws -> [Result] {
    var results = [Result]()
    results.reserveCapacity(count)
    for slot in slots {
      switch slot {
      case .success(let value): results.append(value)
      case .failure(let error): throw error
      case nil: preconditionFailure("a job slot was left empty without a failure")
      }
    }
    return results
  }
}
