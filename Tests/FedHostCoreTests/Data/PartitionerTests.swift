import FedHostCore
import Foundation
import Testing

@Suite("Data: partitioners")
struct DataPartitionerTests {
  static let labels: [Int32] = (0..<600).map { Int32($0 % 6) }

  private func expectPartition(_ parts: [[Int]], of count: Int) {
    #expect(parts.allSatisfy { !$0.isEmpty })
    #expect(parts.map(\.count).reduce(0, +) == count)
    #expect(Set(parts.flatMap { $0 }) == Set(0..<count))
  }

  @Test func iidSizesDifferByAtMostOne() throws {
    let parts = try Partitioner.iid(rowCount: 103, clients: 4, seed: 1)
    expectPartition(parts, of: 103)
    #expect(parts.map(\.count).max()! - parts.map(\.count).min()! <= 1)
    #expect(parts == (try Partitioner.iid(rowCount: 103, clients: 4, seed: 1)))
  }

  @Test func dirichletIsReproducibleNonEmptyAndSkewed() throws {
    let parts = try Partitioner.dirichlet(labels: Self.labels, clients: 5, alpha: 0.3, seed: 11)
    expectPartition(parts, of: Self.labels.count)
    #expect(parts == (try Partitioner.dirichlet(labels: Self.labels, clients: 5, alpha: 0.3, seed: 11)))
    #expect(parts != (try Partitioner.dirichlet(labels: Self.labels, clients: 5, alpha: 0.3, seed: 12)))
    // With α = 0.3 some client's label mix must be far from uniform (each class is 1/6 overall).
    let largestShare = parts.map { rows -> Double in
      var counts = [Int](repeating: 0, count: 6)
      for row in rows { counts[Int(Self.labels[row])] += 1 }
      return Double(counts.max()!) / Double(rows.count)
    }.max()!
    #expect(largestShare > 0.4)
  }

  /// Small α concentrates each class on few clients, large α spreads every class everywhere:
  /// measured as classes per client, averaged over 20 seeds (one seed can be unlucky).
  @Test func alphaControlsTheLabelSkew() throws {
    func meanClassesPerClient(alpha: Double) throws -> Double {
      let counts = try (0..<20).flatMap { seed in
        try Partitioner.dirichlet(labels: Self.labels, clients: 6, alpha: alpha, seed: UInt64(seed))
          .map { Set($0.map { Self.labels[$0] }).count }
      }
      return Double(counts.reduce(0, +)) / Double(counts.count)
    }
    #expect(try meanClassesPerClient(alpha: 0.01) < 2)
    #expect(try meanClassesPerClient(alpha: 100) > 5.5)
  }

  @Test func dirichletThatCannotFillEveryClientIsAnError() {
    let labels: [Int32] = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    #expect(DataTestSupport.errorMessage { _ = try Partitioner.dirichlet(labels: labels, clients: 10, alpha: 0.001, seed: 0) }
      == "Dirichlet(α = 0.001) left a client empty in 100 draws for 10 clients and 10 rows; raise alpha or use fewer clients")
    #expect(DataTestSupport.errorMessage { _ = try Partitioner.iid(rowCount: 3, clients: 4, seed: 0) }
      == "4 clients but only 3 rows")
  }

  @Test func byValueGroupsRowsInSortedValueOrder() {
    let groups = Partitioner.byValue(["M", "L", "H", "L"])
    #expect(groups.map(\.value) == ["H", "L", "M"])
    #expect(groups.map(\.rows) == [[2], [1, 3], [0]])
  }

  /// Which classes each client holds.
  private func classSets(_ parts: [[Int]], _ labels: [Int32]) -> [Set<Int32>] {
    parts.map { Set($0.map { labels[$0] }) }
  }

  static let everyLabelMethod: [PartitionMethod] = [
    .iid, .dirichlet(alpha: 0.5), .pathological(classesPerClient: 2, assignment: .firstDeterministic),
    .pathological(classesPerClient: 3, assignment: .random), .pathological(classesPerClient: 2, assignment: .deterministic),
    .shard(shardsPerClient: 2), .quantity(alpha: 1), .sizes(.linear), .sizes(.square), .sizes(.exponential),
  ]

  @Test(arguments: everyLabelMethod)
  func everyMethodIsDisjointCoveringAndReproducible(method: PartitionMethod) throws {
    let parts = try Partitioner.partition(method, labels: Self.labels, clients: 6, seed: 3)
    #expect(parts.count == 6)
    expectPartition(parts, of: Self.labels.count)
    #expect(parts.allSatisfy { $0 == $0.sorted() })
    #expect(parts == (try Partitioner.partition(method, labels: Self.labels, clients: 6, seed: 3)))
    // Every method shuffles rows, even those whose sizes or classes do not depend on the seed.
    #expect(parts != (try Partitioner.partition(method, labels: Self.labels, clients: 6, seed: 4)))
  }

  @Test func pathologicalGivesEveryClientExactlyKClasses() throws {
    let firstDeterministic = try Partitioner.pathological(labels: Self.labels, clients: 8, classesPerClient: 2,
                                                          assignment: .firstDeterministic, seed: 5)
    let sets = classSets(firstDeterministic, Self.labels)
    #expect(sets.allSatisfy { $0.count == 2 })
    #expect(sets.enumerated().allSatisfy { $0.element.contains(Int32($0.offset % 6)) })  // NIID-Bench's first class
    let deterministic = try Partitioner.pathological(labels: Self.labels, clients: 6, classesPerClient: 3,
                                                     assignment: .deterministic, seed: 0)
    let expected: [Set<Int32>] = (0..<6).map { client in Set((0..<3).map { Int32((client + $0) % 6) }) }
    #expect(classSets(deterministic, Self.labels) == expected)
    // Class 0 is held by clients 0, 5 and 4 (p, p+1, p+2 mod 6): its 100 rows split 34/33/33.
    let classZeroRows = [0, 4, 5].map { client in deterministic[client].filter { Self.labels[$0] == 0 }.count }
    #expect(classZeroRows.sorted() == [33, 33, 34])
    let random = try Partitioner.pathological(labels: Self.labels, clients: 12, classesPerClient: 1,
                                              assignment: .random, seed: 9)
    #expect(classSets(random, Self.labels).allSatisfy { $0.count == 1 })
  }

  @Test func pathologicalThatCannotHoldEveryClassIsAnError() {
    #expect(DataTestSupport.errorMessage {
      _ = try Partitioner.pathological(labels: Self.labels, clients: 4, classesPerClient: 7, assignment: .random, seed: 0)
    } == "num_classes_per_partition must be between 1 and the 6 classes, not 7")
    #expect(DataTestSupport.errorMessage {
      _ = try Partitioner.pathological(labels: Self.labels, clients: 2, classesPerClient: 2, assignment: .random, seed: 0)
    } == "2 clients × 2 classes each cannot hold all 6 classes; use more clients or a larger num_classes_per_partition")
    // Deterministic {0,1}, {1,2}, {2,3}: classes 4 and 5 are never held.
    #expect(DataTestSupport.errorMessage {
      _ = try Partitioner.pathological(labels: Self.labels, clients: 3, classesPerClient: 2, assignment: .deterministic, seed: 0)
    } == "pathological (2 classes per client, deterministic) left a class without a client or a client without rows "
      + "in 1 draw for 3 clients; change num_classes_per_partition, class_assignment_mode or the number of clients")
  }

  @Test func shardsOfOneClassEachGiveEveryClientItsShardCountOfClasses() throws {
    // 600 rows, 100 per class, 3 clients × 2 shards: each shard is exactly one class.
    let parts = try Partitioner.shard(labels: Self.labels, clients: 3, shardsPerClient: 2, seed: 2)
    #expect(classSets(parts, Self.labels).allSatisfy { $0.count == 2 })
    #expect(parts.map(\.count) == [200, 200, 200])
    #expect(Set(classSets(parts, Self.labels).flatMap { $0 }).count == 6)
    // 103 rows into 4 × 3 shards: shard sizes 8 or 9, so client sizes differ by at most 3.
    let uneven = try Partitioner.shard(labels: Array(Self.labels.prefix(103)), clients: 4, shardsPerClient: 3, seed: 2)
    expectPartition(uneven, of: 103)
    #expect(uneven.map(\.count).max()! - uneven.map(\.count).min()! <= 3)
    #expect(DataTestSupport.errorMessage { _ = try Partitioner.shard(labels: Self.labels, clients: 300, shardsPerClient: 3, seed: 0) }
      == "300 clients × 3 shards need at least 900 rows, found 600")
  }

  /// Small α makes client sizes unequal while labels stay mixed; large α approaches equal sizes.
  @Test func quantitySkewVariesSizesNotLabels() throws {
    let skewed = try Partitioner.quantity(rowCount: 600, clients: 5, alpha: 0.3, seed: 1)
    let sizes = skewed.map(\.count)
    #expect(Double(sizes.max()!) / Double(sizes.min()!) > 3)
    let even = try Partitioner.quantity(rowCount: 600, clients: 5, alpha: 1000, seed: 1).map(\.count)
    #expect(even.max()! - even.min()! < 30)
    // The largest client's label mix stays near the overall 1/6 per class.
    let largest = skewed[sizes.firstIndex(of: sizes.max()!)!]
    let counts = (0..<6).map { label in largest.filter { Self.labels[$0] == Int32(label) }.count }
    #expect(counts.allSatisfy { abs(Double($0) / Double(largest.count) - 1.0 / 6) < 0.08 })
    #expect(DataTestSupport.errorMessage { _ = try Partitioner.quantity(rowCount: 20, clients: 10, alpha: 0.01, seed: 0) }
      == "quantity skew (α = 0.01) left a client empty in 100 draws for 10 clients and 20 rows; raise alpha or use fewer clients")
  }

  /// Seeds whose first draw has a client below the minimum (16 and 13 rows), so the minimum redraws.
  @Test func minPartitionSizeRedrawsSmallClients() throws {
    let loose = try Partitioner.dirichlet(labels: Self.labels, clients: 10, alpha: 0.5, seed: 0)
    let strict = try Partitioner.dirichlet(labels: Self.labels, clients: 10, alpha: 0.5, minPartitionSize: 25, seed: 0)
    #expect(loose.map(\.count).min()! < 25)
    expectPartition(strict, of: Self.labels.count)
    #expect(strict.allSatisfy { $0.count >= 25 })
    let looseSizes = try Partitioner.quantity(rowCount: 600, clients: 5, alpha: 1, seed: 1).map(\.count)
    let sizes = try Partitioner.quantity(rowCount: 600, clients: 5, alpha: 1, minPartitionSize: 30, seed: 1).map(\.count)
    #expect(looseSizes.min()! < 30)
    #expect(sizes.min()! >= 30 && sizes.reduce(0, +) == 600)
    #expect(DataTestSupport.errorMessage {
      _ = try Partitioner.quantity(rowCount: 600, clients: 10, alpha: 1, minPartitionSize: 61, seed: 0)
    } == "10 clients × min_partition_size 61 need 610 rows, found 600")
    #expect(DataTestSupport.errorMessage {
      _ = try Partitioner.dirichlet(labels: Self.labels, clients: 10, alpha: 0.05, minPartitionSize: 55, seed: 0)
    } == "Dirichlet(α = 0.05) left a client below min_partition_size 55 in 100 draws for 10 clients and 600 rows; "
      + "raise alpha or use fewer clients")
  }

  @Test func sizeRulesFollowFlowersIdToSizeFunctions() throws {
    #expect(try Partitioner.sizes(rowCount: 100, clients: 4, rule: .linear, seed: 0).map(\.count) == [10, 20, 30, 40])
    #expect(try Partitioner.sizes(rowCount: 300, clients: 4, rule: .square, seed: 0).map(\.count) == [10, 40, 90, 160])
    // e^i / Σ e^j for i = 1…3: 9.0 %, 24.5 %, 66.5 % of 200 rows.
    #expect(try Partitioner.sizes(rowCount: 200, clients: 3, rule: .exponential, seed: 0).map(\.count) == [18, 49, 133])
    #expect(DataTestSupport.errorMessage { _ = try Partitioner.sizes(rowCount: 100, clients: 8, rule: .exponential, seed: 0) }
      == "exponential sizes give client 1 of 8 no rows out of 100; use fewer clients")
  }

  @Test func columnIsNotALabelMethod() {
    #expect(DataTestSupport.errorMessage { _ = try Partitioner.partition(.column("Type"), labels: Self.labels, clients: 3, seed: 0) }
      == #"method "column" partitions by a column's values, not by labels"#)
  }
}

@Suite("Data: partition methods in specs")
struct DataPartitionSpecTests {
  private func method(_ fields: String) throws -> PartitionMethod {
    let spec = try FederationSpec.parse(Data(#"{"partition": {"dataset": "a.csv", "label": "y", \#(fields)}}"#.utf8),
                                        fileName: "spec.json")
    guard case .partitioned(let partition) = spec.devices else { throw PartitionError("not a partition") }
    return partition.method
  }

  private func error(_ fields: String) -> String? { DataTestSupport.errorMessage { _ = try method(fields) } }

  @Test(arguments: [
    (#""method": "iid", "clients": 3"#, PartitionMethod.iid),
    (#""method": "IidPartitioner", "clients": 3"#, .iid),
    (#""method": "DirichletPartitioner", "alpha": 0.1, "clients": 3"#, .dirichlet(alpha: 0.1)),
    (#""method": "pathological", "num_classes_per_partition": 2, "clients": 3"#,
     .pathological(classesPerClient: 2, assignment: .firstDeterministic)),
    (#""method": "PathologicalPartitioner", "num_classes_per_partition": 1, "class_assignment_mode": "random", "clients": 3"#,
     .pathological(classesPerClient: 1, assignment: .random)),
    (#""method": "ShardPartitioner", "clients": 3"#, .shard(shardsPerClient: 2)),
    (#""method": "shard", "num_shards_per_partition": 4, "clients": 3"#, .shard(shardsPerClient: 4)),
    (#""method": "quantity", "alpha": 0.5, "clients": 3"#, .quantity(alpha: 0.5)),
    (#""method": "iid-diff-quantity", "alpha": 2, "clients": 3"#, .quantity(alpha: 2)),
    (#""method": "quantity", "alpha": 2, "min_partition_size": 10, "clients": 3"#, .quantity(alpha: 2, minPartitionSize: 10)),
    (#""method": "dirichlet", "alpha": 2, "min_partition_size": 10, "clients": 3"#, .dirichlet(alpha: 2, minPartitionSize: 10)),
    (#""method": "LinearPartitioner", "clients": 3"#, .sizes(.linear)),
    (#""method": "square", "clients": 3"#, .sizes(.square)),
    (#""method": "ExponentialPartitioner", "clients": 3"#, .sizes(.exponential)),
    (#""method": "NaturalIdPartitioner", "column": "Type""#, .column("Type")),
    (#""method": "natural_id", "column": "Type""#, .column("Type")),
  ])
  func namesAndFlowerAliasesParse(fields: String, expected: PartitionMethod) throws {
    #expect(try method(fields) == expected)
  }

  @Test(arguments: [
    (#""method": "Dirichlet", "clients": 3"#,
     #"spec.json: partition.method: "Dirichlet" is not one of "iid", "dirichlet", "pathological", "shard", "quantity", "linear", "square", "exponential", "column" (or Flower's class name, e.g. "DirichletPartitioner")"#),
    (#""method": "pathological", "clients": 3"#,
     #"spec.json: partition.num_classes_per_partition: missing (method "pathological" needs it)"#),
    (#""method": "pathological", "num_classes_per_partition": 0, "clients": 3"#,
     "spec.json: partition.num_classes_per_partition: must be at least 1, not 0"),
    (#""method": "pathological", "num_classes_per_partition": 2, "class_assignment_mode": "fixed", "clients": 3"#,
     #"spec.json: partition.class_assignment_mode: "fixed" is not one of "first-deterministic", "deterministic", "random""#),
    (#""method": "quantity", "clients": 3"#, #"spec.json: partition.alpha: missing (method "quantity" needs it)"#),
    (#""method": "quantity", "alpha": 0, "clients": 3"#, "spec.json: partition.alpha: must be a positive number, not 0.0"),
    (#""method": "shard", "num_shards_per_partition": 1.5, "clients": 3"#,
     "spec.json: partition.num_shards_per_partition: expected an integer, found 1.5"),
    (#""method": "iid", "min_partition_size": 10, "clients": 3"#,
     #"spec.json: partition.min_partition_size: only used with method "dirichlet" or "quantity""#),
    (#""method": "iid", "num_shards_per_partition": 2, "clients": 3"#,
     #"spec.json: partition.num_shards_per_partition: only used with method "shard""#),
    (#""method": "DirichletPartitioner", "alpha": 1, "num_classes_per_partition": 2, "clients": 3"#,
     #"spec.json: partition.num_classes_per_partition: only used with method "pathological""#),
    (#""method": "ShardPartitioner""#, "spec.json: partition.clients: missing"),
  ])
  func badPartitionParametersNameTheKey(fields: String, expected: String) {
    #expect(error(fields) == expected)
  }

  /// An impossible partition of a real file fails at load with the spec's key path.
  @Test func impossiblePartitionOfARealFileIsOneLine() throws {
    let spec = try FederationSpec.parse(Data(#"""
      {"partition": {"dataset": "electrical_class.csv", "label_bits": ["G", "C", "B", "A"], "method": "pathological",
                     "num_classes_per_partition": 2, "clients": 2}}
      """#.utf8), fileName: "spec.json")
    #expect(DataTestSupport.errorMessage { _ = try spec.loadData(dataDirectory: DataTestSupport.dataDirectory) }
      == "spec.json: partition: 2 clients × 2 classes each cannot hold all 6 classes; use more clients or a larger "
        + "num_classes_per_partition")
  }
}
