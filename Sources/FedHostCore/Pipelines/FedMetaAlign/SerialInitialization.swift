/// Fed-Meta-Align's Phase 1: an initializer plugin turns the starting model into the initial
/// global model, visiting devices one at a time through host callbacks — training on a device's
/// Phase 1 support split and evaluating on its query split. A device with a sub-model trains
/// and is evaluated on its own sub-model (the leading units of the weights it is handed).
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
  /// The weights an initializer passed, and client `client`'s own (sub-)model sliced out of them.
  private func deviceModel(_ client: Int, _ weights: UnsafeBufferPointer<Float>) throws
    -> (full: ParameterVector, local: ParameterVector)
  {
    let full = ParameterVector(count: weights.count)
    full.pointer.update(from: weights.baseAddress!, count: weights.count)
    return (full, try engine.localModel(full, client: client))
  }

  /// One Phase 1 visit's training: client `client`'s (sub-)model of `weights` trained for
  /// `epochs` (at least 1) on its Phase 1 support split, seeded by the visit's number (1, 2, …
  /// in tour order), and written back into the units it covers. Returns the last epoch's loss.
  public func serialTrain(client: Int, weights: UnsafeMutableBufferPointer<Float>, epochs: Int, visit: UInt64) throws
    -> Double
  {
    let (full, local) = try deviceModel(client, UnsafeBufferPointer(weights))
    let options = engine.trainingOptions(epochs: max(1, epochs), learningRate: engine.settings.learningRate,
                                         seed: deriveSeed(engine.settings.seed, .serial, visit),
                                         trainingOn: prepared.devices[client].phase1.support)
    let summary = try MLPTrainer(architecture: engine.architecture(ofClient: client))
      .train(local, on: prepared.devices[client].phase1.support, options: options)
    let subModel = engine.subModel(ofClient: client)
    try subModel?.insert(local, into: full)
    let trained = subModel == nil ? local : full
    withExtendedLifetime(trained) { weights.baseAddress!.update(from: trained.pointer, count: weights.count) }
    return summary.epochLosses.last ?? .nan
  }

  /// Client `client`'s (sub-)model of `weights` evaluated on its Phase 1 query split.
  public func serialEvaluate(client: Int, weights: UnsafeBufferPointer<Float>) throws -> Evaluation {
    try MLPTrainer(architecture: engine.architecture(ofClient: client))
      .evaluate(try deviceModel(client, weights).local, on: prepared.devices[client].phase1.query)
  }
}
