import Foundation
import PluginAPI

/// The conformance checks behind `host plugins validate`: ABI negotiation, config errors,
/// finite outputs, zero deltas leave the model unchanged, determinism under one seed and
/// across host thread counts (ABI 1.1 `parallel_for`, and a 1.0 host without it),
/// coverage masks, error reporting, state round-trip, ABI 1.2's rules (out_weights as shares,
/// aggregate and aggregate_round agreeing, finite aux vectors) and, per kind, the initializer
/// and client-hook calls — all on synthetic updates.
///
/// These run in the process that loaded the plugin; `PluginValidation` runs them in a child
/// process so that a plugin that crashes or hangs cannot take the validator down with it.
public struct PluginConformance {
  /// The result of one check.
  public struct Outcome: Sendable {
    public let check: String
    public let failure: String?
  }

  let library: PluginLibrary
  /// Called before each check with its name (the child process prints it, so a parent can
  /// tell which check a crash or hang happened in), and after it with the outcome.
  let willRun: (String) -> Void
  let didRun: (Outcome) -> Void

  public init(library: PluginLibrary, willRun: @escaping (String) -> Void = { _ in },
              didRun: @escaping (Outcome) -> Void = { _ in }) {
    self.library = library
    self.willRun = willRun
    self.didRun = didRun
  }

  /// Runs every check that applies to the plugin's kinds.
  @discardableResult
  public func run() -> [Outcome] {
    var outcomes: [Outcome] = []
    func check(_ name: String, _ body: () throws -> Void) {
      willRun(name)
      let outcome: Outcome
      do {
        try body()
        outcome = Outcome(check: name, failure: nil)
      } catch {
        outcome = Outcome(check: name, failure: String(describing: error))
      }
      outcomes.append(outcome)
      didRun(outcome)
    }
    let kinds = library.descriptor.kinds

    check("abi: refuses a host of another major version") { try checkRefusesOtherMajor() }
    check("config: {} creates an instance") { _ = try library.makeInstance(configJSON: "{}") }
    // Without an instance every further check would only repeat the create failure.
    guard outcomes.last?.failure == nil else { return outcomes }
    check("descriptor: id, name, version, kinds and config keys are well formed") { try checkDescriptor() }
    check("config: every declared default is accepted") { _ = try library.makeInstance(configJSON: defaultsJSON()) }
    check("config: an unknown key is refused with a message") {
      try expectCreateFailure("{\"no_such_key_fedhost\": 1}", mentioning: "no_such_key_fedhost")
    }
    check("config: malformed JSON is refused with a message") { try expectCreateFailure("{\"seed\": ", mentioning: nil) }

    if kinds.contains(.aggregator) {
      check("aggregate: outputs and weights are finite") { try checkFiniteAggregate() }
      if library.descriptor.abiMinor >= 2 {
        check("aggregate: out_weights are shares, >= 0 and summing to 1 (ABI 1.2)") { try checkShares() }
      }
      check("aggregate: aggregate (ABI 1.1 hosts) and aggregate_round (1.2) give the same bits") {
        try checkBothEntryPoints()
      }
      if VtableView(library.vtable).function(\.select_clients) != nil {
        check("select_clients: distinct ids inside the federation, the same for the same seed") { try checkSelectClients() }
      }
      if library.descriptor.auxDownVectors > 0 {
        check("prepare_client: finite aux_down vectors, the same for the same seed") { try checkPrepareClient() }
      }
      check("aggregate: zero deltas leave the model unchanged") { try checkZeroDeltas() }
      check("aggregate: one client is accepted") { _ = try aggregate(makeUpdates(count: 1), seed: 1) }
      check("aggregate: same seed, same input, same bits") { try checkDeterminism() }
      check("aggregate: same bits on 1 and 2 host threads and under an ABI 1.0 host") { try checkThreadIndependence() }
      check("aggregate: elements no client covers keep their value") { try checkCoverage() }
      check("aggregate: zero updates are an error") { try expectAggregateFailure(updates: [], mentioning: nil) }
      check("aggregate: a NaN delta is an error naming the client") { try checkNaNDelta() }
      check("aggregate: a length mismatch is an error") { try checkLengthMismatch() }
      check("state: save, load into a fresh instance, identical next round") { try checkStateRoundTrip() }
      check("state: corrupt state is refused, not a crash") { try checkCorruptState() }
    }
    if kinds.contains(.initializer) {
      check("initialize: drives training and produces finite weights") { try checkInitializer(failing: false) }
      check("initialize: a failing host callback becomes an error") { try checkInitializer(failing: true) }
    }
    if kinds.contains(.clientHook) {
      check("client hook: implements adjust_gradient or train_local") {
        let instance = try library.makeInstance(configJSON: "{}")
        guard instance.supportsAdjustGradient || instance.supportsTrainLocal else {
          throw ConformanceFailure("kind client-hook set but both adjust_gradient and train_local are NULL")
        }
      }
      check("client hook: finite, deterministic, identical on two threads") { try checkClientHook() }
    }
    return outcomes
  }

  // MARK: - synthetic data

  static let parameterCount = 4099  // not a multiple of any SIMD width, to exercise tails
  /// Enough for 8 clients' deltas (6.4 MB) to span several tasks of a plugin that cuts its
  /// work by data size (PluginKit's tasks stream ~4 MiB each).
  static let parallelParameterCount = 200_003

  private func makeGlobal(parameterCount: Int = parameterCount) -> ParameterVector {
    var random = SeededGenerator(seed: 11)
    return ParameterVector((0..<parameterCount).map { _ in Float(random.nextUnit() * 2 - 1) })
  }

  private func makeUpdates(count: Int, scale: Float = 0.01, coverage: [CoverageMask?]? = nil,
                           parameterCount: Int = parameterCount) -> [ClientUpdate] {
    var random = SeededGenerator(seed: 29)
    let auxLength = library.descriptor.auxUpVectors * parameterCount
    return (0..<count).map { index in
      let auxUp = auxLength == 0 ? nil : ParameterVector((0..<auxLength).map { _ in Float(random.nextUnit() - 0.5) * scale })
      let mask = coverage?[index]
      let delta = ParameterVector((0..<parameterCount).map { element in
        let value = Float(random.nextUnit() * 2 - 1) * scale + scale * Float(index + 1) * 0.5
        return mask.map { $0[element] ? value : 0 } ?? value
      })
      return ClientUpdate(clientID: UInt32(index), delta: delta, sampleCount: UInt64(10 * (index + 1)),
                          coverage: mask,
                          metrics: [FHP_METRIC_QUERY_LOSS: 0.2 + 0.1 * Double(index),
                                    FHP_METRIC_QUERY_ACCURACY: 0.9 - 0.05 * Double(index),
                                    FHP_METRIC_TRAIN_LOSS: 0.3],
                          auxUp: auxUp)
    }
  }

  /// A round of a federation of 10 clients in which the updates' clients were sampled.
  private func context(_ updates: [ClientUpdate], round: Int) -> RoundContext {
    RoundContext(round: round, roundCount: 5, clientCount: 10, sampled: updates.map(\.clientID))
  }

  private func aggregate(_ updates: [ClientUpdate], seed: Int, instance: PluginInstance? = nil,
                         round: Int = 0) throws -> (ParameterVector, [Double]) {
    let plugin = try instance ?? library.makeInstance(configJSON: "{\"seed\": \(seed)}")
    let global = makeGlobal(parameterCount: updates.first?.delta.count ?? Self.parameterCount)
    let output = ParameterVector(count: global.count)
    let outcome = try plugin.aggregateUnchecked(context(updates, round: round), global: global, updates: updates, into: output)
    return (output, outcome.weights)
  }

  // MARK: - checks

  private func checkRefusesOtherMajor() throws {
    let status = library.negotiate(major: hostABIMajor + 1, minor: 0)
    guard status == Int32(FHP_E_VERSION) else {
      throw ConformanceFailure("entry(\(hostABIMajor + 1), 0) returned \(statusName(status)), expected FHP_E_VERSION")
    }
  }

  private func checkDescriptor() throws {
    let descriptor = library.descriptor
    for (field, value) in [("name", descriptor.name), ("version", descriptor.version)] where value.isEmpty {
      throw ConformanceFailure("descriptor.\(field) is empty")
    }
    let known: PluginKinds = [.aggregator, .initializer, .clientHook]
    guard !descriptor.kinds.isEmpty, known.isSuperset(of: descriptor.kinds) else {
      throw ConformanceFailure("descriptor.kinds = \(descriptor.kinds) has no or unknown bits")
    }
    let instance = try library.makeInstance(configJSON: "{}")
    let required: [(PluginKinds, Bool, String)] = [
      (.aggregator, instance.supportsAggregate, "aggregate"),
      (.initializer, instance.supportsInitialize, "initialize"),
    ]
    for (kind, present, function) in required where descriptor.kinds.contains(kind) && !present {
      throw ConformanceFailure("kind \(kind) set but vtable.\(function) is NULL")
    }
    let types = ["number", "integer", "boolean", "string"]
    for key in descriptor.configKeys {
      guard !key.key.isEmpty, types.contains(key.type) else {
        throw ConformanceFailure("config key \"\(key.key)\" has type \"\(key.type)\" (expected one of \(types))")
      }
      guard (try? JSONSerialization.jsonObject(with: Data(key.defaultJSON.utf8), options: [.fragmentsAllowed])) != nil
      else { throw ConformanceFailure("config key \"\(key.key)\" default \(key.defaultJSON) is not a JSON literal") }
    }
  }

  private func defaultsJSON() -> String {
    let pairs = library.descriptor.configKeys.map { "\"\($0.key)\": \($0.defaultJSON)" }
    return "{" + pairs.joined(separator: ", ") + "}"
  }

  private func expectCreateFailure(_ config: String, mentioning needle: String?) throws {
    do {
      _ = try library.makeInstance(configJSON: config)
    } catch let PluginError.createFailed(_, _, message) {
      if let needle, !message.contains(needle) {
        throw ConformanceFailure("create(\(config)) failed but its message does not name \"\(needle)\": \(message)")
      }
      return
    }
    throw ConformanceFailure("create(\(config)) succeeded")
  }

  private func checkFiniteAggregate() throws {
    let (output, weights) = try aggregate(makeUpdates(count: 3), seed: 1)
    if let bad = output.firstNonFiniteIndex {
      throw ConformanceFailure("out_global[\(bad)] = \(output[bad])")
    }
    if let bad = weights.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
      throw ConformanceFailure("out_weights[\(bad)] = \(weights[bad])")
    }
  }

  private func checkShares() throws {
    let (_, weights) = try aggregate(makeUpdates(count: 4), seed: 1)
    let total = weights.reduce(0, +)
    guard weights.allSatisfy({ $0 >= 0 }), abs(total - 1) <= 1e-5 else {
      throw ConformanceFailure("out_weights \(weights) are not shares summing to 1 (they sum to \(total))")
    }
  }

  /// A plugin with both entry points must not depend on which one a host calls.
  private func checkBothEntryPoints() throws {
    let table = VtableView(library.vtable)
    guard table.function(\.aggregate) != nil, table.function(\.aggregate_round) != nil else { return }
    let updates = makeUpdates(count: 3)
    var results: [(ParameterVector, [Double])] = []
    for minor in [UInt32(1), hostABIMinor] {
      let instance = try library.makeInstance(configJSON: "{\"seed\": 2}", hostABIMinor: minor)
      for round in 0..<2 { results.append(try aggregate(updates, seed: 2, instance: instance, round: round)) }
    }
    for round in 0..<2 {
      try expectIdentical(results[round].0, results[2 + round].0, what: "aggregate and aggregate_round in round \(round)")
      guard results[round].1.map(\.bitPattern) == results[2 + round].1.map(\.bitPattern) else {
        throw ConformanceFailure("out_weights differ between aggregate and aggregate_round in round \(round)")
      }
    }
  }

  private func checkSelectClients() throws {
    let global = makeGlobal()
    let round = RoundContext(round: 1, roundCount: 5, clientCount: 10, sampled: [0, 3, 5])
    let selection = ClientSelection(sampleCounts: (0..<10).map { UInt64(10 + 7 * $0) }) { client in
      Double(client % 4) + 0.1 * Double(client)
    }
    let chosen = try (0..<2).map { _ in
      try library.makeInstance(configJSON: "{\"seed\": 7}").selectClients(round, global: global, count: 3, selection: selection)
    }
    guard chosen[0] == chosen[1] else {
      throw ConformanceFailure("two instances with seed 7 chose \(chosen[0]) and \(chosen[1])")
    }
  }

  private func checkPrepareClient() throws {
    let updates = makeUpdates(count: 3)
    let global = makeGlobal()
    func prepared() throws -> [ParameterVector] {
      let instance = try library.makeInstance(configJSON: "{\"seed\": 6}")
      let round = context(updates, round: 0)
      return try updates.map { try instance.prepareClient(round, clientID: $0.clientID, global: global) }
    }
    let first = try prepared()
    let second = try prepared()
    for (a, b) in zip(first, second) { try expectIdentical(a, b, what: "aux_down of two instances with seed 6") }
  }

  private func checkZeroDeltas() throws {
    var updates = makeUpdates(count: 3)
    for index in updates.indices { updates[index].delta = ParameterVector(count: Self.parameterCount) }
    let (output, _) = try aggregate(updates, seed: 1)
    let global = makeGlobal()
    if let changed = (0..<global.count).first(where: { output[$0].bitPattern != global[$0].bitPattern }) {
      throw ConformanceFailure("element \(changed) changed from \(global[changed]) to \(output[changed])")
    }
  }

  private func checkDeterminism() throws {
    let updates = makeUpdates(count: 4)
    let (first, firstWeights) = try aggregate(updates, seed: 5)
    let (second, secondWeights) = try aggregate(updates, seed: 5)
    try expectIdentical(first, second, what: "two instances with seed 5")
    guard firstWeights.map(\.bitPattern) == secondWeights.map(\.bitPattern) else {
      throw ConformanceFailure("out_weights differ between two instances with seed 5")
    }
  }

  /// A plugin that spreads its work over the host's threads must cut it by the data alone.
  private func checkThreadIndependence() throws {
    let updates = makeUpdates(count: 8, parameterCount: Self.parallelParameterCount)
    let (reference, referenceWeights) = try aggregate(
      updates, seed: 5, instance: try library.makeInstance(configJSON: "{\"seed\": 5}", threads: 1))
    let olderHosts = VtableView(library.vtable).function(\.aggregate) == nil
      ? [] : [(2, UInt32(0), "an ABI 1.0 host (no parallel_for)")]
    for (threads, minor, host) in [(2, hostABIMinor, "2 host threads")] + olderHosts {
      let instance = try library.makeInstance(configJSON: "{\"seed\": 5}", threads: threads, hostABIMinor: minor)
      let result = Result { try aggregate(updates, seed: 5, instance: instance) }
      // Checked first: a plugin that skipped FHP_HAS_MEMBER may then fail on the refusal.
      if instance.readPastHostStructSize {
        throw ConformanceFailure("called fhp_host.parallel_for of an ABI 1.0 host, whose struct_size ends before it: "
                                 + "test FHP_HAS_MEMBER(host, fhp_host, parallel_for) first")
      }
      let (output, weights) = try result.get()
      try expectIdentical(reference, output, what: "outputs of 1 host thread and of \(host)")
      guard weights.map(\.bitPattern) == referenceWeights.map(\.bitPattern) else {
        throw ConformanceFailure("out_weights differ between 1 host thread and \(host)")
      }
    }
  }

  private func checkCoverage() throws {
    // Client 0 covers the first half, client 1 the first quarter, nobody the last eighth.
    let n = Self.parameterCount
    let masks = [0.5, 0.25].map { share in
      CoverageMask((0..<n).map { UInt8($0 < Int(Double(n) * share) ? 1 : 0) })
    }
    let (output, _) = try aggregate(makeUpdates(count: 2, coverage: masks), seed: 1)
    let global = makeGlobal()
    if let changed = (n / 2..<n).first(where: { output[$0].bitPattern != global[$0].bitPattern }) {
      throw ConformanceFailure("element \(changed), covered by no client, changed from \(global[changed]) to \(output[changed])")
    }
    if let bad = output.firstNonFiniteIndex {
      throw ConformanceFailure("out_global[\(bad)] = \(output[bad])")
    }
  }

  private func expectAggregateFailure(updates: [ClientUpdate], declaredCount: Int? = nil,
                                      mentioning needle: String?) throws {
    let instance = try library.makeInstance(configJSON: "{}")
    let global = makeGlobal()
    do {
      _ = try instance.aggregateUnchecked(context(updates, round: 0), global: global, updates: updates,
                                          into: ParameterVector(count: global.count), declaredCount: declaredCount)
    } catch let PluginError.callFailed(_, _, _, message) {
      if let needle, !message.contains(needle) {
        throw ConformanceFailure("failed as expected but the message does not name \"\(needle)\": \(message)")
      }
      return
    }
    throw ConformanceFailure("aggregate succeeded")
  }

  private func checkNaNDelta() throws {
    let updates = makeUpdates(count: 3)
    updates[2].delta[17] = .nan
    try expectAggregateFailure(updates: updates, mentioning: "2")
  }

  private func checkLengthMismatch() throws {
    try expectAggregateFailure(updates: makeUpdates(count: 2), declaredCount: Self.parameterCount - 1, mentioning: nil)
  }

  private func checkStateRoundTrip() throws {
    let original = try library.makeInstance(configJSON: "{\"seed\": 3}")
    _ = try aggregate(makeUpdates(count: 3), seed: 3, instance: original, round: 0)
    let state = try original.saveState()
    let restored = try library.makeInstance(configJSON: "{\"seed\": 3}")
    try restored.loadState(state)
    let next = makeUpdates(count: 3, scale: 0.02)
    let (expected, _) = try aggregate(next, seed: 3, instance: original, round: 1)
    let (actual, _) = try aggregate(next, seed: 3, instance: restored, round: 1)
    try expectIdentical(expected, actual, what: "the saved and the restored instance")
  }

  private func checkCorruptState() throws {
    let instance = try library.makeInstance(configJSON: "{}")
    guard instance.supportsState else { return }
    let garbage = [UInt8]("this is not a plugin state".utf8)
    do {
      try instance.loadState(garbage)
    } catch PluginError.callFailed {
      return
    }
    throw ConformanceFailure("load_state accepted 26 bytes of text")
  }

  private func checkInitializer(failing: Bool) throws {
    func runOnce() throws -> (ParameterVector, [String]) {
      let instance = try library.makeInstance(configJSON: "{\"seed\": 9}")
      let weights = makeGlobal()
      var calls: [String] = []
      let services = InitializerServices(
        clientCount: 3,
        trainClient: { client, weights, epochs in
          calls.append("train \(client)")
          if failing { throw ConformanceFailure("synthetic host failure") }
          for index in weights.indices { weights[index] = weights[index] * 0.9 + Float(client) * 0.01 }
          return 0.5 / Double(calls.count)
        },
        evaluateClient: { client, _ in
          calls.append("evaluate \(client)")
          return (0.4, 0.8)
        })
      try instance.initialize(weights: weights, services: services)
      return (weights, calls)
    }
    if failing {
      do { _ = try runOnce() } catch is ConformanceFailure { return } catch PluginError.callFailed { return }
      throw ConformanceFailure("initialize succeeded although every train_client call failed")
    }
    let (first, firstCalls) = try runOnce()
    let (second, secondCalls) = try runOnce()
    guard !firstCalls.isEmpty else { throw ConformanceFailure("initialize never called train_client") }
    if let bad = first.firstNonFiniteIndex {
      throw ConformanceFailure("weights[\(bad)] = \(first[bad])")
    }
    guard firstCalls == secondCalls else { throw ConformanceFailure("call order differs under the same seed") }
    try expectIdentical(first, second, what: "two runs with seed 9")
  }

  private func checkClientHook() throws {
    let instance = try library.makeInstance(configJSON: "{\"seed\": 4}")
    let global = makeGlobal()
    let local = makeGlobal()
    for index in 0..<local.count { local[index] += Float(index % 7) * 0.001 }

    let clientContext = ClientContext(clientID: 1, round: 2, options: TrainingOptions(epochs: 3, batchSize: 4),
                                      sampleCount: 8, parameterCount: global.count)
    let auxDown = ParameterVector(count: library.descriptor.auxDownVectors * global.count)
    for index in 0..<auxDown.count { auxDown[index] = Float(index % 11) * 0.001 }
    let auxUpLength = library.descriptor.auxUpVectors * global.count
    @Sendable func hookOnce() throws -> ParameterVector {
      let result = local.copy()
      let auxUp = ParameterVector(count: auxUpLength)
      let vectors = ClientVectors(coverage: nil, auxDown: auxDown.count == 0 ? nil : UnsafeBufferPointer(auxDown.buffer),
                                  auxUp: auxUp.count == 0 ? nil : auxUp.buffer)
      defer { withExtendedLifetime((auxDown, auxUp)) {} }
      if instance.supportsAdjustGradient {
        for index in 0..<result.count { result[index] = Float(index % 5) * 0.01 }
        if instance.supportsAdjustGradientInContext {
          try instance.adjustGradient(context: clientContext, vectors: vectors, local: local.pointer, global: global.pointer,
                                      gradient: result.pointer)
        } else {
          try instance.adjustGradient(clientID: 1, local: local.pointer, global: global.pointer,
                                      gradient: result.pointer, count: result.count)
        }
      } else {
        // A quadratic local objective ½‖w − target‖², its gradient w − target.
        let services = ClientServices(
          clientID: 1, supportCount: 8, queryCount: 4,
          gradient: { _, _, weights, gradient in
            var loss = 0.0
            for index in 0..<global.count {
              let difference = weights[index] - global[index] * 0.5
              gradient[index] = difference
              loss += Double(difference * difference) / 2
            }
            return loss
          },
          reportMetric: { _, _ in })
        var withContext = services
        withContext.context = (clientContext, vectors)
        try instance.trainLocal(weights: result.buffer, services: withContext)
      }
      if let bad = auxUp.firstNonFiniteIndex {
        throw ConformanceFailure("aux_up[\(bad)] = \(auxUp[bad])")
      }
      return result
    }
    let serial = try hookOnce()
    if let bad = serial.firstNonFiniteIndex {
      throw ConformanceFailure("element \(bad) = \(serial[bad])")
    }
    let results = ConcurrentResults(count: 2)
    DispatchQueue.concurrentPerform(iterations: 2) { slot in results.store(slot, Result { try hookOnce() }) }
    for slot in 0..<2 { try expectIdentical(serial, try results.value(slot).get(), what: "serial and thread \(slot)") }
  }

  private func expectIdentical(_ a: ParameterVector, _ b: ParameterVector, what: String) throws {
    if let index = (0..<a.count).first(where: { a[$0].bitPattern != b[$0].bitPattern }) {
      throw ConformanceFailure("\(what) differ at element \(index): \(a[index]) vs \(b[index])")
    }
  }
}

/// A failed expectation inside a conformance check.
struct ConformanceFailure: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// Results written by concurrent workers into their own slots.
private final class ConcurrentResults: @unchecked Sendable {
  private var slots: [Result<ParameterVector, Error>?]
  private let lock = NSLock()
  init(count: Int) { slots = Array(repeating: nil, count: count) }
  func store(_ slot: Int, _ value: Result<ParameterVector, Error>) { lock.withLock { slots[slot] = value } }
  func value(_ slot: Int) -> Result<ParameterVector, Error> { lock.withLock { slots[slot]! } }
}
