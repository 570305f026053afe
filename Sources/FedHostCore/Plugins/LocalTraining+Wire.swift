import Foundation

/// How a `LocalTraining` crosses to an isolated hook's child process: a JSON header in the
/// request's payload (JSON round-trips every Float, Double and UInt64 exactly) and the bulk —
/// global model, coverage, samples — in the lane's arena; the trained model comes back at the
/// arena's end, the metrics (or the error) as JSON in the reply's payload.
struct LocalTrainingWireHeader: Codable {
  var clientID: UInt32
  var round: Int
  var globalWidths: [Int]
  /// nil: the full model.
  var subModelRate: Double?
  var options: TrainingOptions
  var featureWidth: Int
  var trainCount: Int
  var queryCount: Int
  /// Arena offsets (`trained`: set once the lane's arena is known, see `ArenaLayout.outputOffset`).
  var global: Int
  var coverage: Int?
  var trainFeatures: Int
  var trainLabels: Int
  var queryFeatures: Int
  var queryLabels: Int
  var trained: Int
  /// The aux_down vectors (in) and the aux_up vectors (out; nil: none, `auxUpLength` floats).
  var auxDown: Int?
  var auxDownLength: Int
  var auxUp: Int?
  var auxUpLength: Int

  /// Lays `job` out in an arena: the header and the arena bytes it needs.
  static func layout(_ job: LocalTraining) -> (header: LocalTrainingWireHeader, arenaBytes: Int) {
    var layout = ArenaLayout()
    let parameters = job.global.count
    let header = LocalTrainingWireHeader(
      clientID: job.clientID, round: job.round, globalWidths: job.globalArchitecture.widths, subModelRate: job.subModel?.rate,
      options: job.options, featureWidth: job.train.width, trainCount: job.train.count, queryCount: job.query.count,
      global: layout.reserve(parameters * 4), coverage: job.coverage.map { _ in layout.reserve(parameters) },
      trainFeatures: layout.reserve(job.train.features.count * 4), trainLabels: layout.reserve(job.train.count * 4),
      queryFeatures: layout.reserve(job.query.features.count * 4), queryLabels: layout.reserve(job.query.count * 4),
      trained: 0, auxDown: job.auxDown.map { layout.reserve($0.count * 4) }, auxDownLength: job.auxDown?.count ?? 0,
      auxUp: job.auxUpLength > 0 ? layout.reserve(job.auxUpLength * 4) : nil, auxUpLength: job.auxUpLength)
    return (header, layout.arenaBytes(output: job.architecture.parameterCount * 4))
  }

  /// Copies the job's bulk into `arena` (the host's side).
  func write(_ job: LocalTraining, into arena: SharedArena) {
    arena[global, as: Float.self].update(from: job.global.pointer, count: job.global.count)
    if let coverage, let mask = job.coverage { arena[coverage, as: UInt8.self].update(from: mask.pointer, count: mask.count) }
    if let auxDown, let vectors = job.auxDown { arena[auxDown, as: Float.self].update(from: vectors.pointer, count: vectors.count) }
    for (samples, features, labels) in [(job.train, trainFeatures, trainLabels), (job.query, queryFeatures, queryLabels)] {
      guard samples.count > 0 else { continue }
      samples.features.withUnsafeBufferPointer { arena[features, as: Float.self].update(from: $0.baseAddress!, count: $0.count) }
      samples.labels.withUnsafeBufferPointer { arena[labels, as: Int32.self].update(from: $0.baseAddress!, count: $0.count) }
    }
  }

  /// The job, read back from `arena` (the child's side).
  func read(from arena: SharedArena) throws -> LocalTraining {
    let architecture = try MLPArchitecture(widths: globalWidths)
    let parameters = architecture.parameterCount
    let model = ParameterVector(count: parameters)
    model.pointer.update(from: arena[global, as: Float.self], count: parameters)
    func samples(_ count: Int, _ features: Int, _ labels: Int) -> Samples {
      Samples(features: Array(UnsafeBufferPointer(start: arena[features, as: Float.self], count: count * featureWidth)),
              labels: Array(UnsafeBufferPointer(start: arena[labels, as: Int32.self], count: count)), width: featureWidth)
    }
    let auxDownVectors = try auxDown.map { offset in
      guard auxDownLength > 0 else { throw WireFailure.malformed("aux_down without a length") }
      let vectors = ParameterVector(count: auxDownLength)
      vectors.pointer.update(from: arena[offset, as: Float.self], count: auxDownLength)
      return vectors
    }
    return LocalTraining(
      clientID: clientID, round: round, global: model, globalArchitecture: architecture,
      subModel: try subModelRate.map { try SubModel(global: architecture, rate: $0) },
      coverage: coverage.map { CoverageMask(Array(UnsafeBufferPointer(start: arena[$0, as: UInt8.self], count: parameters))) },
      options: options, train: samples(trainCount, trainFeatures, trainLabels),
      query: samples(queryCount, queryFeatures, queryLabels), auxDown: auxDownVectors, auxUpLength: auxUpLength)
  }
}

/// Why a local training in the child failed: the plugin's error as the host would have thrown
/// it in process, or any other error's message.
enum LocalTrainingWireFailure: Codable {
  case plugin(PluginError)
  case other(String)

  init(_ error: Error) {
    self = (error as? PluginError).map(Self.plugin) ?? .other(String(describing: error))
  }

  var error: Error {
    switch self {
    case .plugin(let error): error
    case .other(let message): HostCallbackError(message)
    }
  }
}
