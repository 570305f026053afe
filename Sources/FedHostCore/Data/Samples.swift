/// A dense block of labelled samples: the unit every trainer, evaluator and split works on.
///
/// Features are row-major float32 (`count × width`), labels are class indices: 0/1 for a
/// binary task, `0..<classCount` for a multi-class one.
public struct Samples: Sendable, Equatable {
  public var features: [Float]
  public var labels: [Int32]
  public let width: Int

  public var count: Int { labels.count }

  public init(features: [Float], labels: [Int32], width: Int) {
    precondition(width > 0 && features.count == labels.count * width,
                 "features must hold labels.count × width values")
    self.features = features
    self.labels = labels
    self.width = width
  }

  /// The rows at `indices`, in that order.
  public func subset(_ indices: some Collection<Int>) -> Samples {
    var rows = [Float]()
    rows.reserveCapacity(indices.count * width)
    var picked = [Int32]()
    picked.reserveCapacity(indices.count)
    features.withUnsafeBufferPointer { all in
      for row in indices {
        rows.append(contentsOf: all[(row * width)..<((row + 1) * width)])
        picked.append(labels[row])
      }
    }
    return Samples(features: rows, labels: picked, width: width)
  }

  /// Row `row`'s features.
  public func row(_ row: Int) -> ArraySlice<Float> {
    features[(row * width)..<((row + 1) * width)]
  }
}
