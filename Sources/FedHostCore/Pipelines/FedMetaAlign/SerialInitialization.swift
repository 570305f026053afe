/// Fed-Meta-Align's Phase 1: an initializer plugin turns the starting model into the initial
/// global model, visiting devices one at a time through host callbacks — training on a device's
/// Phase 1 support split and evaluating on its query split. A device with a sub-model trains
/// and is evaluated on its own sub-model (the leading units of the weights it is handed).
enum SerialInitialization {
  static func run(_ model: ParameterVector, with initializer: PluginInstance, run: FedMetaAlignRun,
                  progress: @escaping (String) -> Void) throws {
    let engine = run.engine
    let devices = run.prepared.devices
    let trainers = (0..<devices.count).map { MLPTrainer(architecture: engine.architecture(ofClient: $0)) }
    var visits: UInt64 = 0
    /// The weights the initializer passed, and the device's own (sub-)model sliced out of them.
    func deviceModel(_ client: Int, _ weights: UnsafeBufferPointer<Float>) throws -> (full: ParameterVector, local: ParameterVector) {
      let full = ParameterVector(count: weights.count)
      full.pointer.update(from: weights.baseAddress!, count: weights.count)
      return (full, try engine.localModel(full, client: client))
    }
    let services = InitializerServices(
      clientCount: devices.count,
      trainClient: { client, weights, epochs in
        visits += 1
        let (full, local) = try deviceModel(client, UnsafeBufferPointer(weights))
        let options = engine.trainingOptions(epochs: max(1, epochs), learningRate: engine.settings.learningRate,
                                             seed: deriveSeed(engine.settings.seed, .serial, visits))
        let summary = try trainers[client].train(local, on: devices[client].phase1.support, options: options)
        try engine.subModel(ofClient: client)?.insert(local, into: full)
        let trained = engine.subModel(ofClient: client) == nil ? local : full
        weights.baseAddress!.update(from: trained.pointer, count: weights.count)
        return summary.epochLosses.last ?? .nan
      },
      evaluateClient: { client, weights in
        let evaluation = try trainers[client].evaluate(try deviceModel(client, weights).local, on: devices[client].phase1.query)
        progress("[phase 1] visit \(visits): \(devices[client].name) query loss "
                   + String(format: "%.4f, accuracy %.4f", evaluation.meanLoss, evaluation.accuracy))
        return (evaluation.meanLoss, evaluation.accuracy)
      })
    try initializer.initialize(weights: model, services: services)
  }
}
