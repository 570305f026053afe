import Foundation

/// How the held-out test rows are chosen.
public enum SplitMode: Sendable, Equatable, CustomStringConvertible {
  /// Seeded random rows, stratified by class: the paper's protocol and the default.
  case stratified
  /// The rows in file order cut into this many contiguous blocks; whole blocks are held out.
  /// Consecutive rows of the electrical files are near-identical waveform samples, so this
  /// measures accuracy on unseen stretches instead of on neighbours of training rows.
  case blocks(Int)

  /// Parses `stratified` or `blocks:N` (N ≥ 2).
  public init?(_ text: String) {
    if text == "stratified" {
      self = .stratified
    } else if text.hasPrefix("blocks:"), let count = Int(text.dropFirst("blocks:".count)), count >= 2 {
      self = .blocks(count)
    } else {
      return nil
    }
  }

  public var description: String {
    switch self {
    case .stratified: "stratified"
    case .blocks(let count): "blocks:\(count)"
    }
  }
}

/// The data protocol's fractions. Defaults are the paper's: 80/20 train/test per device, the
/// train part 20/50/30 into Phases 1/2/3; inside Phases 1 and 2, 80 % support (what a device
/// trains on) and 20 % query (what scores its update: the paper does not give this ratio); and
/// 20 % of Phase 3 kept aside to choose a decision threshold.
public struct SplitFractions: Sendable, Equatable {
  public var test: Double
  public var phase1: Double
  public var phase2: Double
  public var phase3: Double
  /// Support share of Phases 1 and 2; the rest is the query set.
  public var support: Double
  /// Validation share of Phase 3; the rest trains the personalized model.
  public var validation: Double
  public var mode: SplitMode

  public init(test: Double = 0.2, phase1: Double = 0.2, phase2: Double = 0.5, phase3: Double = 0.3,
              support: Double = 0.8, validation: Double = 0.2, mode: SplitMode = .stratified) {
    self.test = test
    self.phase1 = phase1
    self.phase2 = phase2
    self.phase3 = phase3
    self.support = support
    self.validation = validation
    self.mode = mode
  }

  /// What is wrong with these fractions, or nil if they are usable.
  public var problem: String? {
    guard test > 0 && test < 1 else { return "test must be between 0 and 1 (exclusive)" }
    for (name, value) in [("phase1", phase1), ("phase2", phase2), ("phase3", phase3)]
    where !(value >= 0 && value <= 1) {
      return "\(name) must be between 0 and 1"
    }
    guard abs(phase1 + phase2 + phase3 - 1) < 1e-6 else {
      return "phase1 + phase2 + phase3 must be 1, not " + String(format: "%g", phase1 + phase2 + phase3)
    }
    guard support > 0 && support < 1 else { return "support must be between 0 and 1 (exclusive)" }
    guard validation > 0 && validation < 1 else { return "validation must be between 0 and 1 (exclusive)" }
    return nil
  }
}

/// Seeded index splits. Stratified splits share out every class separately by largest remainder,
/// so each part holds within one row of its exact share of each class.
public enum Splitter {
  /// Row indices `0..<labels.count` cut into `fractions.count` parts (fractions are normalized),
  /// stratified by label. Each part is returned in a seeded random order.
  public static func stratified(labels: [Int32], fractions: [Double], seed: UInt64) -> [[Int]] {
    var random = SeededGenerator(seed: seed)
    return stratified(rows: Array(labels.indices), labels: labels, fractions: fractions, random: &random)
  }

  /// Rows `0..<count` cut into `blocks` contiguous blocks of near-equal size;
  /// `round(blocks × heldOutFraction)` whole blocks (at least one, never all) are held out.
  /// Both lists are in file order. Fewer rows than blocks means one block per row; a single row
  /// is kept, since nothing can be held out without emptying the training part.
  public static func blocks(count: Int, blocks requested: Int, heldOutFraction: Double,
                            seed: UInt64) -> (kept: [Int], heldOut: [Int]) {
    let blocks = min(requested, count)
    guard blocks >= 2 else { return (Array(0..<count), []) }
    var random = SeededGenerator(seed: seed)
    var order = Array(0..<blocks)
    random.shuffle(&order)
    let heldOutCount = min(blocks - 1, max(1, Int((Double(blocks) * heldOutFraction).rounded())))
    let heldOutBlocks = Set(order.prefix(heldOutCount))
    var kept = [Int](), heldOut = [Int]()
    for block in 0..<blocks {
      let rows = (block * count / blocks)..<((block + 1) * count / blocks)
      if heldOutBlocks.contains(block) { heldOut += rows } else { kept += rows }
    }
    return (kept, heldOut)
  }

  static func stratified(rows: [Int], labels: [Int32], fractions: [Double],
                         random: inout SeededGenerator) -> [[Int]] {
    precondition(!fractions.isEmpty && fractions.allSatisfy { $0 >= 0 } && fractions.reduce(0, +) > 0)
    let total = fractions.reduce(0, +)
    let shares = fractions.map { $0 / total }
    var byClass = [Int32: [Int]]()
    for row in rows { byClass[labels[row], default: []].append(row) }

    var parts = [[Int]](repeating: [], count: shares.count)
    for label in byClass.keys.sorted() {
      var members = byClass[label]!
      random.shuffle(&members)
      var start = 0
      for (part, size) in apportion(members.count, shares).enumerated() {
        parts[part] += members[start..<(start + size)]
        start += size
      }
    }
    for part in parts.indices { random.shuffle(&parts[part]) }
    return parts
  }

  /// `count` items shared by `shares` (summing to 1): floors first, then one more each to the
  /// largest remainders (earlier parts win ties).
  static func apportion(_ count: Int, _ shares: [Double]) -> [Int] {
    let exact = shares.map { $0 * Double(count) }
    var sizes = exact.map { Int($0.rounded(.down)) }
    let byRemainder = exact.indices.sorted { a, b in
      let ra = exact[a] - Double(sizes[a]), rb = exact[b] - Double(sizes[b])
      return ra != rb ? ra > rb : a < b
    }
    for part in byRemainder.prefix(count - sizes.reduce(0, +)) { sizes[part] += 1 }
    return sizes
  }
}

/// One device's rows under the data protocols, as indices into its dataset. The Fed-Meta-Align
/// protocol's seven lists are disjoint and together cover every row; the standard FL protocol
/// cuts the same train part into `flTrain` and `flValidation` instead.
public struct DeviceSplit: Sendable, Equatable {
  public var test: [Int]
  public var phase1Support: [Int]
  public var phase1Query: [Int]
  public var phase2Support: [Int]
  public var phase2Query: [Int]
  public var phase3Train: [Int]
  public var phase3Validation: [Int]
  /// Standard FL: the train part minus its validation slice, and that slice.
  public var flTrain: [Int]
  public var flValidation: [Int]

  public init(test: [Int], phase1Support: [Int], phase1Query: [Int], phase2Support: [Int], phase2Query: [Int],
              phase3Train: [Int], phase3Validation: [Int], flTrain: [Int], flValidation: [Int]) {
    self.test = test
    self.phase1Support = phase1Support
    self.phase1Query = phase1Query
    self.phase2Support = phase2Support
    self.phase2Query = phase2Query
    self.phase3Train = phase3Train
    self.phase3Validation = phase3Validation
    self.flTrain = flTrain
    self.flValidation = flValidation
  }

  /// Every training row (Phases 1–3): the rows a standardizer may be fitted on.
  public var train: [Int] {
    phase1Support + phase1Query + phase2Support + phase2Query + phase3Train + phase3Validation
  }

  /// Splits rows `0..<labels.count`. The test cut follows `fractions.mode`; everything inside
  /// the training part is stratified. Same labels, fractions and seed → the same split.
  public init(labels: [Int32], fractions: SplitFractions, seed: UInt64) {
    var random = SeededGenerator(seed: seed, stream: 1)
    let train: [Int]
    switch fractions.mode {
    case .stratified:
      let parts = Splitter.stratified(rows: Array(labels.indices), labels: labels,
                                      fractions: [1 - fractions.test, fractions.test], random: &random)
      (train, test) = (parts[0], parts[1])
    case .blocks(let count):
      (train, test) = Splitter.blocks(count: labels.count, blocks: count, heldOutFraction: fractions.test,
                                      seed: random.next())
    }
    let phases = Splitter.stratified(rows: train, labels: labels,
                                     fractions: [fractions.phase1, fractions.phase2, fractions.phase3],
                                     random: &random)
    let support = [fractions.support, 1 - fractions.support]
    let phase1 = Splitter.stratified(rows: phases[0], labels: labels, fractions: support, random: &random)
    let phase2 = Splitter.stratified(rows: phases[1], labels: labels, fractions: support, random: &random)
    let phase3 = Splitter.stratified(rows: phases[2], labels: labels,
                                     fractions: [1 - fractions.validation, fractions.validation],
                                     random: &random)
    (phase1Support, phase1Query) = (phase1[0], phase1[1])
    (phase2Support, phase2Query) = (phase2[0], phase2[1])
    (phase3Train, phase3Validation) = (phase3[0], phase3[1])
    // Its own stream, so that the Fed-Meta-Align lists above stay what they always were.
    var flRandom = SeededGenerator(seed: seed, stream: 2)
    let fl = Splitter.stratified(rows: train, labels: labels, fractions: [1 - fractions.validation, fractions.validation],
                                 random: &flRandom)
    (flTrain, flValidation) = (fl[0], fl[1])
  }
}

extension Samples {
  /// These rows cut into parts with `fractions` (normalized), stratified by label and seeded;
  /// e.g. `[0.2, 0.8]` for a fresh support/query split each round.
  public func stratifiedParts(_ fractions: [Double], seed: UInt64) -> [Samples] {
    Splitter.stratified(labels: labels, fractions: fractions, seed: seed).map { subset($0) }
  }
}
