/// Fed-Meta-Align's Phase 1: an initializer plugin turns the starting model into the initial
/// global model, visiting devices one at a time through host callbacks — training on a device's
/// Phase 1 support split and evaluating on its query split.
enum SerialInitialization {
  static func run(_ model: ParameterVector, with initializer: PluginInstance, run: FedMetaAlignRun,
                  progress: @escaping (String) -> Void) throws {
    let engine = run.engine
    let devices = run.prepared.devices
    let trainer = MLPTrainer(architecture: engine.architecture)
    var visits: UInt64 = 0
    let services = InitializerServices(
      clientCount: devices.count,
      trainClient: { client, weights, epochs in
        visits += 1
        let local = ParameterVector(count: weights.count)
        local.pointer.update(from: weights.baseAddress!, count: weights.count)
        let options = engine.trainingOptions(epochs: max(1, epochs), learningRate: engine.settings.learningRate,
                                             seed: deriveSeed(engine.settings.seed, .serial, visits))
        let summary = try trainer.train(local, on: devices[client].phase1.support, options: options)
        weights.baseAddress!.update(from: local.pointer, count: weights.count)
        return summary.epochLosses.last ?? .nan
      },
      evaluateClient: { client, weights in
        let local = ParameterVector(count: weights.count)
        local.pointer.update(from: weights.baseAddress!, count: weights.count)
        let evaluation = try trainer.evaluate(local, on: devices[client].phase1.query)
        progress("[phase 1] visit \(visits): \(devices[client].name) query loss "
                   + String(format: "%.4f, accuracy %.4f", evaluation.meanLoss, evaluation.accuracy))
        return (evaluation.meanLoss, evaluation.accuracy)
      })
    try initializer.initialize(weights: model, services: services)
  }
}
