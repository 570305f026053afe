import FedHostCore
import Testing

@Suite struct ModelDeterminismTests {
  let architecture = try! MLPArchitecture(widths: [9, 48, 24, 1])

  func clientSamples(_ client: Int) -> Samples {
    randomSamples(count: 40 + client * 7, width: 9, classCount: 2, seed: UInt64(100 + client))
  }

  func options(_ client: Int) -> TrainingOptions {
    TrainingOptions(optimizer: .adam(learningRate: 1e-3), epochs: 2, batchSize: client % 2 + 1,
                    seed: UInt64(client))
  }

  @Test func sameSeedSameBitsOtherSeedOtherBits() throws {
    let trainer = MLPTrainer(architecture: architecture)
    let start = architecture.initialParameters(seed: 3)
    let samples = clientSamples(0)
    let first = try trainer.trainDelta(from: start, on: samples, options: options(0)).delta
    let again = try trainer.trainDelta(from: start, on: samples, options: options(0)).delta
    var reshuffled = options(0)
    reshuffled.seed = 99
    let other = try trainer.trainDelta(from: start, on: samples, options: reshuffled).delta
    #expect(bitPatterns(first) == bitPatterns(again))
    #expect(bitPatterns(first) != bitPatterns(other))
  }

  @Test func workerPoolResultsDoNotDependOnThreadCount() throws {
    let start = architecture.initialParameters(seed: 3)
    func run(threads: Int) throws -> [[UInt32]] {
      try WorkerPool(threadCount: threads).map(count: 6, makeState: { _ in
        MLPTrainer(architecture: architecture)
      }) { trainer, client in
        bitPatterns(try trainer.trainDelta(from: start, on: clientSamples(client), options: options(client)).delta)
      }
    }
    let direct = try (0..<6).map { client in
      bitPatterns(try MLPTrainer(architecture: architecture)
        .trainDelta(from: start, on: clientSamples(client), options: options(client)).delta)
    }
    #expect(try run(threads: 1) == direct)
    #expect(try run(threads: 2) == direct)
    #expect(try run(threads: 3) == direct)
  }

  @Test func workerPoolRethrowsTheLowestFailingJob() throws {
    struct JobFailed: Error, Equatable { var index: Int }
    #expect(throws: JobFailed(index: 3)) {
      try WorkerPool(threadCount: 2).map(count: 10, makeState: { _ in () }) { _, index in
        if index == 3 || index == 7 { throw JobFailed(index: index) }
        return index
      }
    }
    #expect(try WorkerPool(threadCount: 2).map(count: 0, makeState: { _ in () }) { _, index in index } == [])
  }

  @Test func workersFlushSubnormalsAndTheCallerModeIsRestored() throws {
    let before = FloatEnvironment.flushesSubnormals
    let modes = try WorkerPool(threadCount: 2).map(count: 4, makeState: { _ in () }) { _, _ in
      FloatEnvironment.flushesSubnormals
    }
    #expect(modes.allSatisfy { $0 })
    #expect(FloatEnvironment.withSubnormalsFlushed { FloatEnvironment.flushesSubnormals })
    #expect(FloatEnvironment.flushesSubnormals == before)
    // Flushing is visible in arithmetic: the smallest normal halved becomes 0, not a subnormal.
    // (Operands come from a vector so the division happens at run time.)
    let operands = ParameterVector([Float.leastNormalMagnitude, 2])
    #expect(FloatEnvironment.withSubnormalsFlushed { operands[0] / operands[1] } == 0)
    if !before { #expect(operands[0] / operands[1] == Float.leastNormalMagnitude / 2) }
  }

  @Test func aClientCostsItsDataAndADelta() throws {
    let trainer = MLPTrainer(architecture: .paper)
    // Scratch is per worker: 4 parameter-sized vectors plus activations and deltas.
    #expect(trainer.scratchByteCount < 5 * MLPArchitecture.paper.parameterCount * 4)
    let result = try trainer.trainDelta(from: MLPArchitecture.paper.initialParameters(seed: 1),
                                        on: randomSamples(count: 4, width: 9, classCount: 2, seed: 1))
    #expect(result.delta.count == 46_637)
  }
}
