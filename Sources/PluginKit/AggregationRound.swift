import Glibc
import PluginAPI

/// One client's update as a plugin reads it: borrowed views into the host's buffers, valid
/// for the `aggregate` call only.
public struct ClientUpdateView {
  public let clientID: UInt32
  /// w_client − w_global, `parameterCount` floats (0 where not covered).
  public let delta: UnsafePointer<Float>
  /// Training samples behind the update (> 0).
  public let sampleCount: UInt64
  /// nil: the client trained every element; else 1 = trained, 0 = not trained.
  public let coverage: UnsafePointer<UInt8>?
  let metrics: UnsafeBufferPointer<fhp_metric>
  /// The aux_up vectors its client hook sent (ABI 1.2: `n_aux_up` × parameterCount floats); nil
  /// when the strategy declares none or the host predates 1.2.
  public internal(set) var auxUp: UnsafeBufferPointer<Float>?

  /// The value of metric `key`, nil if the client did not report it.
  public func metric(_ key: String) -> Double? {
    key.withCString { wanted in
      metrics.first(where: { $0.key.map { strcmp($0, wanted) == 0 } ?? false })?.value
    }
  }

  /// The value of metric `key`; `FHP_E_INVALID` naming the client if it is missing or not finite.
  public func requiredMetric(_ key: String) throws -> Double {
    guard let value = metric(key) else {
      throw PluginFailure.invalid("client \(clientID) did not report the metric \"\(key)\"")
    }
    guard value.isFinite else {
      throw PluginFailure.numeric("client \(clientID) reported a non-finite \"\(key)\": \(value)")
    }
    return value
  }
}

/// A validated `aggregate` call: the current global model, the updates, and the host's
/// output buffers.
///
/// Construction checks everything the header lists as an error except non-finite deltas:
/// at least one update, equal n_params, n_samples > 0, no NULL buffers, no client twice.
/// Scanning every delta for NaN/Inf up front would cost a full extra pass over the biggest
/// data in the call, so kernels check their (much smaller) results instead and call
/// `nonFiniteFailure()` to name the client responsible.
public struct AggregationRound {
  public let round: UInt32
  public let parameterCount: Int
  public let global: UnsafePointer<Float>
  public let updates: [ClientUpdateView]
  /// Host-owned, `parameterCount` floats; every element must be written.
  public let output: UnsafeMutablePointer<Float>
  private let weightsOutput: UnsafeMutablePointer<Double>?
  /// The instance's host: its `parallelFor` runs the kernels' tasks on the host's threads.
  public let host: PluginHost
  /// The round's context (ABI 1.2 `aggregate_round`); nil when an older host called `aggregate`.
  public let context: RoundContextView?

  init(round: UInt32, global: UnsafePointer<Float>?, parameterCount rawCount: UInt64,
       updates rawUpdates: UnsafePointer<fhp_update>?, updateCount: UInt32,
       output: UnsafeMutablePointer<Float>?, weights: UnsafeMutablePointer<Double>?, host: PluginHost,
       context: RoundContextView? = nil) throws {
    self.context = context
    guard updateCount > 0 else { throw PluginFailure.invalid("aggregate: no updates (n_updates is 0)") }
    guard let rawUpdates else { throw PluginFailure.invalid("aggregate: updates is NULL") }
    guard let global, let output else { throw PluginFailure.invalid("aggregate: global or out_global is NULL") }
    // Bounded so that byte counts (×8) cannot overflow anywhere downstream.
    guard rawCount <= UInt64(Int.max / 16) else {
      throw PluginFailure.invalid("aggregate: n_params \(rawCount) is too large")
    }
    let count = Int(rawCount)
    self.round = round
    self.parameterCount = count
    self.global = global
    self.output = output
    self.weightsOutput = weights
    self.host = host
    var updates = try Self.readUpdates(rawUpdates, count: Int(updateCount), parameterCount: rawCount)
    if let context {
      for index in updates.indices { updates[index].auxUp = context.auxUp(ofUpdate: index) }
    }
    self.updates = updates
  }

  /// A round over already validated updates (see `selecting`).
  init(round: UInt32, parameterCount: Int, global: UnsafePointer<Float>, updates: [ClientUpdateView],
       output: UnsafeMutablePointer<Float>, weightsOutput: UnsafeMutablePointer<Double>?, host: PluginHost,
       context: RoundContextView?) {
    self.context = context
    self.round = round
    self.parameterCount = parameterCount
    self.global = global
    self.updates = updates
    self.output = output
    self.weightsOutput = weightsOutput
    self.host = host
  }

  /// Reads the update array. Its stride is the host's `sizeof(fhp_update)`, which is the
  /// first element's struct_size (a newer host's struct may be longer than ours).
  private static func readUpdates(_ first: UnsafePointer<fhp_update>, count: Int, parameterCount: UInt64) throws
    -> [ClientUpdateView]
  {
    let requiredSize = (MemoryLayout<fhp_update>.offset(of: \.n_samples) ?? 0) + MemoryLayout<UInt64>.size
    let stride = Int(first.pointee.struct_size)
    guard stride >= requiredSize, stride % MemoryLayout<UInt64>.alignment == 0 else {
      throw PluginFailure.invalid("aggregate: fhp_update.struct_size \(stride) is invalid")
    }
    var seen = Set<UInt32>()
    var views: [ClientUpdateView] = []
    views.reserveCapacity(count)
    let base = UnsafeRawPointer(first)
    for index in 0..<count {
      // Members beyond the host's struct_size read as zero/NULL (header rule 2).
      var update = fhp_update()
      memcpy(&update, base + index * stride, min(stride, MemoryLayout<fhp_update>.size))
      let client = update.client_id
      guard Int(update.struct_size) == stride else {
        throw PluginFailure.invalid("aggregate: update \(index) (client \(client)) has struct_size \(update.struct_size), not \(stride)")
      }
      guard seen.insert(client).inserted else {
        throw PluginFailure.invalid("aggregate: client \(client) appears more than once")
      }
      guard update.n_params == parameterCount else {
        throw PluginFailure.invalid("aggregate: client \(client) has n_params \(update.n_params), expected \(parameterCount)")
      }
      guard update.n_samples > 0 else { throw PluginFailure.invalid("aggregate: client \(client) has n_samples 0") }
      guard let delta = update.delta else { throw PluginFailure.invalid("aggregate: client \(client) has a NULL delta") }
      guard update.n_metrics == 0 || update.metrics != nil else {
        throw PluginFailure.invalid("aggregate: client \(client) has n_metrics \(update.n_metrics) but NULL metrics")
      }
      views.append(ClientUpdateView(clientID: client, delta: delta, sampleCount: update.n_samples,
                                    coverage: update.coverage,
                                    metrics: UnsafeBufferPointer(start: update.metrics, count: Int(update.n_metrics)),
                                    auxUp: nil))
    }
    return views
  }

  /// Writes the effective weights if the host asked for them (`out_weights` non-NULL).
  public func reportWeights(_ weights: [Double]) {
    guard let weightsOutput else { return }
    for (index, weight) in weights.prefix(updates.count).enumerated() { weightsOutput[index] = weight }
  }

  /// The `FHP_E_NUMERIC` failure for a non-finite result: names the first client with a
  /// non-finite covered delta element, else a non-finite global element, else overflow.
  public func nonFiniteFailure() -> PluginFailure {
    for update in updates {
      for index in 0..<parameterCount where !update.delta[index].isFinite {
        if let coverage = update.coverage, coverage[index] == 0 { continue }
        return .numeric("client \(update.clientID): delta[\(index)] is \(update.delta[index])")
      }
    }
    for index in 0..<parameterCount where !global[index].isFinite {
      return .numeric("global[\(index)] is \(global[index])")
    }
    return .numeric("the aggregated model would not be finite (overflow)")
  }
}
