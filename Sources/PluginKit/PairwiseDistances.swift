extension AggregationRound {
  /// ‖Δ_i − Δ_j‖² for every pair of updates (a symmetric matrix, row-major, zero diagonal),
  /// the kernel of Krum, Multi-Krum and Bulyan. An element a client does not cover counts as
  /// 0 for it (the client did not move it), whatever its delta holds.
  ///
  /// Blocks of elements are copied per client (masked elements zeroed) into a buffer that stays
  /// in cache while all pairs are compared. Each pair's sum is accumulated in Double over four
  /// lanes, each block's lanes added to the pair's total in block order, and the tasks' totals
  /// in task order: the cut depends on the round's shape alone, so the bits do not depend on the
  /// threads. `FHP_E_NUMERIC` naming the client if a covered delta is not finite.
  public func pairwiseSquaredDistances() throws -> [Double] {
    let clients = updates.count
    let length = blockLength(preferred: DeltaComparisons.cacheResidentBlockLength(clients: clients),
                             count: parameterCount)
    let partials = try mapTasks(blockLength: length) { blocks -> (sums: [Double], finite: Bool) in
      let slices = try ScratchBuffer(repeating: Float(0), count: clients * length)
      var sums = [Double](repeating: 0, count: clients * clients)
      var check = Float(0)
      for block in blocks {
        for (client, update) in updates.enumerated() {
          let slice = slices.pointer + client * length
          for index in 0..<block.count {
            let element = block.lowerBound + index
            let covered = update.coverage.map { $0[element] != 0 } ?? true
            slice[index] = covered ? update.delta[element] : 0
            check += slice[index] - slice[index]
          }
        }
        for i in 0..<clients {
          for j in (i + 1)..<clients {
            sums[i * clients + j] += Self.squaredDistance(slices.pointer + i * length, slices.pointer + j * length,
                                                          block.count)
          }
        }
      }
      return (sums, !check.isNaN)
    }
    guard partials.allSatisfy(\.finite) else { throw nonFiniteFailure() }
    var distances = [Double](repeating: 0, count: clients * clients)
    for partial in partials { for index in distances.indices { distances[index] += partial.sums[index] } }
    for i in 0..<clients { for j in 0..<i { distances[i * clients + j] = distances[j * clients + i] } }
    return distances
  }

  @inline(__always)
  private static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Double {
    var lanes = SIMD4<Double>()
    var index = 0
    while index + 4 <= count {
      let difference = SIMD4<Double>(UnsafeRawPointer(a).loadUnaligned(fromByteOffset: index * 4, as: SIMD4<Float>.self))
        - SIMD4<Double>(UnsafeRawPointer(b).loadUnaligned(fromByteOffset: index * 4, as: SIMD4<Float>.self))
      lanes = lanes.addingProduct(difference, difference)
      index += 4
    }
    while index < count {
      let difference = Double(a[index]) - Double(b[index])
      lanes[index & 3] = lanes[index & 3].addingProduct(difference, difference)
      index += 1
    }
    return lanes[0] + lanes[1] + lanes[2] + lanes[3]
  }
}

/// Krum and Multi-Krum (Blanchard et al. 2017), as Flower's `select_multikrum`: client i's score
/// is the sum of its squared distances to its max(1, n − f − 2) nearest other clients; the
/// `keep` lowest scores are selected (ties: the earlier update first).
public enum KrumSelection {
  /// Indices into `round.updates` of the selected clients, best score first.
  public static func select(_ round: AggregationRound, malicious: Int, keep: Int) throws -> [Int] {
    let clients = round.updates.count
    let distances = try round.pairwiseSquaredDistances()
    let nearest = min(max(1, clients - malicious - 2), clients - 1)
    let scores = (0..<clients).map { i -> Double in
      let others = (0..<clients).filter { $0 != i }.map { distances[i * clients + $0] }.sorted()
      return others.prefix(nearest).reduce(0, +)
    }
    let order = (0..<clients).sorted { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    return Array(order.prefix(max(1, keep)))
  }

  /// Multi-Krum: the sample-weighted FedAvg of the `keep` selected updates (Krum: keep = 1,
  /// the chosen delta itself; with masks, per element over the selected clients covering it).
  /// Reports p_k renormalized over the selected clients, 0 for the others.
  public static func aggregate(_ round: AggregationRound, malicious: Int, keep: Int) throws {
    let selected = try select(round, malicious: malicious, keep: keep)
    let subset = round.selecting(selected)
    let subsetWeights = FederatedAveraging.sampleWeights(subset.updates)
    try subset.writeGlobalPlusMean(weights: subsetWeights, step: 1)
    var weights = [Double](repeating: 0, count: round.updates.count)
    for (index, update) in zip(selected, subsetWeights) { weights[index] = update }
    round.reportWeights(weights)
  }
}
