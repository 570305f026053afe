/// Fed-Meta-Align's Phase 1: an initializer plugin turns the starting model into the initial
/// global model, visiting devices one at a time through host callbacks — training on a device's
/// Phase 1 support split and evaluating on its query split.
enum SerialInitialization {
  static func run(_ model: ParameterVector, with initializer: PluginInstance, run: FedMetaAlignRun,
                  progress: @escaping (String) -> Void) throws {
    let devices = run.prepared.devices
    var visits: UInt64 = 0
    let services = InitializerServices(
      clientCount: devices.count,
      trainClient: { client, weights, epochs in
        visits += 1
        return try run.serialTrain(client: client, weights: weights, epochs: epochs, visit: visits)
      },
      evaluateClient: { client, weights in
        let evaluation = try run.serialEvaluate(client: client, weights: weights)
        progress("[phase 1] visit \(visits): \(devices[client].name) query loss "
                   + String(format: "%.4f, accuracy %.4f", evaluation.meanLoss, evaluation.accuracy))
        return (evaluation.meanLoss, evaluation.accuracy)
      })
    try initializer.initialize(weights: model, services: services)
  }
}

extension FedMetaAlignRun {
  /// One Phase 1 visit's training: `weights` trained in place for `epochs` (at least 1) on
  /// client `client`'s Phase 1 support split, seeded by the visit's number (1, 2, … in tour
  /// order). Returns the last epoch's loss.
  public func serialTrain(client: Int, weights: UnsafeMutableBufferPointer<Float>, epochs: Int, visit: UInt64) throws
    -> Double
  {
    let local = ParameterVector(count: weights.count)
    local.pointer.update(from: weights.baseAddress!, count: weights.count)
    let options = engine.trainingOptions(epochs: max(1, epochs), learningRate: engine.settings.learningRate,
                                         seed: deriveSeed(engine.settings.seed, .serial, visit))
    let summary = try MLPTrainer(architecture: engine.architecture).train(local, on: prepared.devices[client].phase1.support,
                                                                          options: options)
    weights.baseAddress!.update(from: local.pointer, count: weights.count)
    return summary.epochLosses.last ?? .nan
  }

  /// `weights` evaluated on client `client`'s Phase 1 query split.
  public func serialEvaluate(client: Int, weights: UnsafeBufferPointer<Float>) throws -> Evaluation {
    let local = ParameterVector(count: weights.count)
    local.pointer.update(from: weights.baseAddress!, count: weights.count)
    return try MLPTrainer(architecture: engine.architecture).evaluate(local, on: prepared.devices[client].phase1.query)
  }
}
