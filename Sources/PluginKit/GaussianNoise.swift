extension AggregationRound {
  /// Adds N(0, σ²) noise to every element of `output` that some update covers (elements
  /// nobody covers keep global's value). The noise of element e depends on `seed`, `stream`
  /// (e.g. a count of the plugin's noisy releases, saved with its state) and e alone: each
  /// fixed block of elements draws from its own generator, seeded by (seed, stream, block),
  /// in element order, so the bits do not depend on tasks, threads or coverage masks.
  /// `FHP_E_NUMERIC` if a result is not finite.
  public func addGaussianNoise(standardDeviation sigma: Double, seed: UInt64, stream: UInt64) throws {
    let length = blockLength(preferred: WeightedDeltaSum.blockSize, count: parameterCount)
    let checks = try mapTasks(blockLength: length) { blocks -> Float in
      let covered = try ScratchBuffer(repeating: UInt8(0), count: length)
      var check = Float(0)
      for block in blocks {
        writeCoverageUnion(block, into: covered.pointer)
        var generator = SeededGenerator(seed: seed, streams: stream, UInt64(block.lowerBound / length))
        func add(_ noise: Double, at index: Int) {
          let element = block.lowerBound + index
          guard index < block.count, covered.pointer[index] != 0 else { return }
          output[element] = Float(Double(output[element]) + sigma * noise)
          check += output[element] - output[element]
        }
        for index in stride(from: 0, to: block.count, by: 2) {
          let (first, second) = generator.nextGaussianPair()
          add(first, at: index)
          add(second, at: index + 1)
        }
      }
      return check
    }
    guard !checks.reduce(0, +).isNaN else {
      throw PluginFailure.numeric("the noisy model would not be finite (noise standard deviation \(sigma))")
    }
  }
}
