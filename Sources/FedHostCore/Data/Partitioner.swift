/// How one dataset is shared out among simulated clients.
public enum PartitionMethod: Sendable, Equatable {
  /// Rows dealt out uniformly at random, sizes within one row of each other.
  case iid
  /// Label skew: each class's rows are divided among clients by proportions drawn from
  /// Dirichlet(α, …, α). Small α gives clients few classes; large α approaches IID.
  case dirichlet(alpha: Double)
  /// One client per distinct value of a column, in sorted value order (AI4I `Type` → H, L, M).
  case column(String)
}

/// Seeded partitioners. Each returns one list of row indices per client; the lists are disjoint,
/// cover every row and are sorted.
public enum Partitioner {
  /// How often a Dirichlet draw is retried before an empty client becomes an error.
  public static let dirichletAttempts = 100

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

  /// Dirichlet(α) label skew. A draw that leaves a client without rows is redrawn (from the same
  /// seeded stream, so the result stays reproducible); after `dirichletAttempts` failures this throws.
  public static func dirichlet(labels: [Int32], clients: Int, alpha: Double, seed: UInt64) throws -> [[Int]] {
    try requireClients(clients, rows: labels.count)
    guard alpha > 0, alpha.isFinite else {
      throw PartitionError("Dirichlet alpha must be a positive number, not \(alpha)")
    }
    var byClass = [Int32: [Int]]()
    for (row, label) in labels.enumerated() { byClass[label, default: []].append(row) }
    let classes = byClass.keys.sorted()
    var random = SeededGenerator(seed: seed, stream: 12)

    for _ in 0..<dirichletAttempts {
      var parts = [[Int]](repeating: [], count: clients)
      for label in classes {
        var members = byClass[label]!
        random.shuffle(&members)
        var start = 0
        let shares = random.dirichlet(alpha: alpha, count: clients)
        for (client, size) in Splitter.apportion(members.count, shares).enumerated() {
          parts[client] += members[start..<(start + size)]
          start += size
        }
      }
      if parts.allSatisfy({ !$0.isEmpty }) { return parts.map { $0.sorted() } }
    }
    throw PartitionError(
      "Dirichlet(α = \(alpha)) left a client empty in \(dirichletAttempts) draws for \(clients) clients "
        + "and \(labels.count) rows; raise alpha or use fewer clients")
  }

  /// One client per distinct value of `values`, in sorted order.
  public static func byValue(_ values: [String]) -> [(value: String, rows: [Int])] {
    var rowsByValue = [String: [Int]]()
    for (row, value) in values.enumerated() { rowsByValue[value, default: []].append(row) }
    return rowsByValue.keys.sorted().map { ($0, rowsByValue[$0]!) }
  }

  private static func requireClients(_ clients: Int, rows: Int) throws {
    guard clients >= 1 else { throw PartitionError("need at least 1 client, not \(clients)") }
    guard clients <= rows else { throw PartitionError("\(clients) clients but only \(rows) rows") }
  }
}

/// A partition that cannot be made (e.g. more clients than rows); one line.
public struct PartitionError: Error, CustomStringConvertible, Equatable, Sendable {
  public let message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
