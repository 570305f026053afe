import Glibc

/// The server optimizers of FedAvgM (Hsu et al. 2019) and FedOpt (Reddi et al. 2021:
/// FedAdagrad, FedAdam, FedYogi), one kernel with the update rule as a parameter.
///
/// Every round the pseudo-gradient is the FedAvg mean of the deltas,
/// Δ = Σ_k p_k Δ_k with p_k = n_k / Σ n_j (per element over the covering clients with
/// coverage masks), rounded to float32 as Flower's `aggregated − current` is. Then per element,
/// with m and v the saved moments (zero before the first round):
///
///     momentum (FedAvgM):  m ← μ·m + Δ;                 w ← w + η_s·m
///     adagrad:             m ← Δ;  v ← v + Δ²;           w ← w + η·m / (√v + τ)
///     adam:                m ← β₁m + (1−β₁)Δ;  v ← β₂v + (1−β₂)Δ²;
///                          w ← w + η·√(1−β₂^(r+2))/(1−β₁^(r+2)) · m / (√v + τ)
///     yogi:                m ← β₁m + (1−β₁)Δ;  v ← v − (1−β₂)Δ²·sign(v − Δ²);
///                          w ← w + η·m / (√v + τ)
///
/// r is the host's 0-based round, so r + 2 is Flower's `server_round + 1` (its bias
/// correction runs one step ahead of the round count; kept so results match Flower's).
/// FedAvgM's m is Flower's momentum vector with the sign flipped (Flower keeps old − new).
///
/// Elements that no update covers are left alone: their weight keeps global's value and
/// their m and v stay as they were (a sub-model round neither decays nor feeds the moments
/// of parameters it did not train).
///
/// The moments are float32, saved and loaded bit for bit. Each element is updated by one
/// task in Double from float32 inputs, so the bits do not depend on tasks or threads. A
/// round that fails (a non-finite result) leaves the moments as they were.
public struct ServerOptimizer {
  public enum Rule: Sendable, Equatable {
    case momentum(learningRate: Double, momentum: Double)
    case adagrad(eta: Double, tau: Double)
    case adam(eta: Double, beta1: Double, beta2: Double, tau: Double)
    case yogi(eta: Double, beta1: Double, beta2: Double, tau: Double)

    /// Whether the rule keeps a second moment v.
    var usesSecondMoment: Bool {
      if case .momentum = self { return false }
      return true
    }
  }

  public let rule: Rule
  /// m and v, one float per parameter once the first round has run (empty before).
  private var first: [Float] = []
  private var second: [Float] = []

  public init(rule: Rule) { self.rule = rule }

  /// One server step: writes `round.output` and reports the FedAvg weights p_k (each
  /// client's share of the pseudo-gradient; the optimizer then transforms the mean as a whole).
  public mutating func step(_ round: AggregationRound) throws {
    let count = round.parameterCount
    guard first.isEmpty || first.count == count else {
      throw PluginFailure.invalid("the optimizer state holds \(first.count) parameters, the model has \(count)")
    }
    var nextFirst = first.isEmpty ? [Float](repeating: 0, count: count) : first
    var nextSecond = rule.usesSecondMoment ? (second.isEmpty ? [Float](repeating: 0, count: count) : second) : []
    let weights = FederatedAveraging.sampleWeights(round.updates)
    let coefficients = Coefficients(rule, round: round.round)
    let length = blockLength(preferred: WeightedDeltaSum.blockSize, count: count)
    let checks = try nextFirst.withUnsafeMutableBufferPointer { m in
      try nextSecond.withUnsafeMutableBufferPointer { v in
        try round.mapTasks(blockLength: length) { blocks -> SIMD8<Float> in
          let mean = try WeightedDeltaSum(round.updates, weights: weights, maxBlockLength: length)
          let delta = try ScratchBuffer(repeating: Float(0), count: length)
          let covered = try ScratchBuffer(repeating: UInt8(0), count: length)
          var nonFinite = SIMD8<Float>()
          for block in blocks {
            nonFinite += mean.computeBlock(block, base: nil, scale: 1, into: delta.pointer)
            round.writeCoverageUnion(block, into: covered.pointer)
            nonFinite += coefficients.apply(block, delta: delta.pointer, covered: covered.pointer,
                                            global: round.global, first: m.baseAddress!,
                                            second: v.baseAddress, into: round.output)
          }
          return nonFinite
        }
      }
    }
    guard !checks.reduce(SIMD8<Float>(), +).sum().isNaN else { throw round.nonFiniteFailure() }
    first = nextFirst
    second = nextSecond
    round.reportWeights(weights)
  }

  /// Saves m and v (empty before the first round).
  public func save(into writer: inout StateWriter) {
    writer.write(first)
    writer.write(second)
  }

  /// Restores what `save` wrote; `FHP_E_STATE` if the vectors do not fit this rule.
  public mutating func load(from reader: inout StateReader) throws {
    let savedFirst: [Float] = try reader.read()
    let savedSecond: [Float] = try reader.read()
    let expectedSecond = rule.usesSecondMoment ? savedFirst.count : 0
    guard savedSecond.count == expectedSecond else {
      throw PluginFailure.state("saved moments have \(savedFirst.count) and \(savedSecond.count) elements, "
                                + "expected \(expectedSecond) for the second")
    }
    first = savedFirst
    second = savedSecond
  }
}

extension ServerOptimizer {
  /// The rule's constants for one round, and the per-element update.
  struct Coefficients {
    let rule: Rule
    /// The step factor: η_s, η, or Adam's bias-corrected η.
    let stepSize: Double

    init(_ rule: Rule, round: UInt32) {
      self.rule = rule
      switch rule {
      case let .momentum(learningRate, _): stepSize = learningRate
      case let .adagrad(eta, _), let .yogi(eta, _, _, _): stepSize = eta
      case let .adam(eta, beta1, beta2, _):
        let exponent = Double(round) + 2
        stepSize = eta * (1 - pow(beta2, exponent)).squareRoot() / (1 - pow(beta1, exponent))
      }
    }

    /// Updates the moments of the covered elements of `block` in place and writes the new
    /// weights (global where uncovered). `delta`/`covered` point at the block's first element,
    /// the other pointers at element 0. Returns lanes that are NaN iff a result is not finite.
    func apply(_ block: Range<Int>, delta: UnsafePointer<Float>, covered: UnsafePointer<UInt8>,
               global: UnsafePointer<Float>, first: UnsafeMutablePointer<Float>,
               second: UnsafeMutablePointer<Float>?, into output: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
      var check = SIMD8<Float>()
      for index in 0..<block.count {
        let element = block.lowerBound + index
        guard covered[index] != 0 else {
          output[element] = global[element]
          continue
        }
        let d = Double(delta[index])
        let m: Double
        var step: Double
        switch rule {
        case let .momentum(_, momentum):
          m = momentum * Double(first[element]) + d
          step = m
        case let .adagrad(_, tau):
          m = d
          let v = Double(second![element]) + d * d
          second![element] = Float(v)
          step = m / (Float(v).squareRootDouble + tau)
        case let .adam(_, beta1, beta2, tau):
          m = beta1 * Double(first[element]) + (1 - beta1) * d
          let v = beta2 * Double(second![element]) + (1 - beta2) * d * d
          second![element] = Float(v)
          step = m / (Float(v).squareRootDouble + tau)
        case let .yogi(_, beta1, beta2, tau):
          m = beta1 * Double(first[element]) + (1 - beta1) * d
          let old = Double(second![element])
          let squared = d * d
          let sign: Double = old > squared ? 1 : (old < squared ? -1 : 0)
          let v = old - (1 - beta2) * squared * sign
          second![element] = Float(v)
          step = m / (Float(v).squareRootDouble + tau)
        }
        first[element] = Float(m)
        step *= stepSize
        let result = Float(Double(global[element]) + step)
        output[element] = result
        check[index & 7] += result - result + (Float(m) - Float(m))
      }
      return check
    }
  }
}

extension Float {
  /// √ of the stored float32 moment, in Double: v is kept as float32, as Flower keeps it.
  fileprivate var squareRootDouble: Double { Double(self).squareRoot() }
}

/// A plugin whose whole server step is a `ServerOptimizer`: aggregation and state come from here.
public protocol ServerOptimizerPlugin: FedHostPlugin {
  var optimizer: ServerOptimizer { get set }
}

extension ServerOptimizerPlugin {
  public func aggregate(_ round: AggregationRound) throws { try optimizer.step(round) }
  public func saveState(into writer: inout StateWriter) throws { optimizer.save(into: &writer) }
  public func loadState(from reader: inout StateReader) throws { try optimizer.load(from: &reader) }
}

extension ServerOptimizer.Rule {
  /// FedAdam's rule from a config with `fedOptKeys`.
  public static func adam(_ config: PluginConfig) throws -> Self {
    .adam(eta: try config.number("eta"), beta1: try config.number("beta_1"), beta2: try config.number("beta_2"),
          tau: try config.number("tau"))
  }

  /// FedYogi's rule from a config with `fedOptKeys`.
  public static func yogi(_ config: PluginConfig) throws -> Self {
    .yogi(eta: try config.number("eta"), beta1: try config.number("beta_1"), beta2: try config.number("beta_2"),
          tau: try config.number("tau"))
  }
}

extension ConfigKey {
  /// FedOpt's keys with Flower's names and the given defaults (Flower's differ per strategy).
  /// `eta_l` is the client learning rate Flower's FedOpt stores and never uses on the server;
  /// it is accepted so that Flower configs load, and ignored (the host's optimizer trains clients).
  public static func fedOptKeys(eta: Double, etaL: Double, beta1: Double?, beta2: Double?, tau: Double) -> [ConfigKey] {
    var keys: [ConfigKey] = [
      .number("eta", default: eta, in: 0...1e6, "server learning rate eta"),
      .number("eta_l", default: etaL, in: 0...1e6,
              "client learning rate (Flower's name; unused on the server, accepted for Flower configs)"),
    ]
    if let beta1 { keys.append(.number("beta_1", default: beta1, in: 0...1, "first-moment decay beta_1")) }
    if let beta2 { keys.append(.number("beta_2", default: beta2, in: 0...1, "second-moment decay beta_2")) }
    keys.append(.number("tau", default: tau, in: 1e-12...1e6, "adaptivity tau: step = eta*m/(sqrt(v)+tau)"))
    return keys
  }
}
