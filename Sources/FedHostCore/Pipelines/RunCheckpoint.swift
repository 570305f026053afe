import Foundation

/// The state of a run between rounds, written atomically to `--out/checkpoint.json` after
/// Phase 1 and after every Phase 2 round, so `--resume DIR` can continue a run killed at any
/// point and end bit-identical to an uninterrupted one.
///
/// Everything random in a run is derived from (seed, phase, round, client) (see
/// `deriveSeed`), so a checkpoint needs no generator state of the host's own: the global model,
/// the plugins' states (through the ABI's save_state), the round number and the results so far
/// are enough. One JSON file holds all of it, so a reader sees either the old or the new state.
public struct RunCheckpoint: Codable, Sendable {
  public static let fileName = "checkpoint.json"
  static let formatVersion = 2

  var version = RunCheckpoint.formatVersion
  /// Identifies the run (plan, settings, data source): resuming a different run is refused.
  var fingerprint: String
  var baselines: [BaselineResult] = []
  var completed: [StrategyRunResult] = []
  var current: StrategyProgress?
  /// Set when every seed and strategy is done (a rerun into the directory is then another run).
  var finished = false

  /// The strategy run in progress.
  struct StrategyProgress: Codable, Sendable {
    var seed: UInt64
    var strategyIndex: Int
    var point: ResumePoint
  }

  init(fingerprint: String) { self.fingerprint = fingerprint }

  /// Reads `directory/checkpoint.json` and checks it belongs to the run `fingerprint` describes;
  /// nil when there is none yet (a run killed before its first checkpoint starts over).
  static func load(from directory: String, fingerprint: String) throws -> RunCheckpoint? {
    let path = directory + "/" + fileName
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    let checkpoint: RunCheckpoint
    do { checkpoint = try JSONDecoder().decode(RunCheckpoint.self, from: data) } catch {
      throw CheckpointError("\(path): not a readable checkpoint (\(error))")
    }
    guard checkpoint.version == formatVersion else {
      throw CheckpointError("\(path): checkpoint format \(checkpoint.version), this host reads \(formatVersion)")
    }
    guard checkpoint.fingerprint == fingerprint else {
      throw CheckpointError("\(path): the checkpoint belongs to a different run; resume with the same command and options")
    }
    return checkpoint
  }

  /// The fingerprint of the run a checkpoint in `directory` belongs to, and whether it
  /// finished; nil when there is no readable checkpoint.
  static func peek(in directory: String) -> (fingerprint: String, finished: Bool)? {
    guard let data = FileManager.default.contents(atPath: directory + "/" + fileName),
          let checkpoint = try? JSONDecoder().decode(RunCheckpoint.self, from: data) else { return nil }
    return (checkpoint.fingerprint, checkpoint.finished)
  }

  func save(to directory: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    try AtomicFile.write(try encoder.encode(self), to: directory + "/" + Self.fileName)
  }
}

/// Where a strategy run stands after Phase 1 (`completedRounds == 0`) or a Phase 2 round.
public struct ResumePoint: Codable, Sendable {
  public var completedRounds: Int
  /// The global model's floats, bit for bit.
  public var globalBits: [UInt32]
  /// save_state of each distinct plugin instance of the strategy (`Strategy.distinctInstances`).
  public var pluginStates: [Data]
  public var rounds: [RoundRecord]
  public var afterInitialization: [Double]?
  /// Early stopping across rounds (nil when it is off).
  var bestRound: BestRound?

  init(completedRounds: Int, global: ParameterVector, strategy: Strategy, rounds: [RoundRecord],
       afterInitialization: [Double]?, bestRound: BestRound? = nil) throws {
    self.completedRounds = completedRounds
    globalBits = global.buffer.map(\.bitPattern)
    pluginStates = try strategy.distinctInstances.map { Data(try $0.saveState()) }
    self.rounds = rounds
    self.afterInitialization = afterInitialization
    self.bestRound = bestRound
  }

  /// Restores the model and the plugins' states; returns the global model.
  func restore(into strategy: Strategy) throws -> ParameterVector {
    let instances = strategy.distinctInstances
    guard instances.count == pluginStates.count else {
      throw CheckpointError("checkpoint holds \(pluginStates.count) plugin states, the strategy has \(instances.count) plugins")
    }
    for (instance, state) in zip(instances, pluginStates) { try instance.loadState([UInt8](state)) }
    return ParameterVector(globalBits.map(Float.init(bitPattern:)))
  }
}

public struct CheckpointError: Error, CustomStringConvertible, InputError {
  public let description: String
  init(_ description: String) { self.description = description }
}

extension Strategy {
  /// The strategy's plugin instances, each once, in a fixed order (aggregator, initializer,
  /// client hook): the unit of save/load.
  var distinctInstances: [PluginInstance] {
    var instances = [aggregator]
    for candidate in [initializer, clientHook].compactMap({ $0 }) where !instances.contains(where: { $0 === candidate }) {
      instances.append(candidate)
    }
    return instances
  }
}

/// Early stopping across FL rounds: the global model of lowest validation loss so far, and the
/// rounds since it, bit for bit (a resumed run must stop where an uninterrupted one does).
struct BestRound: Codable, Sendable {
  let patience: Int
  /// The best round (1-based; 0 before any round) and its model's floats and loss.
  private(set) var round = 0
  private(set) var modelBits: [UInt32] = []
  private(set) var lossBits = Double.infinity.bitPattern
  private(set) var roundsSinceBest = 0

  init(patience: Int) { self.patience = patience }

  var loss: Double { Double(bitPattern: lossBits) }
  var exhausted: Bool { roundsSinceBest >= patience }
  /// The best model; nil before any round.
  var model: ParameterVector? { round == 0 ? nil : ParameterVector(modelBits.map(Float.init(bitPattern:))) }

  /// Takes round `number`'s global model and its validation loss; false once `patience`
  /// rounds in a row have not improved on the best.
  mutating func record(round number: Int, model: ParameterVector, loss: Double) -> Bool {
    if loss < self.loss {
      round = number
      modelBits = model.buffer.map(\.bitPattern)
      lossBits = loss.bitPattern
      roundsSinceBest = 0
    } else {
      roundsSinceBest += 1
    }
    return !exhausted
  }
}
