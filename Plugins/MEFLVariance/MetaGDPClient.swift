import PluginAPI
import PluginKit
import Synchronization

/// MEFL's client: Meta-GDP, first-order Meta-SGD run through `train_local` [concurrent].
extension MEFLVariancePlugin {
  // MARK: Client: Meta-GDP

  func trainLocal(_ services: ClientServices, weights theta: UnsafeMutableBufferPointer<Float>) throws {
    let count = theta.count
    let client = services.clientID
    guard services.supportCount > 0 else {
      throw PluginFailure.invalid("client \(client) has no support rows to adapt on")
    }
    let alpha = try shared.withLock { state -> [Float] in
      if state.alpha.isEmpty { state.alpha = [Float](repeating: alphaInit, count: count) }
      guard state.alpha.count == count else {
        throw PluginFailure.invalid("n_params \(count) differs from alpha's \(state.alpha.count)")
      }
      return state.alpha
    }
    // Per-call scratch: nothing here is shared with concurrent calls.
    let adapted = try ScratchBuffer(repeating: Float(0), count: count)
    let gradient = try ScratchBuffer(repeating: Float(0), count: count)
    let supportGradientSum = try ScratchBuffer(repeating: Float(0), count: count)
    let alphaGradient = try ScratchBuffer(repeating: Float(0), count: count)
    var variance = try CoordinateVariance(count: varianceMode == .v3 ? count : 0)
    var generator = SeededGenerator(seed: seed, streams: roundCount, UInt64(client))
    let querySplit: DataSplit = services.queryCount > 0 ? .query : .support

    for _ in 0..<outerSteps {
      _ = adapted.buffer.update(fromContentsOf: theta)
      supportGradientSum.buffer.update(repeating: 0)
      for _ in 0..<innerSteps {
        let rows = generator.distinctRows(innerBatchSize, of: services.supportCount)
        _ = try services.gradient(.support, rows: rows, weights: UnsafeBufferPointer(adapted.buffer),
                                  into: gradient.buffer)
        for index in 0..<count {
          adapted.pointer[index] -= alpha[index] * gradient.pointer[index]
          supportGradientSum.pointer[index] += gradient.pointer[index]
        }
        variance.add(gradient.pointer)
      }
      _ = try services.gradient(querySplit, rows: nil, weights: UnsafeBufferPointer(adapted.buffer),
                                into: gradient.buffer)
      for index in 0..<count {
        theta[index] -= metaLearningRate * gradient.pointer[index]
        alphaGradient.pointer[index] -= gradient.pointer[index] * supportGradientSum.pointer[index]
      }
    }
    guard theta.allSatisfy(\.isFinite) else {
      throw PluginFailure.numeric("client \(client): Meta-SGD produced non-finite weights")
    }
    if varianceMode == .v3 { try services.reportMetric(Self.gradientVarianceMetric, variance.meanVariance) }
    if learnAlpha {
      let gradientCopy = Array(alphaGradient.buffer)
      shared.withLock { $0.pendingAlphaGradients[client] = gradientCopy }
    }
  }
}
