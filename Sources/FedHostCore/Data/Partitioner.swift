import Foundation

/// How one dataset is shared out among simulated clients. The names follow Flower Datasets'
/// partitioners (`flwr_datasets.partitioner`) and NIID-Bench (Li et al., ICDE 2022), whose
/// partitions most FL papers reuse; `docs/federation-spec.md` maps each to its source.
public enum PartitionMethod: Sendable, Equatable {
  /// How `pathological` picks each client's classes (Flower's `class_assignment_mode`).
  public enum ClassAssignment: String, Sendable, Equatable, CaseIterable {
    /// Client `p`'s first class is class `p mod C`, the others are drawn (NIID-Bench's `#C=k`).
    case firstDeterministic = "first-deterministic"
    /// Client `p` holds classes `p, p + 1, …, p + k − 1` (mod C): no randomness.
    case deterministic
    /// Every class of every client is drawn.
    case random
  }

  /// Client sizes as a function of the client number `i` = 1…N (Flower's `IdToSizeFncPartitioner`).
  public enum SizeRule: String, Sendable, Equatable, CaseIterable {
    case linear, square, exponential
  }

  /// Rows dealt out uniformly at random, sizes within one row of each other.
  case iid
  /// Label skew: each class's rows are divided among clients by proportions drawn from
  /// Dirichlet(α, …, α). Small α gives clients few classes; large α approaches IID. A draw that
  /// leaves a client below `minPartitionSize` rows is redrawn (Flower's `min_partition_size`).
  case dirichlet(alpha: Double, minPartitionSize: Int = 1)
  /// Label skew by class count: every client holds rows of exactly `classesPerClient` classes;
  /// each class's rows are split evenly among the clients that hold it.
  case pathological(classesPerClient: Int, assignment: ClassAssignment)
  /// McMahan et al.'s shards: rows sorted by label are cut into `clients × shardsPerClient`
  /// contiguous shards (sizes within one row), and each client gets `shardsPerClient` at random.
  case shard(shardsPerClient: Int)
  /// Quantity skew (NIID-Bench): client sizes drawn from Dirichlet(α), labels IID; redrawn while a
  /// client is below `minPartitionSize` rows.
  case quantity(alpha: Double, minPartitionSize: Int = 1)
  /// Client `i`'s size proportional to `i`, `i²` or `eⁱ`, labels IID.
  case sizes(SizeRule)
  /// One client per distinct value of a column, in sorted value order (AI4I `Type` → H, L, M).
  case column(String)
}

/// Seeded partitioners. Each returns one list of row indices per client; the lists are disjoint,
/// cover every row, are sorted and are never empty (an impossible request is a `PartitionError`).
public enum Partitioner {
  /// How often a random draw is retried before an empty client (or, for `pathological`, a class
  /// no client holds) becomes an error.
  public static let drawAttempts = 100

  /// Rows per client for every method except `column` (which reads a column, not labels).
  public static func partition(_ method: PartitionMethod, labels: [Int32], clients: Int,
                               seed: UInt64) throws -> [[Int]] {
    switch method {
    case .iid: return try iid(rowCount: labels.count, clients: clients, seed: seed)
    case .dirichlet(let alpha, let minimum):
      return try dirichlet(labels: labels, clients: clients, alpha: alpha, minPartitionSize: minimum, seed: seed)
    case .pathological(let classesPerClient, let assignment):
      return try pathological(labels: labels, clients: clients, classesPerClient: classesPerClient,
                              assignment: assignment, seed: seed)
    case .shard(let shardsPerClient):
      return try shard(labels: labels, clients: clients, shardsPerClient: shardsPerClient, seed: seed)
    case .quantity(let alpha, let minimum):
      return try quantity(rowCount: labels.count, clients: clients, alpha: alpha, minPartitionSize: minimum, seed: seed)
    case .sizes(let rule): return try sizes(rowCount: labels.count, clients: clients, rule: rule, seed: seed)
    case .column: throw PartitionError("method \"column\" partitions by a column's values, not by labels")
    }
  }

  /// `rowCount` rows dealt round-robin after a seeded shuffle.
  public static func iid(rowCount: Int, clients: Int, seed: UInt64) throws -> [[Int]] {
    try requireClients(clients, rows: rowCount)
    var random = SeededGenerator(seed: seed, stream: 11)
    var rows = Array(0..<rowCount)
    random.shuffle(&rows)
    var parts = [[Int]](repeating: [], count: clients)
    for (position, row) in rows.enumerated() { parts[position % clients].append(row) }
    return parts.map { $0.sorted() }
  }

  /// Dirichlet(α) label skew. A draw that leaves a client with fewer than `minPartitionSize` rows
  /// is redrawn (from the same seeded stream, so the result stays reproducible); after
  /// `drawAttempts` failures this throws.
  public static func dirichlet(labels: [Int32], clients: Int, alpha: Double, minPartitionSize: Int = 1,
                               seed: UInt64) throws -> [[Int]] {
    try requireClients(clients, rows: labels.count)
    try requireAlpha(alpha)
    try requireMinimum(minPartitionSize, clients: clients, rows: labels.count)
    let byClass = rowsByClass(labels)
    var random = SeededGenerator(seed: seed, stream: 12)

    for _ in 0..<drawAttempts {
      var parts = [[Int]](repeating: [], count: clients)
      for var members in byClass {
        random.shuffle(&members)
        let shares = random.dirichlet(alpha: alpha, count: clients)
        for (client, rows) in cut(members, sizes: Splitter.apportion(members.count, shares)).enumerated() {
          parts[client] += rows
        }
      }
      if parts.allSatisfy({ $0.count >= minPartitionSize }) { return parts.map { $0.sorted() } }
    }
    throw PartitionError(
      "Dirichlet(α = \(alpha)) left a client \(shortfall(minPartitionSize)) in \(drawAttempts) draws for "
        + "\(clients) clients and \(labels.count) rows; raise alpha or use fewer clients")
  }

  /// `classesPerClient` classes per client (Flower's `PathologicalPartitioner`), chosen by
  /// `assignment`; each class's rows, shuffled, are cut evenly among the clients holding it.
  /// Unlike Flower, which drops the rows of a class no client drew, a draw that leaves a class
  /// unheld (or a client without rows) is redrawn, and after `drawAttempts` this throws.
  public static func pathological(labels: [Int32], clients: Int, classesPerClient: Int,
                                  assignment: PartitionMethod.ClassAssignment, seed: UInt64) throws -> [[Int]] {
    try requireClients(clients, rows: labels.count)
    let byClass = rowsByClass(labels)
    let classCount = byClass.count
    guard (1...classCount).contains(classesPerClient) else {
      throw PartitionError("num_classes_per_partition must be between 1 and the \(classCount) classes, "
                           + "not \(classesPerClient)")
    }
    guard clients * classesPerClient >= classCount else {
      throw PartitionError("\(clients) clients × \(classesPerClient) classes each cannot hold all \(classCount) "
                           + "classes; use more clients or a larger num_classes_per_partition")
    }
    var random = SeededGenerator(seed: seed, stream: 13)
    let attempts = assignment == .deterministic ? 1 : drawAttempts
    for _ in 0..<attempts {
      let held = (0..<clients).map { client -> [Int] in
        switch assignment {
        case .deterministic:
          return (0..<classesPerClient).map { (client + $0) % classCount }
        case .firstDeterministic:
          var others = (0..<classCount).filter { $0 != client % classCount }
          random.shuffle(&others)
          return [client % classCount] + others.prefix(classesPerClient - 1)
        case .random:
          var all = Array(0..<classCount)
          random.shuffle(&all)
          return Array(all.prefix(classesPerClient))
        }
      }
      var holders = [[Int]](repeating: [], count: classCount)
      for (client, classes) in held.enumerated() {
        for label in classes { holders[label].append(client) }
      }
      guard holders.allSatisfy({ !$0.isEmpty }) else { continue }
      var parts = [[Int]](repeating: [], count: clients)
      for (label, var members) in byClass.enumerated() {
        random.shuffle(&members)
        let shares = equalShares(holders[label].count)
        for (client, rows) in zip(holders[label], cut(members, sizes: Splitter.apportion(members.count, shares))) {
          parts[client] += rows
        }
      }
      if parts.allSatisfy({ !$0.isEmpty }) { return parts.map { $0.sorted() } }
    }
    throw PartitionError(
      "pathological (\(classesPerClient) classes per client, \(assignment.rawValue)) left a class without a "
        + "client or a client without rows in \(attempts) draw\(attempts == 1 ? "" : "s") for \(clients) clients; "
        + "change num_classes_per_partition, class_assignment_mode or the number of clients")
  }

  /// Flower's `ShardPartitioner` keeping every row: rows sorted by label (shuffled within each
  /// class) are cut into `clients × shardsPerClient` shards whose sizes differ by at most one
  /// (Flower instead drops an incomplete last shard), dealt `shardsPerClient` per client at random.
  public static func shard(labels: [Int32], clients: Int, shardsPerClient: Int, seed: UInt64) throws -> [[Int]] {
    try requireClients(clients, rows: labels.count)
    guard shardsPerClient >= 1 else {
      throw PartitionError("num_shards_per_partition must be at least 1, not \(shardsPerClient)")
    }
    let shardCount = clients * shardsPerClient
    guard shardCount <= labels.count else {
      throw PartitionError("\(clients) clients × \(shardsPerClient) shards need at least \(shardCount) rows, "
                           + "found \(labels.count)")
    }
    var random = SeededGenerator(seed: seed, stream: 14)
    let sorted = rowsByClass(labels).flatMap { members -> [Int] in
      var shuffled = members
      random.shuffle(&shuffled)
      return shuffled
    }
    let shards = cut(sorted, sizes: Splitter.apportion(sorted.count, equalShares(shardCount)))
    var order = Array(0..<shardCount)
    random.shuffle(&order)
    return (0..<clients).map { client in
      order[(client * shardsPerClient)..<((client + 1) * shardsPerClient)].flatMap { shards[$0] }.sorted()
    }
  }

  /// NIID-Bench's quantity skew: client sizes by largest remainder of shares drawn from
  /// Dirichlet(α) (redrawn while a client would get fewer than `minPartitionSize` rows; NIID-Bench
  /// requires 10), rows dealt after a seeded shuffle.
  public static func quantity(rowCount: Int, clients: Int, alpha: Double, minPartitionSize: Int = 1,
                              seed: UInt64) throws -> [[Int]] {
    try requireClients(clients, rows: rowCount)
    try requireAlpha(alpha)
    try requireMinimum(minPartitionSize, clients: clients, rows: rowCount)
    var random = SeededGenerator(seed: seed, stream: 15)
    var rows = Array(0..<rowCount)
    random.shuffle(&rows)
    for _ in 0..<drawAttempts {
      let sizes = Splitter.apportion(rowCount, random.dirichlet(alpha: alpha, count: clients))
      if sizes.min()! >= minPartitionSize { return cut(rows, sizes: sizes).map { $0.sorted() } }
    }
    throw PartitionError(
      "quantity skew (α = \(alpha)) left a client \(shortfall(minPartitionSize)) in \(drawAttempts) draws for "
        + "\(clients) clients and \(rowCount) rows; raise alpha or use fewer clients")
  }

  /// Flower's `LinearPartitioner`, `SquarePartitioner`, `ExponentialPartitioner`: client `i`
  /// (1…N) gets a share proportional to `i`, `i²` or `eⁱ` (by largest remainder), rows dealt
  /// after a seeded shuffle.
  public static func sizes(rowCount: Int, clients: Int, rule: PartitionMethod.SizeRule,
                           seed: UInt64) throws -> [[Int]] {
    try requireClients(clients, rows: rowCount)
    let weights = (1...clients).map { number -> Double in
      switch rule {
      case .linear: return Double(number)
      case .square: return Double(number * number)
      case .exponential: return exp(Double(number - clients))  // eⁱ scaled by e^−N, which cannot overflow
      }
    }
    let total = weights.reduce(0, +)
    let sizes = Splitter.apportion(rowCount, weights.map { $0 / total })
    if let empty = sizes.firstIndex(of: 0) {
      throw PartitionError("\(rule.rawValue) sizes give client \(empty + 1) of \(clients) no rows out of "
                           + "\(rowCount); use fewer clients")
    }
    var random = SeededGenerator(seed: seed, stream: 16)
    var rows = Array(0..<rowCount)
    random.shuffle(&rows)
    return cut(rows, sizes: sizes).map { $0.sorted() }
  }

  /// One client per distinct value of `values`, in sorted order.
  public static func byValue(_ values: [String]) -> [(value: String, rows: [Int])] {
    var rowsByValue = [String: [Int]]()
    for (row, value) in values.enumerated() { rowsByValue[value, default: []].append(row) }
    return rowsByValue.keys.sorted().map { ($0, rowsByValue[$0]!) }
  }

  /// The rows of each label that occurs, in ascending label order.
  private static func rowsByClass(_ labels: [Int32]) -> [[Int]] {
    var byClass = [Int32: [Int]]()
    for (row, label) in labels.enumerated() { byClass[label, default: []].append(row) }
    return byClass.keys.sorted().map { byClass[$0]! }
  }

  /// `items` cut into consecutive runs of `sizes` (which sum to `items.count`).
  private static func cut(_ items: [Int], sizes: [Int]) -> [[Int]] {
    var start = 0
    return sizes.map { size in
      defer { start += size }
      return Array(items[start..<(start + size)])
    }
  }

  private static func equalShares(_ count: Int) -> [Double] {
    [Double](repeating: 1 / Double(count), count: count)
  }

  private static func requireClients(_ clients: Int, rows: Int) throws {
    guard clients >= 1 else { throw PartitionError("need at least 1 client, not \(clients)") }
    guard clients <= rows else { throw PartitionError("\(clients) clients but only \(rows) rows") }
  }

  private static func requireMinimum(_ minimum: Int, clients: Int, rows: Int) throws {
    guard minimum >= 1 else { throw PartitionError("min_partition_size must be at least 1, not \(minimum)") }
    guard clients * minimum <= rows else {
      throw PartitionError("\(clients) clients × min_partition_size \(minimum) need \(clients * minimum) rows, "
                           + "found \(rows)")
    }
  }

  /// How a client missed `minPartitionSize`, for the error after the last draw.
  private static func shortfall(_ minPartitionSize: Int) -> String {
    minPartitionSize == 1 ? "empty" : "below min_partition_size \(minPartitionSize)"
  }

  private static func requireAlpha(_ alpha: Double) throws {
    guard alpha > 0, alpha.isFinite else {
      throw PartitionError("Dirichlet alpha must be a positive number, not \(alpha)")
    }
  }
}

/// A partition that cannot be made (e.g. more clients than rows); one line.
public struct PartitionError: Error, CustomStringConvertible, Equatable, Sendable {
  public let message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
