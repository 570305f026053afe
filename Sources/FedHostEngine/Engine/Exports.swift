import FedHostCore
import FedHostEngineAPI
import Foundation

// The C entry points of fedhost_engine.h. Each one catches every Swift error and turns it into
// a status and one line of text: nothing unwinds into the caller.

/// Runs `body`, mapping a thrown error to a status with its message in `error`.
private func guarded(_ error: UnsafeMutablePointer<fhe_error>?, _ body: () throws -> Void) -> fhe_status {
  do {
    try body()
    return FHE_OK
  } catch {
    write(String(describing: error), into: errorBuffer)
    return error is EngineError || error is InputError ? FHE_E_INPUT : FHE_E_FAILED
  }
  func errorBuffer() -> UnsafeMutablePointer<fhe_error>? { error }
}

private func fail(_ error: UnsafeMutablePointer<fhe_error>?, _ message: String) -> fhe_status {
  write(message, into: { error })
  return FHE_E_INPUT
}

/// Copies a message into the caller's fhe_error, truncated to fit with its NUL.
private func write(_ message: String, into error: () -> UnsafeMutablePointer<fhe_error>?) {
  guard let error = error() else { return }
  withUnsafeMutableBytes(of: &error.pointee.message) { raw in
    let bytes = Array(message.utf8.prefix(raw.count - 1))
    raw.copyBytes(from: bytes)
    raw[bytes.count] = 0
  }
}

/// Copies `text` with its NUL into `out` when it fits; `needed` receives the full size.
private func copy(_ text: String, to out: UnsafeMutablePointer<CChar>?, size: Int, needed: UnsafeMutablePointer<Int>?) throws {
  let bytes = Array(text.utf8CString)
  needed?.pointee = bytes.count
  guard let out, bytes.count <= size else {
    if needed == nil { throw EngineError("buffer of \(size) bytes is too small for \(bytes.count)") }
    return
  }
  out.update(from: bytes, count: bytes.count)
}

private func opened(_ engine: OpaquePointer?) throws -> OpenEngine {
  guard let engine else { throw EngineError("engine is NULL") }
  return Unmanaged<OpenEngine>.fromOpaque(UnsafeRawPointer(engine)).takeUnretainedValue()
}

private func required<T>(_ pointer: UnsafeMutablePointer<T>?, _ name: String) throws -> UnsafeMutablePointer<T> {
  guard let pointer else { throw EngineError("\(name) is NULL") }
  return pointer
}

private func scored(_ score: DeviceScore) -> fhe_score {
  fhe_score(accuracy: score.accuracy, f1: score.f1, threshold: score.threshold ?? .nan)
}

@_cdecl("fhe_abi_version")
public func fhe_abi_version() -> UInt32 { UInt32(FHE_VERSION_MAJOR) << 16 | UInt32(FHE_VERSION_MINOR) }

@_cdecl("fhe_open")
public func fhe_open(_ specPath: UnsafePointer<CChar>?, _ dataDirectory: UnsafePointer<CChar>?,
                     _ settings: UnsafePointer<CChar>?, _ seed: UInt64, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                     _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let out = try required(out, "out")
    out.pointee = nil
    let engine = try OpenEngine(specPath: specPath.map { String(cString: $0) },
                                dataDirectory: dataDirectory.map { String(cString: $0) } ?? ".",
                                settingsText: settings.map { String(cString: $0) } ?? "", seed: seed)
    out.pointee = OpaquePointer(Unmanaged.passRetained(engine).toOpaque())
  }
}

@_cdecl("fhe_close")
public func fhe_close(_ engine: OpaquePointer?) {
  guard let engine else { return }
  Unmanaged<OpenEngine>.fromOpaque(UnsafeRawPointer(engine)).release()
}

@_cdecl("fhe_get_info")
public func fhe_get_info(_ engine: OpaquePointer?, _ out: UnsafeMutablePointer<fhe_info>?,
                         _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let out = try required(out, "out")
    guard out.pointee.struct_size >= UInt32(MemoryLayout<fhe_info>.size) else {
      throw EngineError("fhe_info.struct_size is \(out.pointee.struct_size), this library writes \(MemoryLayout<fhe_info>.size)")
    }
    out.pointee.protocol = opened.settings.protocolKind == .fl ? FHE_PROTOCOL_FL.rawValue : FHE_PROTOCOL_FED_META_ALIGN.rawValue
    out.pointee.client_count = UInt32(opened.engine.clients.count)
    out.pointee.rounds = UInt32(opened.settings.rounds)
    out.pointee.parameter_count = UInt64(opened.engine.architecture.parameterCount)
    out.pointee.personalizes = opened.settings.personalizationEpochs > 0 || opened.settings.protocolKind == .fedMetaAlign ? 1 : 0
    out.pointee.has_client_hook = opened.hook == nil ? 0 : 1
  }
}

@_cdecl("fhe_client_name")
public func fhe_client_name(_ engine: OpaquePointer?, _ client: UInt32, _ out: UnsafeMutablePointer<CChar>?, _ size: Int,
                            _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    try copy(opened.engine.clients.profiles[opened.client(client)].name, to: out, size: size, needed: nil)
  }
}

@_cdecl("fhe_client_parameter_count")
public func fhe_client_parameter_count(_ engine: OpaquePointer?, _ client: UInt32, _ out: UnsafeMutablePointer<UInt64>?,
                                       _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    try required(out, "out").pointee = UInt64(opened.engine.architecture(ofClient: opened.client(client)).parameterCount)
  }
}

@_cdecl("fhe_plugin_config")
public func fhe_plugin_config(_ engine: OpaquePointer?, _ plugin: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<CChar>?,
                              _ size: Int, _ needed: UnsafeMutablePointer<Int>?,
                              _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    guard let plugin else { throw EngineError("plugin is NULL") }
    let library = try PluginLibrary.open(String(cString: plugin), searchPath: opened.searchPath)
    try copy(opened.pluginConfig(for: library), to: out, size: size, needed: try required(needed, "needed"))
  }
}

@_cdecl("fhe_set_client_hook")
public func fhe_set_client_hook(_ engine: OpaquePointer?, _ plugin: UnsafePointer<CChar>?,
                                _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    guard let plugin else {
      opened.hook = nil
      return
    }
    let library = try PluginLibrary.open(String(cString: plugin), searchPath: opened.searchPath)
    try library.require(.clientHook)
    opened.hook = try library.makeInstance(configJSON: opened.pluginConfig(for: library), threads: opened.settings.threads)
  }
}

@_cdecl("fhe_starting_model")
public func fhe_starting_model(_ engine: OpaquePointer?, _ out: UnsafeMutablePointer<Float>?, _ count: Int,
                               _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let out = try required(out, "out")
    let expected = opened.engine.architecture.parameterCount
    guard count == expected else { throw EngineError("out has \(count) floats, the model has \(expected)") }
    let model = try opened.run.startingModel(progress: { _ in })
    out.update(from: model.pointer, count: count)
  }
}

@_cdecl("fhe_participants")
public func fhe_participants(_ engine: OpaquePointer?, _ round: UInt32, _ out: UnsafeMutablePointer<UInt32>?,
                             _ capacity: Int, _ count: UnsafeMutablePointer<Int>?,
                             _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let chosen = opened.run.participants(inRound: Int(round))
    try required(count, "count").pointee = chosen.count
    guard chosen.count <= capacity, let out else {
      throw EngineError("out holds \(capacity) clients, round \(round) has \(chosen.count)")
    }
    for (position, client) in chosen.enumerated() { out[position] = UInt32(client) }
  }
}

@_cdecl("fhe_train")
public func fhe_train(_ engine: OpaquePointer?, _ client: UInt32, _ round: UInt32, _ global: UnsafePointer<Float>?,
                      _ count: Int, _ delta: UnsafeMutablePointer<Float>?, _ coverage: UnsafeMutablePointer<UInt8>?,
                      _ samples: UnsafeMutablePointer<UInt64>?, _ metrics: UnsafeMutablePointer<fhe_metric>?,
                      _ metricCapacity: Int, _ metricCount: UnsafeMutablePointer<Int>?,
                      _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  fhe_train_aux(engine, client, round, global, count, nil, 0, nil, 0, delta, coverage, samples, metrics, metricCapacity,
                metricCount, error)
}

@_cdecl("fhe_train_aux")
public func fhe_train_aux(_ engine: OpaquePointer?, _ client: UInt32, _ round: UInt32, _ global: UnsafePointer<Float>?,
                          _ count: Int, _ auxDown: UnsafePointer<Float>?, _ auxDownCount: Int,
                          _ auxUp: UnsafeMutablePointer<Float>?, _ auxUpCount: Int,
                          _ delta: UnsafeMutablePointer<Float>?, _ coverage: UnsafeMutablePointer<UInt8>?,
                          _ samples: UnsafeMutablePointer<UInt64>?, _ metrics: UnsafeMutablePointer<fhe_metric>?,
                          _ metricCapacity: Int, _ metricCount: UnsafeMutablePointer<Int>?,
                          _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let index = try opened.client(client)
    let model = try opened.globalModel(global, count: count)
    let delta = try required(delta, "delta")
    // The hook's auxiliary vectors (ABI 1.2): what the server's prepare_client wrote, and room
    // for what the hook sends back, each as many as the hook declares.
    let descriptor = opened.hook?.library.descriptor
    let expectedDown = (descriptor?.auxDownVectors ?? 0) * count
    let expectedUp = (descriptor?.auxUpVectors ?? 0) * count
    guard auxDownCount == expectedDown, auxUpCount == expectedUp else {
      throw EngineError("the client hook takes \(expectedDown) aux_down and sends \(expectedUp) aux_up floats; "
                          + "the call gave \(auxDownCount) and \(auxUpCount)")
    }
    var down: ParameterVector?
    if expectedDown > 0 {
      guard let auxDown else { throw EngineError("aux_down is NULL") }
      down = ParameterVector(Array(UnsafeBufferPointer(start: auxDown, count: auxDownCount)))
    }
    let update = try opened.engine.trainClient(index, round: Int(round), global: model, hook: opened.hook, auxDown: down)
    let keys = update.metrics.keys.sorted()
    try required(metricCount, "metric_count").pointee = keys.count
    guard keys.count <= metricCapacity, let metrics else {
      throw EngineError("metrics hold \(metricCapacity) entries, client \(client) reported \(keys.count)")
    }
    if expectedUp > 0, let sent = update.auxUp {
      try required(auxUp, "aux_up").update(from: sent.pointer, count: expectedUp)
    }
    delta.update(from: update.delta.pointer, count: count)
    if let coverage {
      if let mask = update.coverage {
        coverage.update(from: mask.pointer, count: count)
      } else {
        coverage.update(repeating: 1, count: count)
      }
    }
    try required(samples, "samples").pointee = update.sampleCount
    for (position, key) in keys.enumerated() {
      var entry = fhe_metric()
      withUnsafeMutableBytes(of: &entry.key) { raw in
        let bytes = Array(key.utf8.prefix(raw.count - 1))
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
      }
      entry.value = update.metrics[key]!
      metrics[position] = entry
    }
  }
}

@_cdecl("fhe_evaluate")
public func fhe_evaluate(_ engine: OpaquePointer?, _ client: UInt32, _ global: UnsafePointer<Float>?, _ count: Int,
                         _ loss: UnsafeMutablePointer<Double>?, _ accuracy: UnsafeMutablePointer<Double>?,
                         _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let evaluation = try opened.engine.evaluateOnTests(opened.globalModel(global, count: count),
                                                       clients: [opened.client(client)])[0]
    try required(loss, "loss").pointee = evaluation.meanLoss
    try required(accuracy, "accuracy").pointee = evaluation.accuracy
  }
}

/// The Fed-Meta-Align run behind `engine`, or an error naming the protocol it has.
private func fedMetaAlign(_ opened: OpenEngine) throws -> FedMetaAlignRun {
  guard let run = opened.run as? FedMetaAlignRun else {
    throw EngineError("Phase 1 belongs to the fed-meta-align protocol; this engine runs \(opened.settings.protocolKind.rawValue)")
  }
  return run
}

@_cdecl("fhe_serial_train")
public func fhe_serial_train(_ engine: OpaquePointer?, _ client: UInt32, _ weights: UnsafeMutablePointer<Float>?,
                             _ count: Int, _ epochs: UInt32, _ visit: UInt64, _ loss: UnsafeMutablePointer<Double>?,
                             _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let run = try fedMetaAlign(opened)
    let index = try opened.client(client)
    let weights = try required(weights, "weights")
    _ = try opened.globalModel(weights, count: count, name: "weights")
    try required(loss, "loss").pointee = try run.serialTrain(
      client: index, weights: UnsafeMutableBufferPointer(start: weights, count: count), epochs: Int(epochs), visit: visit)
  }
}

@_cdecl("fhe_serial_evaluate")
public func fhe_serial_evaluate(_ engine: OpaquePointer?, _ client: UInt32, _ weights: UnsafePointer<Float>?,
                                _ count: Int, _ loss: UnsafeMutablePointer<Double>?,
                                _ accuracy: UnsafeMutablePointer<Double>?,
                                _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let run = try fedMetaAlign(opened)
    let index = try opened.client(client)
    let model = try opened.globalModel(weights, count: count, name: "weights")
    let evaluation = try run.serialEvaluate(client: index, weights: UnsafeBufferPointer(model.buffer))
    try required(loss, "loss").pointee = evaluation.meanLoss
    try required(accuracy, "accuracy").pointee = evaluation.accuracy
  }
}

@_cdecl("fhe_personalize")
public func fhe_personalize(_ engine: OpaquePointer?, _ client: UInt32, _ global: UnsafePointer<Float>?, _ count: Int,
                            _ model: UnsafeMutablePointer<Float>?, _ modelCount: Int,
                            _ score: UnsafeMutablePointer<fhe_score>?,
                            _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let index = try opened.client(client)
    let localCount = opened.engine.architecture(ofClient: index).parameterCount
    if model != nil, modelCount != localCount {
      throw EngineError("model has \(modelCount) floats, client \(client)'s model has \(localCount)")
    }
    let result = try opened.engine.personalize(opened.globalModel(global, count: count), client: index,
                                               settings: opened.settings, data: opened.run.personalizationData(index))
    try required(score, "score").pointee = scored(result.score)
    model?.update(from: result.model.pointer, count: localCount)
  }
}

@_cdecl("fhe_score_global")
public func fhe_score_global(_ engine: OpaquePointer?, _ client: UInt32, _ global: UnsafePointer<Float>?, _ count: Int,
                             _ score: UnsafeMutablePointer<fhe_score>?,
                             _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let index = try opened.client(client)
    let parts = try opened.run.personalizationData(index)
    let engine = opened.engine
    let result = try engine.score(engine.localModel(opened.globalModel(global, count: count), client: index),
                                  architecture: engine.architecture(ofClient: index), test: parts.test,
                                  validation: parts.validation, rule: opened.settings.threshold)
    try required(score, "score").pointee = scored(result)
  }
}

@_cdecl("fhe_baseline")
public func fhe_baseline(_ engine: OpaquePointer?, _ baseline: UInt32, _ scores: UnsafeMutablePointer<fhe_score>?,
                         _ count: Int, _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let kind: Baseline = switch baseline {
    case FHE_BASELINE_LOCAL_ONLY.rawValue: .localOnly
    case FHE_BASELINE_CENTRALIZED.rawValue: .centralized
    default: throw EngineError("baseline \(baseline) is neither FHE_BASELINE_LOCAL_ONLY nor FHE_BASELINE_CENTRALIZED")
    }
    guard opened.run.baselines.contains(kind) else {
      throw EngineError("the \(opened.settings.protocolKind.rawValue) protocol has no \(kind.rawValue) baseline")
    }
    let scores = try required(scores, "scores")
    guard count == opened.engine.clients.count else {
      throw EngineError("scores hold \(count) entries, the federation has \(opened.engine.clients.count) clients")
    }
    for (index, score) in try opened.run.scores(of: kind).enumerated() { scores[index] = scored(score) }
  }
}

@_cdecl("fhe_save_model")
public func fhe_save_model(_ engine: OpaquePointer?, _ client: UInt32, _ model: UnsafePointer<Float>?, _ count: Int,
                           _ path: UnsafePointer<CChar>?, _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    let architecture = opened.engine.architecture(ofClient: try opened.client(client))
    let vector = try opened.model(model, count: count, expected: architecture.parameterCount, name: "client \(client)'s")
    guard let path else { throw EngineError("path is NULL") }
    try ModelFile.write(vector, architecture: architecture, to: String(cString: path))
  }
}

/// The caller's results: the Codable shapes the host's checkpoint keeps.
private struct ReportInput: Decodable {
  /// The aggregator of each strategy index (the name a failed strategy is reported under).
  var strategies: [String]
  var baselines: [BaselineResult]
  var results: [StrategyRunResult]
}

@_cdecl("fhe_report")
public func fhe_report(_ engine: OpaquePointer?, _ title: UnsafePointer<CChar>?, _ resultsJSON: UnsafePointer<CChar>?,
                       _ markdown: Int32, _ out: UnsafeMutablePointer<CChar>?, _ size: Int,
                       _ needed: UnsafeMutablePointer<Int>?, _ error: UnsafeMutablePointer<fhe_error>?) -> fhe_status {
  guarded(error) {
    let opened = try opened(engine)
    guard let title, let resultsJSON else { throw EngineError("title and results_json must not be NULL") }
    let input: ReportInput
    do {
      input = try JSONDecoder().decode(ReportInput.self, from: Data(String(cString: resultsJSON).utf8))
    } catch {
      throw EngineError("results_json: \(error)")
    }
    let plan = ComparisonPlan(strategies: input.strategies.map { StrategyEntry(aggregator: $0) }, seeds: [opened.seed], settings: opened.settings,
                              searchPath: opened.searchPath, title: String(cString: title))
    let report = Comparison.report(plan, devices: opened.engine.reportedDevices, baselines: input.baselines,
                                   results: input.results)
    let text = markdown != 0 ? TableWriters.markdown(report) : String(decoding: try TableWriters.json(report), as: UTF8.self)
    try copy(text, to: out, size: size, needed: try required(needed, "needed"))
  }
}
