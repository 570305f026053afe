/// How one client's delta relates to a reference direction, over the elements the client
/// covers: inner product, squared norms and squared distance, all accumulated in Double.
///
/// Used for cosine similarities (Fed-Meta-Align, MEFL) and variance observations (MEFL).
/// Elements a client does not cover are left out of every sum, so a sub-model client is
/// compared with the reference on its own sub-model only.
public struct DeltaComparison: Sendable {
  public var dot = 0.0
  public var deltaSquaredNorm = 0.0
  public var referenceSquaredNorm = 0.0
  /// ‖delta − reference‖² over the covered elements (0 unless it was asked for).
  public var squaredDistance = 0.0
  /// Elements the client covers (the length of the compared vectors).
  public var coveredCount = 0

  /// cos(delta, reference); 0 when either vector is zero (the angle is undefined).
  public var cosine: Double {
    let denominator = (deltaSquaredNorm * referenceSquaredNorm).squareRoot()
    return denominator > 0 ? dot / denominator : 0
  }

  /// True when every accumulated quantity is finite.
  public var isFinite: Bool {
    dot.isFinite && deltaSquaredNorm.isFinite && referenceSquaredNorm.isFinite && squaredDistance.isFinite
  }
}

extension AggregationRound {
  /// Compares every update with `reference` (`parameterCount` floats) in one sweep over the
  /// deltas, in parallel tasks on the host's threads. `afterEachBlock`, if given, runs on each
  /// block of elements right after it was compared, while the block's deltas are still in
  /// cache; the sweep then stays on the calling thread and visits the blocks in order.
  /// `measuringDistance` adds ‖Δ − reference‖². `FHP_E_NUMERIC` naming the client if a sum
  /// is not finite.
  public func compareUpdates(with reference: UnsafePointer<Float>, measuringDistance: Bool,
                             afterEachBlock: ((Range<Int>) throws -> Void)? = nil) throws -> [DeltaComparison] {
    let length = blockLength(preferred: WeightedDeltaSum.blockSize, count: parameterCount)
    return try compareInTasks(blockLength: length, measuringDistance: measuringDistance,
                              inOrder: afterEachBlock != nil) { blocks, comparisons in
      for block in blocks {
        comparisons.add(block, reference: reference + block.lowerBound)
        try afterEachBlock?(block)
      }
    }
  }

  /// Compares every update with the weighted mean of the deltas (per element over the
  /// covering clients, rounded to Float, 0 where nobody covers) without a pass of its own:
  /// each block's mean is formed, then the same block's deltas, still in cache, are compared
  /// with it. Otherwise as `compareUpdates(with:measuringDistance:afterEachBlock:)`.
  public func compareUpdatesWithWeightedMean(weights: [Double], measuringDistance: Bool,
                                             afterEachBlock: ((Range<Int>) throws -> Void)? = nil)
    throws -> [DeltaComparison]
  {
    let length = blockLength(preferred: DeltaComparisons.cacheResidentBlockLength(clients: updates.count),
                             count: parameterCount)
    return try compareInTasks(blockLength: length, measuringDistance: measuringDistance,
                              inOrder: afterEachBlock != nil) { blocks, comparisons in
      let mean = try WeightedDeltaSum(updates, weights: weights, maxBlockLength: length)
      let meanBlock = try ScratchBuffer(repeating: Float(0), count: length)
      var nonFinite = SIMD8<Float>()
      for block in blocks {
        nonFinite += mean.computeBlock(block, base: nil, scale: 1, into: meanBlock.pointer)
        comparisons.add(block, reference: meanBlock.pointer)
        try afterEachBlock?(block)
      }
      guard !nonFinite.sum().isNaN else { throw nonFiniteFailure() }
    }
  }

  /// ‖Δ_k‖² of every update over the elements it covers, summed as `DeltaComparisons` sums
  /// (for clipping and q-FedAvg's norms). `FHP_E_NUMERIC` naming the client if not finite.
  public func deltaSquaredNorms() throws -> [Double] {
    let length = blockLength(preferred: WeightedDeltaSum.blockSize, count: parameterCount)
    let zeros = try ScratchBuffer(repeating: Float(0), count: length)
    return try compareInTasks(blockLength: length, measuringDistance: false, inOrder: false) { blocks, comparisons in
      for block in blocks { comparisons.add(block, reference: zeros.pointer) }
    }.map(\.deltaSquaredNorm)
  }

  /// Runs `compareTask` on the blocks of each of the round's tasks (`mapTasks`), each task
  /// into its own sums — on the host's threads, or in task order on this thread if `inOrder` —
  /// and adds the tasks' sums in task order.
  private func compareInTasks(blockLength length: Int, measuringDistance: Bool, inOrder: Bool,
                              _ compareTask: (_ blocks: [Range<Int>], _ comparisons: inout DeltaComparisons) throws -> Void)
    throws -> [DeltaComparison]
  {
    let partial = try mapTasks(blockLength: length, inOrder: inOrder) { blocks in
      var comparisons = DeltaComparisons(updates, measuringDistance: measuringDistance)
      try compareTask(blocks, &comparisons)
      return comparisons
    }
    var total = DeltaComparisons(updates, measuringDistance: measuringDistance)
    for next in partial { total.merge(next) }
    let results = total.results
    guard results.allSatisfy(\.isFinite) else { throw nonFiniteFailure() }
    return results
  }
}

/// The running sums behind `DeltaComparison` for every update, fed block by block (`add`),
/// so that the reference block can be made just before (a mean of the same block) and the
/// block's deltas reused just after, while they are in cache.
///
/// Summation order: every quantity is accumulated in Double by fused multiply-adds into four
/// lanes, element e into lane e mod 4 in increasing e, and the lanes are added in lane order
/// at the end. Blocks start at multiples of 4, so the result does not depend on how the
/// elements are cut into blocks, nor on how the clients are grouped. Parallel tasks each sum
/// their own range of elements and are `merge`d lane by lane in task order; the ranges
/// depend on the round's shape only (`mapTasks`), so the bits never depend on the threads.
///
/// Speed: clients without a mask are compared four at a time, sharing the reference loads.
/// Four lanes (not eight) keep four clients' dot, ‖Δ‖² and distance sums in the 16 AVX2
/// registers; with eight lanes they spilled and the pass was ~1.5× slower. The reference's
/// own norm is the same for every unmasked client and is summed once.
struct DeltaComparisons {
  private let updates: [ClientUpdateView]
  private let measuresDistance: Bool
  /// Indices into `updates` of the clients without a coverage mask, and with one.
  private let unmasked: [Int]
  private let masked: [Int]
  private var lanes: [Lanes]
  /// ‖reference‖² over every element so far: the reference norm of every unmasked client.
  private var referenceSquares = SIMD4<Double>()
  private var elementCount = 0

  init(_ updates: [ClientUpdateView], measuringDistance: Bool) {
    self.updates = updates
    measuresDistance = measuringDistance
    unmasked = updates.indices.filter { updates[$0].coverage == nil }
    masked = updates.indices.filter { updates[$0].coverage != nil }
    lanes = Array(repeating: Lanes(), count: updates.count)
  }

  /// Block length for a fused sweep: every client's slice of a block (4 MiB in all, an
  /// eighth of the L3) must still be cached when the block is compared; at most the
  /// aggregation kernel's block.
  static func cacheResidentBlockLength(clients: Int) -> Int {
    let budget = 4 << 20
    return min(WeightedDeltaSum.blockSize, max(64, budget / (4 * max(clients, 1)) / 64 * 64))
  }

  /// Adds the elements of `block` (starting at a multiple of 4); `reference` points at the
  /// reference's element `block.lowerBound`.
  mutating func add(_ block: Range<Int>, reference: UnsafePointer<Float>) {
    assert(block.lowerBound % 4 == 0, "lane e mod 4 needs blocks aligned to 4")
    if measuresDistance {
      add(block, UnsafeRawPointer(reference), Distance.Included.self)
    } else {
      add(block, UnsafeRawPointer(reference), Distance.Skipped.self)
    }
    elementCount += block.count
  }

  private mutating func add<D: DistanceChoice>(_ block: Range<Int>, _ reference: UnsafeRawPointer, _ choice: D.Type) {
    let quads = block.count & ~3  // elements taken four at a time; then a zero-padded tail
    func delta(_ client: Int) -> UnsafeRawPointer { UnsafeRawPointer(updates[client].delta + block.lowerBound) }
    var group = 0
    while group + 4 <= unmasked.count {
      let clients = (unmasked[group], unmasked[group + 1], unmasked[group + 2], unmasked[group + 3])
      (lanes[clients.0], lanes[clients.1], lanes[clients.2], lanes[clients.3]) = Self.compareFour(
        (lanes[clients.0], lanes[clients.1], lanes[clients.2], lanes[clients.3]),
        (delta(clients.0), delta(clients.1), delta(clients.2), delta(clients.3)), reference, quads, D.self)
      group += 4
    }
    for client in unmasked[group...] {
      lanes[client] = Self.compareOne(lanes[client], delta(client), reference, quads, D.self)
    }
    for client in masked {
      guard let coverage = updates[client].coverage else { continue }
      lanes[client] = Self.compareMasked(lanes[client], delta(client), UnsafeRawPointer(coverage + block.lowerBound),
                                         reference, quads, D.self)
    }
    if !unmasked.isEmpty { referenceSquares = Self.addSquares(referenceSquares, reference, quads) }
    guard quads < block.count else { return }

    // The last one to three elements, zero-padded to a quad (zeros add nothing to any sum).
    let target = Self.loadTail(reference, quads, block.count)
    for client in updates.indices {
      let values = Self.loadTail(delta(client), quads, block.count)
      if let coverage = updates[client].coverage {
        var flags = SIMD4<UInt8>()
        for lane in 0..<(block.count - quads) { flags[lane] = coverage[block.lowerBound + quads + lane] }
        lanes[client].addMasked(delta: values, reference: target, flags: flags, D.self)
      } else {
        lanes[client].add(delta: values, reference: target, D.self)
      }
    }
    if !unmasked.isEmpty { referenceSquares = referenceSquares.addingProduct(target, target) }
  }

  /// Adds the sums of `other`, which covered the elements right after this one's.
  mutating func merge(_ other: DeltaComparisons) {
    for client in lanes.indices {
      lanes[client].dot += other.lanes[client].dot
      lanes[client].deltaSquares += other.lanes[client].deltaSquares
      lanes[client].distances += other.lanes[client].distances
      lanes[client].referenceSquares += other.lanes[client].referenceSquares
      lanes[client].covered &+= other.lanes[client].covered
    }
    referenceSquares += other.referenceSquares
    elementCount += other.elementCount
  }

  /// The comparisons, lanes added in lane order.
  var results: [DeltaComparison] {
    func total(_ lanes: SIMD4<Double>) -> Double { lanes[0] + lanes[1] + lanes[2] + lanes[3] }
    let referenceSquaredNorm = total(referenceSquares)
    return updates.indices.map { client in
      let sums = lanes[client]
      let isMasked = updates[client].coverage != nil
      return DeltaComparison(
        dot: total(sums.dot), deltaSquaredNorm: total(sums.deltaSquares),
        referenceSquaredNorm: isMasked ? total(sums.referenceSquares) : referenceSquaredNorm,
        squaredDistance: total(sums.distances),
        coveredCount: isMasked ? Int(sums.covered.wrappedSum()) : elementCount)
    }
  }

  // MARK: Kernels over `quads` elements (a multiple of 4), four at a time. They take and
  // return the lane sums by value: with `inout`, the compiler stored them back to memory
  // on every iteration (it could not rule out that the delta loads alias them).

  @inline(__always)
  private static func load(_ source: UnsafeRawPointer, _ index: Int) -> SIMD4<Double> {
    SIMD4<Double>(source.loadUnaligned(fromByteOffset: index * 4, as: SIMD4<Float>.self))
  }

  /// Elements `start..<end` (fewer than four) of a Float array, zero-padded.
  private static func loadTail(_ source: UnsafeRawPointer, _ start: Int, _ end: Int) -> SIMD4<Double> {
    var values = SIMD4<Double>()
    for lane in 0..<(end - start) { values[lane] = Double(source.load(fromByteOffset: (start + lane) * 4, as: Float.self)) }
    return values
  }

  private static func compareFour<D: DistanceChoice>(
    _ lanes: (Lanes, Lanes, Lanes, Lanes),
    _ deltas: (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer),
    _ reference: UnsafeRawPointer, _ quads: Int, _ choice: D.Type
  ) -> (Lanes, Lanes, Lanes, Lanes) {
    var (a, b, c, d) = lanes
    var index = 0
    while index < quads {
      let target = load(reference, index)
      a.add(delta: load(deltas.0, index), reference: target, D.self)
      b.add(delta: load(deltas.1, index), reference: target, D.self)
      c.add(delta: load(deltas.2, index), reference: target, D.self)
      d.add(delta: load(deltas.3, index), reference: target, D.self)
      index += 4
    }
    return (a, b, c, d)
  }

  private static func compareOne<D: DistanceChoice>(_ lanes: Lanes, _ delta: UnsafeRawPointer,
                                                    _ reference: UnsafeRawPointer, _ quads: Int, _ choice: D.Type)
    -> Lanes
  {
    var sums = lanes
    var index = 0
    while index < quads {
      sums.add(delta: load(delta, index), reference: load(reference, index), D.self)
      index += 4
    }
    return sums
  }

  private static func compareMasked<D: DistanceChoice>(_ lanes: Lanes, _ delta: UnsafeRawPointer,
                                                       _ coverage: UnsafeRawPointer, _ reference: UnsafeRawPointer,
                                                       _ quads: Int, _ choice: D.Type) -> Lanes {
    var sums = lanes
    var index = 0
    while index < quads {
      sums.addMasked(delta: load(delta, index), reference: load(reference, index),
                     flags: coverage.loadUnaligned(fromByteOffset: index, as: SIMD4<UInt8>.self), D.self)
      index += 4
    }
    return sums
  }

  private static func addSquares(_ lanes: SIMD4<Double>, _ source: UnsafeRawPointer, _ quads: Int) -> SIMD4<Double> {
    var sums = lanes
    var index = 0
    while index < quads {
      let values = load(source, index)
      sums = sums.addingProduct(values, values)
      index += 4
    }
    return sums
  }
}

/// Whether the kernels also sum ‖Δ − reference‖². A type rather than a flag so that each
/// choice gets its own specialized loops (a Bool argument stayed a test in the inner loop).
protocol DistanceChoice { static var isIncluded: Bool { get } }

enum Distance {
  enum Included: DistanceChoice { static var isIncluded: Bool { true } }
  enum Skipped: DistanceChoice { static var isIncluded: Bool { false } }
}

extension DeltaComparisons {
  /// One client's lane sums; the kernels keep them in registers for a whole block.
  struct Lanes {
    var dot = SIMD4<Double>(), deltaSquares = SIMD4<Double>(), distances = SIMD4<Double>()
    /// Masked clients only (the unmasked ones share `DeltaComparisons.referenceSquares`).
    var referenceSquares = SIMD4<Double>()
    var covered = SIMD4<Int64>()

    @inline(__always)
    mutating func add<D: DistanceChoice>(delta: SIMD4<Double>, reference: SIMD4<Double>, _ choice: D.Type) {
      dot = dot.addingProduct(delta, reference)
      deltaSquares = deltaSquares.addingProduct(delta, delta)
      if D.isIncluded {
        let difference = delta - reference
        distances = distances.addingProduct(difference, difference)
      }
    }

    /// Adds the elements whose coverage flag is set; the others must not influence any sum,
    /// even if they hold NaN.
    @inline(__always)
    mutating func addMasked<D: DistanceChoice>(delta: SIMD4<Double>, reference: SIMD4<Double>, flags: SIMD4<UInt8>,
                                               _ choice: D.Type) {
      let covered = SIMD4<Int64>(truncatingIfNeeded: flags) .!= 0
      let target = SIMD4<Double>().replacing(with: reference, where: covered)
      add(delta: SIMD4<Double>().replacing(with: delta, where: covered), reference: target, D.self)
      referenceSquares = referenceSquares.addingProduct(target, target)
      self.covered &+= SIMD4<Int64>().replacing(with: 1, where: covered)
    }
  }
}
