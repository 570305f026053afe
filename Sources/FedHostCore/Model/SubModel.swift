extension MLPArchitecture {
  /// The fewest hidden units a sub-model layer keeps: plain ⌈r·d⌉ on a tapering network leaves
  /// a ¼ model with 3- and 2-unit layers in front of 6 or 10 outputs, a bottleneck that no
  /// amount of federation can train through.
  public static let minimumSubModelWidth = 8

  /// The width-scaled architecture for HeteroFL rate `rate` ∈ (0, 1]: every hidden width `d`
  /// becomes `⌈rate·d⌉`, but never fewer than `min(d, max(minimumWidth, output width))` units
  /// (the leading units, so sub-models stay nested); input and output widths are kept.
  public func scaled(rate: Double, minimumWidth: Int = minimumSubModelWidth) throws -> MLPArchitecture {
    guard rate > 0, rate <= 1 else { throw ModelError.invalidRate(rate) }
    var scaled = widths
    let floor = max(minimumWidth, widths[widths.count - 1])
    for index in 1..<(widths.count - 1) {
      let proportional = Int((rate * Double(widths[index])).rounded(.up))
      scaled[index] = max(proportional, min(widths[index], floor))
    }
    return try MLPArchitecture(widths: scaled)
  }
}

/// A HeteroFL sub-model: the leading units of every hidden layer of a global model (see `scaled(rate:)`).
///
/// In the flat layout (see `MLPArchitecture`), sub-layer `l` keeps, for each of its first
/// `sub.widths[l]` input rows, the leading `sub.widths[l + 1]` weights of the global row, and the
/// leading `sub.widths[l + 1]` biases. `extract` and `scatter` walk those contiguous runs.
public struct SubModel: Sendable, Hashable {
  public let global: MLPArchitecture
  public let rate: Double
  public let architecture: MLPArchitecture

  public init(global: MLPArchitecture, rate: Double,
              minimumWidth: Int = MLPArchitecture.minimumSubModelWidth) throws {
    self.global = global
    self.rate = rate
    architecture = try global.scaled(rate: rate, minimumWidth: minimumWidth)
  }

  /// The sub-model's parameters, sliced out of global parameters.
  public func extract(from globalParameters: ParameterVector) throws -> ParameterVector {
    try global.validate(globalParameters)
    let sub = ParameterVector(count: architecture.parameterCount)
    forEachSharedRun { globalOffset, subOffset, count in
      (sub.pointer + subOffset).update(from: globalParameters.pointer + globalOffset, count: count)
    }
    return sub
  }

  /// A sub-model delta placed into a global-sized delta, with the coverage mask (1 = the element
  /// belongs to the sub-model and was trained). Elements outside the sub-model are 0 in both.
  public func scatter(delta subDelta: ParameterVector) throws -> (delta: ParameterVector, coverage: [UInt8]) {
    try architecture.validate(subDelta)
    let delta = ParameterVector(count: global.parameterCount)
    var coverage = [UInt8](repeating: 0, count: global.parameterCount)
    coverage.withUnsafeMutableBufferPointer { mask in
      forEachSharedRun { globalOffset, subOffset, count in
        (delta.pointer + globalOffset).update(from: subDelta.pointer + subOffset, count: count)
        (mask.baseAddress! + globalOffset).update(repeating: 1, count: count)
      }
    }
    return (delta, coverage)
  }

  /// Writes a sub-model's parameters back into the elements of `globalParameters` it covers;
  /// the others keep their values.
  public func insert(_ subParameters: ParameterVector, into globalParameters: ParameterVector) throws {
    try architecture.validate(subParameters)
    try global.validate(globalParameters)
    forEachSharedRun { globalOffset, subOffset, count in
      (globalParameters.pointer + globalOffset).update(from: subParameters.pointer + subOffset, count: count)
    }
  }

  /// Copies the sub-model's elements of a global-shaped buffer into a sub-model-shaped one
  /// (`extract` without allocating; the caller vouches for both lengths).
  func gather(_ globalElements: UnsafePointer<Float>, into subElements: UnsafeMutablePointer<Float>) {
    forEachSharedRun { globalOffset, subOffset, count in
      (subElements + subOffset).update(from: globalElements + globalOffset, count: count)
    }
  }

  /// Copies a sub-model-shaped buffer into the elements of a global-shaped one it covers; the
  /// others keep their values (`insert` without checks).
  func spread(_ subElements: UnsafePointer<Float>, into globalElements: UnsafeMutablePointer<Float>) {
    forEachSharedRun { globalOffset, subOffset, count in
      (globalElements + globalOffset).update(from: subElements + subOffset, count: count)
    }
  }

  /// Calls `body` for every contiguous run the sub-model shares with the global layout.
  private func forEachSharedRun(_ body: (_ globalOffset: Int, _ subOffset: Int, _ count: Int) -> Void) {
    for (globalLayer, subLayer) in zip(global.layers, architecture.layers) {
      for row in 0..<subLayer.inputWidth {
        body(globalLayer.weightOffset + row * globalLayer.outputWidth,
             subLayer.weightOffset + row * subLayer.outputWidth, subLayer.outputWidth)
      }
      body(globalLayer.biasOffset, subLayer.biasOffset, subLayer.outputWidth)
    }
  }
}
