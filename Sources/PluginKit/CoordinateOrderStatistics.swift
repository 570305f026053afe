/// Coordinate-wise order statistics, the kernel of FedMedian, FedTrimmedAvg and Bulyan's
/// second stage: for each element the covering clients' deltas are sorted and a window of the
/// sorted values is averaged,
///
///     out[e] = global[e] + mean(window of sorted {Δ_k[e] : k covers e})
///
/// with the window
///
///     median            the middle value (odd count) or the two middle ones (even), numpy's median
///     trimmed(β)        drop ⌊β·c⌋ values at each end, Flower's (scipy's) trim_mean
///     closestToMedian   the max(1, c − 2f) values closest to the median (Bulyan's β closest),
///                       a contiguous run of the sorted values; ties go to the lower value
///
/// where c is the number of clients covering e (with coverage masks it varies per element; an
/// element nobody covers keeps global's value). Flower ranks parameters, FedHost deltas: the
/// same order, as global[e] is common to all.
///
/// Sorting is by (value, client index), a total order, and each element is computed by one task
/// in Double from the float32 deltas, so the bits do not depend on tasks or threads.
public enum CoordinateWindow: Sendable, Equatable {
  case median
  case trimmed(fraction: Double)
  case closestToMedian(trim: Int)

  /// The indices of `sorted` (ascending, non-empty) to average.
  func window(_ sorted: UnsafeBufferPointer<OrderEntry>) -> Range<Int> {
    let count = sorted.count
    switch self {
    case .median:
      return count % 2 == 1 ? count / 2..<count / 2 + 1 : count / 2 - 1..<count / 2 + 1
    case let .trimmed(fraction):
      let cut = Int(fraction * Double(count))
      return cut..<count - cut
    case let .closestToMedian(trim):
      let keep = max(1, count - 2 * trim)
      let middle = count / 2
      let median = count % 2 == 1 ? Double(sorted[middle].value)
        : (Double(sorted[middle - 1].value) + Double(sorted[middle].value)) / 2
      var lower = middle, upper = middle  // [lower, upper) grows from the median outwards
      while upper - lower < keep {
        let takeLower = lower > 0 && (upper == count
          || median - Double(sorted[lower - 1].value) <= Double(sorted[upper].value) - median)
        if takeLower { lower -= 1 } else { upper += 1 }
      }
      return lower..<upper
    }
  }
}

/// One client's value of one element, sorted by value, then client.
struct OrderEntry {
  var value: Float
  var client: Int32

  @inline(__always)
  static func < (a: OrderEntry, b: OrderEntry) -> Bool {
    a.value < b.value || (a.value == b.value && a.client < b.client)
  }
}

extension AggregationRound {
  /// Writes the coordinate-wise window means (see `CoordinateWindow`) into `output` and
  /// returns each client's share: the mean over covered elements of 1/|window| where the
  /// client's value was in the window, 0 elsewhere (the shares sum to 1; a client whose
  /// values were always trimmed away gets 0). `FHP_E_NUMERIC` naming the client if a covered
  /// delta is not finite.
  public func writeCoordinateWindowMeans(_ window: CoordinateWindow) throws -> [Double] {
    let clients = updates.count
    let length = blockLength(preferred: WeightedDeltaSum.blockSize, count: parameterCount)
    let deltas = updates.map(\.delta)
    let masks = updates.map(\.coverage)
    let partials = try mapTasks(blockLength: length) { blocks -> (shares: [Double], covered: Int, finite: Bool) in
      let entries = try ScratchBuffer(repeating: OrderEntry(value: 0, client: 0), count: clients)
      let shares = try ScratchBuffer(repeating: 0.0, count: clients)
      var covered = 0
      var check = Float(0)  // NaN iff some covered value is not finite
      for block in blocks {
        for element in block {
          var count = 0
          for client in 0..<clients {
            if let mask = masks[client], mask[element] == 0 { continue }
            let value = deltas[client][element]
            check += value - value
            entries.pointer[count] = OrderEntry(value: value, client: Int32(client))
            count += 1
          }
          guard count > 0 else {
            output[element] = global[element]
            continue
          }
          let sorted = UnsafeMutableBufferPointer(start: entries.pointer, count: count)
          Self.sort(sorted)
          let kept = window.window(UnsafeBufferPointer(sorted))
          var sum = 0.0
          for index in kept { sum += Double(sorted[index].value) }
          let share = 1 / Double(kept.count)
          for index in kept { shares.pointer[Int(sorted[index].client)] += share }
          output[element] = Float(Double(global[element]) + sum / Double(kept.count))
          covered += 1
        }
      }
      return (Array(shares.buffer), covered, !check.isNaN)
    }
    guard partials.allSatisfy(\.finite) else { throw nonFiniteFailure() }
    var shares = [Double](repeating: 0, count: clients)
    for partial in partials { for client in shares.indices { shares[client] += partial.shares[client] } }
    let covered = Double(partials.reduce(0) { $0 + $1.covered })
    return covered > 0 ? shares.map { $0 / covered } : shares
  }

  /// Insertion sort for the few clients of a typical round; the library sort beyond.
  private static func sort(_ entries: UnsafeMutableBufferPointer<OrderEntry>) {
    guard entries.count > 32 else {
      for index in entries.indices.dropFirst() {
        let entry = entries[index]
        var slot = index
        while slot > 0 && entry < entries[slot - 1] {
          entries[slot] = entries[slot - 1]
          slot -= 1
        }
        entries[slot] = entry
      }
      return
    }
    var all = entries
    all.sort(by: <)
  }
}
