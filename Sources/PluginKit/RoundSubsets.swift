extension AggregationRound {
  /// The same round over the updates at `indices` only (in that order): for strategies that
  /// first select clients (Krum, Multi-Krum, Bulyan) and then aggregate the chosen ones with
  /// the ordinary kernels. The subset writes the same `output`; its `reportWeights` writes
  /// nothing, so that callers report one weight per update of the full round on the full round.
  public func selecting(_ indices: [Int]) -> AggregationRound {
    AggregationRound(round: round, parameterCount: parameterCount, global: global,
                     updates: indices.map { updates[$0] }, output: output, weightsOutput: nil, host: host,
                     context: context)
  }

  /// True when some update carries a coverage mask.
  public var hasCoverageMasks: Bool { updates.contains { $0.coverage != nil } }

  /// Writes 1 into `flags[i]` if some update covers element `block.lowerBound + i`, else 0.
  public func writeCoverageUnion(_ block: Range<Int>, into flags: UnsafeMutablePointer<UInt8>) {
    guard hasCoverageMasks else {
      flags.update(repeating: 1, count: block.count)
      return
    }
    flags.update(repeating: 0, count: block.count)
    for update in updates {
      guard let coverage = update.coverage else {
        flags.update(repeating: 1, count: block.count)
        return
      }
      for index in 0..<block.count where coverage[block.lowerBound + index] != 0 { flags[index] = 1 }
    }
  }
}
