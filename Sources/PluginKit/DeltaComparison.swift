/// How one client's delta relates to a reference direction, over the elements the client
/// covers: inner product, squared norms and squared distance, all accumulated in Double.
///
/// Used for cosine similarities (Fed-Meta-Align, MEFL) and variance observations (MEFL).
/// Elements a client does not cover are left out of every sum, so a sub-model client is
/// compared with the reference on its own sub-model only.
///
/// Summation order: eight Double lanes (element e goes to lane e mod 8 within each chunk of
/// eight), lanes added in lane order, then the tail elements in order. Deterministic.
public struct DeltaComparison: Sendable {
  public var dot = 0.0
  public var deltaSquaredNorm = 0.0
  public var referenceSquaredNorm = 0.0
  /// ‖delta − reference‖² over the covered elements.
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

  /// Compares `update`'s delta with `reference` (`count` floats).
  public init(_ update: ClientUpdateView, reference: UnsafePointer<Float>, count: Int) {
    var dots = SIMD8<Double>(), deltaSquares = SIMD8<Double>(), referenceSquares = SIMD8<Double>()
    var distances = SIMD8<Double>(), covered = SIMD8<Int64>()
    let deltaBytes = UnsafeRawPointer(update.delta)
    let referenceBytes = UnsafeRawPointer(reference)
    var index = 0
    while index + 8 <= count {
      var delta = SIMD8<Double>(deltaBytes.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self))
      var target = SIMD8<Double>(referenceBytes.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self))
      if let coverage = update.coverage {
        let flags = UnsafeRawPointer(coverage).loadUnaligned(fromByteOffset: index, as: SIMD8<UInt8>.self)
        let mask = SIMD8<Int64>(truncatingIfNeeded: flags) .!= 0
        delta = SIMD8<Double>().replacing(with: delta, where: mask)
        target = SIMD8<Double>().replacing(with: target, where: mask)
        covered &+= SIMD8<Int64>().replacing(with: 1, where: mask)
      } else {
        covered &+= 1
      }
      let difference = delta - target
      dots = dots.addingProduct(delta, target)
      deltaSquares = deltaSquares.addingProduct(delta, delta)
      referenceSquares = referenceSquares.addingProduct(target, target)
      distances = distances.addingProduct(difference, difference)
      index += 8
    }
    for lane in 0..<8 {
      dot += dots[lane]
      deltaSquaredNorm += deltaSquares[lane]
      referenceSquaredNorm += referenceSquares[lane]
      squaredDistance += distances[lane]
      coveredCount += Int(covered[lane])
    }
    while index < count {
      if update.coverage.map({ $0[index] != 0 }) ?? true {
        let delta = Double(update.delta[index]), target = Double(reference[index])
        dot = dot.addingProduct(delta, target)
        deltaSquaredNorm = deltaSquaredNorm.addingProduct(delta, delta)
        referenceSquaredNorm = referenceSquaredNorm.addingProduct(target, target)
        squaredDistance = squaredDistance.addingProduct(delta - target, delta - target)
        coveredCount += 1
      }
      index += 1
    }
  }
}
