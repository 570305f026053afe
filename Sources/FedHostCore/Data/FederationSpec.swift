import Foundation

/// Upper bounds on sizes read from input files. Each keeps an absurd value (a typo, a fuzzed
/// file) from becoming an allocation that traps; the limits are far above any TinyML federation.
public enum InputLimits {
  /// Input features per row after one-hot encoding and padding (`pad_to`).
  public static let inputWidth = 4096
  /// Clients of a partitioned dataset (FedHost's scale benchmark runs 10,000).
  public static let clients = 100_000
  /// A device's `flash_bytes` / `ram_bytes`: 1 TiB.
  public static let memoryBytes = 1 << 40
  /// Feature values of one dataset (rows × input width): 2^28 floats, 1 GiB.
  public static let featureValues = 1 << 28
  /// Size of one CSV file: 1 GiB.
  public static let csvBytes = 1 << 30
}

/// A device's storage and memory limits, for choosing a model size that fits.
public struct MemoryBudget: Sendable, Hashable {
  public var flashBytes: Int
  public var ramBytes: Int

  public init(flashBytes: Int, ramBytes: Int) {
    self.flashBytes = flashBytes
    self.ramBytes = ramBytes
  }
}

/// What a spec's `training` object and `plugin_config` say. The training entries stay raw here:
/// the run settings' option table (Pipelines/RunSettings.swift), the one home of every
/// hyperparameter, reads and checks them, and names the key path of a bad one.
public struct TrainingOverrides: Sendable, Equatable {
  /// Every `training` entry but `seed`, in key order.
  var entries: [SpecNode] = []
  /// Phase 1/2/3 shares of the train part, when the spec's `splits` states them.
  public var phases: [Double]?
  /// Seeds splits, partitions, the embedded generator and (by the caller's choice) training.
  public var seed: UInt64?
  /// Plugin config entries (JSON text by key) from `plugin_config`, delivered to the plugins
  /// that declare the key.
  public var pluginConfig: [String: String] = [:]

  public init() {}
}

/// A federation described in a JSON file: the devices and their data, or one dataset partitioned
/// among clients; an optional pretraining dataset; the split fractions; training overrides.
/// The format is documented in `docs/federation-spec.md`. Parsing is strict: unknown keys, wrong
/// types and out-of-range values are `SpecError`s naming the key path.
public struct FederationSpec: Sendable, Equatable {
  /// A CSV file (relative to the data directory) and how to read it.
  public struct DataSource: Sendable, Equatable {
    public var file: String
    public var dataset: DatasetSpec

    public init(file: String, dataset: DatasetSpec) {
      self.file = file
      self.dataset = dataset
    }
  }

  /// What a device brings besides its data: a name, a memory budget, a model width rate.
  public struct Profile: Sendable, Equatable {
    public var name: String?
    public var memory: MemoryBudget?
    /// Width of this device's sub-model relative to the global model, in (0, 1] (HeteroFL).
    public var modelRate: Double

    public init(name: String? = nil, memory: MemoryBudget? = nil, modelRate: Double = 1) {
      self.name = name
      self.memory = memory
      self.modelRate = modelRate
    }
  }

  public struct Device: Sendable, Equatable {
    public var source: DataSource
    public var profile: Profile

    public init(source: DataSource, profile: Profile) {
      self.source = source
      self.profile = profile
    }
  }

  /// One dataset shared out among clients. `profiles`, if given, has one entry per client.
  public struct Partition: Sendable, Equatable {
    public var source: DataSource
    public var method: PartitionMethod
    /// Required for every method but `column`, where it must equal the number of distinct values.
    public var clients: Int?
    public var profiles: [Profile]

    public init(source: DataSource, method: PartitionMethod, clients: Int?, profiles: [Profile] = []) {
      self.source = source
      self.method = method
      self.clients = clients
      self.profiles = profiles
    }
  }

  public enum Devices: Sendable, Equatable {
    case explicit([Device])
    case partitioned(Partition)
  }

  /// The spec file's name, used in error messages.
  public var fileName: String
  public var devices: Devices
  public var pretraining: DataSource?
  public var splits: SplitFractions
  public var training: TrainingOverrides
  /// A split dump (`host splits --out DIR`, relative to the data directory) whose row indices
  /// replace the seeded splits, device by device.
  public var splitsFrom: String?

  public init(fileName: String, devices: Devices, pretraining: DataSource? = nil,
              splits: SplitFractions = SplitFractions(), training: TrainingOverrides = TrainingOverrides(),
              splitsFrom: String? = nil) {
    self.fileName = fileName
    self.splitsFrom = splitsFrom
    self.devices = devices
    self.pretraining = pretraining
    self.splits = splits
    self.training = training
  }

  /// Reads and validates the spec at `url`.
  public static func load(contentsOf url: URL) throws -> FederationSpec {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      let exists = FileManager.default.fileExists(atPath: url.path)
      throw SpecError(file: url.lastPathComponent, path: "",
                      exists ? "cannot read file" : "no such file in \(url.deletingLastPathComponent().path)")
    }
    return try parse(data, fileName: url.lastPathComponent)
  }

  /// Parses and validates spec JSON held in memory.
  public static func parse(_ data: Data, fileName: String) throws -> FederationSpec {
    let root = try SpecNode.parse(data, file: fileName)
      .object(allowed: ["devices", "partition", "pretraining", "splits", "training", "plugin_config", "splits_from"])
    let devices: Devices
    switch (root.optional("devices"), root.optional("partition")) {
    case (let list?, nil):
      let nodes = try list.array()
      guard !nodes.isEmpty else { throw list.error("needs at least one device") }
      let parsed = try nodes.map(parseDevice)
      var seen = Set<String>()
      for (node, device) in zip(nodes, parsed) where !seen.insert(device.profile.name!).inserted {
        throw node.child("name", .null).error("\"\(device.profile.name!)\" is used by another device")
      }
      devices = .explicit(parsed)
    case (nil, let partition?):
      devices = .partitioned(try parsePartition(partition))
    case (_?, _?):
      throw root.node.child("partition", .null).error("give either \"devices\" or \"partition\", not both")
    case (nil, nil):
      throw root.node.child("devices", .null).error("missing (or give \"partition\")")
    }
    let pretraining = try root.optional("pretraining").map {
      try parseSource($0.object(allowed: sourceKeys), $0)
    }
    let (splits, phases) = try root.optional("splits").map(parseSplits) ?? (SplitFractions(), nil)
    var training = try root.optional("training").map(parseTraining) ?? TrainingOverrides()
    training.phases = phases
    if let config = root.optional("plugin_config") {
      for (key, value) in try config.object(allowed: nil).fields.sorted(by: { $0.key < $1.key }) {
        training.pluginConfig[key] = try config.child(key, value).jsonText()
      }
    }
    return FederationSpec(fileName: fileName, devices: devices, pretraining: pretraining, splits: splits,
                          training: training, splitsFrom: try root.optional("splits_from")?.string())
  }

  private static let sourceKeys = ["dataset", "label", "label_bits", "task", "features", "drop", "categorical", "pad_to",
                                   "classes"]
  private static let profileKeys = ["name", "memory", "model_rate"]

  private static func parseSource(_ object: SpecObject, _ node: SpecNode) throws -> DataSource {
    let label: DatasetSpec.Label
    switch (object.optional("label"), object.optional("label_bits")) {
    case (let column?, nil): label = .column(try column.string())
    case (nil, let bits?):
      let names = try bits.stringArray()
      guard !names.isEmpty else { throw bits.error("needs at least one column") }
      label = .bits(names)
    case (_?, _?): throw node.child("label_bits", .null).error("give either \"label\" or \"label_bits\", not both")
    case (nil, nil): throw node.child("label", .null).error("missing")
    }
    let task = try object.optional("task").map {
      DatasetSpec.Task(rawValue: try $0.choice(["binary", "multiclass"]))!
    }
    let padTo = try object.integer("pad_to", in: 1...InputLimits.inputWidth)
    var classes: [String]?
    if let node = object.optional("classes") {
      let names = try node.stringArray()
      guard names.count >= 2 else { throw node.error("needs at least two classes") }
      guard Set(names).count == names.count else { throw node.error("names a class twice") }
      classes = names
    }
    let source = DataSource(
      file: try object.required("dataset").string(),
      dataset: DatasetSpec(label: label, task: task, features: try object.optional("features")?.stringArray(),
                           drop: try object.optional("drop")?.stringArray() ?? [],
                           categorical: try object.optional("categorical")?.stringArray() ?? [],
                           padTo: padTo, classes: classes))
    if classes != nil, source.dataset.task == .binary {
      throw node.child("classes", .null).error("only for multi-class tasks (a binary task's classes are 0 and 1)")
    }
    return source
  }

  private static func parseProfile(_ object: SpecObject) throws -> Profile {
    let memory = try object.optional("memory").map { node -> MemoryBudget in
      let budget = try node.object(allowed: ["flash_bytes", "ram_bytes"])
      guard let flash = try budget.integer("flash_bytes", in: 1...InputLimits.memoryBytes) else {
        throw node.child("flash_bytes", .null).error("missing")
      }
      guard let ram = try budget.integer("ram_bytes", in: 1...InputLimits.memoryBytes) else {
        throw node.child("ram_bytes", .null).error("missing")
      }
      return MemoryBudget(flashBytes: flash, ramBytes: ram)
    }
    return Profile(name: try object.optional("name")?.string(), memory: memory,
                   modelRate: try object.number("model_rate", "in (0, 1]") { $0 > 0 && $0 <= 1 } ?? 1)
  }

  private static func parseDevice(_ node: SpecNode) throws -> Device {
    let object = try node.object(allowed: profileKeys + sourceKeys)
    _ = try object.required("name")
    return Device(source: try parseSource(object, node), profile: try parseProfile(object))
  }

  /// Partition methods as specs name them (Flower Datasets' partitioners in lower case).
  static let partitionMethods = ["iid", "dirichlet", "pathological", "shard", "quantity", "linear", "square",
                                 "exponential", "column"]
  /// Other accepted names: Flower's class names and NIID-Bench's name for quantity skew.
  static let partitionMethodAliases = [
    "IidPartitioner": "iid", "DirichletPartitioner": "dirichlet", "PathologicalPartitioner": "pathological",
    "ShardPartitioner": "shard", "iid-diff-quantity": "quantity", "LinearPartitioner": "linear",
    "SquarePartitioner": "square", "ExponentialPartitioner": "exponential", "NaturalIdPartitioner": "column",
    "natural_id": "column",
  ]
  /// Method parameters (named as Flower's) and the methods that take them.
  private static let partitionParameters: KeyValuePairs<String, [String]> = [
    "alpha": ["dirichlet", "quantity"], "min_partition_size": ["dirichlet", "quantity"], "column": ["column"],
    "num_classes_per_partition": ["pathological"], "class_assignment_mode": ["pathological"],
    "num_shards_per_partition": ["shard"],
  ]

  private static func parsePartition(_ node: SpecNode) throws -> Partition {
    let object = try node.object(allowed: sourceKeys + ["method", "clients", "profiles"] + partitionParameters.map(\.key))
    let methodName = try parsePartitionMethodName(try object.required("method"))
    for (key, owners) in partitionParameters where object.has(key) && !owners.contains(methodName) {
      throw node.child(key, .null).error("only used with method " + owners.map { "\"\($0)\"" }.joined(separator: " or "))
    }
    let method = try parsePartitionMethod(methodName, object, node)
    let clients = try object.integer("clients", in: 1...InputLimits.clients)
    if clients == nil && methodName != "column" { throw node.child("clients", .null).error("missing") }
    let profileNodes = try object.optional("profiles")?.array() ?? []
    let profiles = try profileNodes.map { try parseProfile($0.object(allowed: profileKeys)) }
    if let clients, !profiles.isEmpty, profiles.count != clients {
      throw node.child("profiles", .null).error("has \(profiles.count) entries for \(clients) clients")
    }
    var seen = Set<String>()
    for (index, profile) in profiles.enumerated() {
      if let name = profile.name, !seen.insert(name).inserted {
        throw profileNodes[index].child("name", .null).error("\"\(name)\" is used by another client")
      }
    }
    return Partition(source: try parseSource(object, node), method: method, clients: clients, profiles: profiles)
  }

  /// The canonical name of a partition method or of one of its aliases.
  private static func parsePartitionMethodName(_ node: SpecNode) throws -> String {
    let given = try node.string()
    if partitionMethods.contains(given) { return given }
    if let name = partitionMethodAliases[given] { return name }
    throw node.error("\"\(given)\" is not one of " + partitionMethods.map { "\"\($0)\"" }.joined(separator: ", ")
                     + " (or Flower's class name, e.g. \"DirichletPartitioner\")")
  }

  private static func parsePartitionMethod(_ name: String, _ object: SpecObject,
                                           _ node: SpecNode) throws -> PartitionMethod {
    let required = { (key: String) in node.child(key, .null).error("missing (method \"\(name)\" needs it)") }
    let alpha = {
      guard let alpha = try object.number("alpha", "a positive number", { $0 > 0 && $0.isFinite }) else {
        throw required("alpha")
      }
      return alpha
    }
    let minimum = { try object.integer("min_partition_size", atLeast: 1) ?? 1 }
    switch name {
    case "iid": return .iid
    case "dirichlet": return .dirichlet(alpha: try alpha(), minPartitionSize: try minimum())
    case "quantity": return .quantity(alpha: try alpha(), minPartitionSize: try minimum())
    case "pathological":
      guard let classes = try object.integer("num_classes_per_partition", atLeast: 1) else {
        throw required("num_classes_per_partition")
      }
      let modes = PartitionMethod.ClassAssignment.allCases
      let mode = try object.optional("class_assignment_mode").map {
        PartitionMethod.ClassAssignment(rawValue: try $0.choice(modes.map(\.rawValue)))!
      }
      return .pathological(classesPerClient: classes, assignment: mode ?? .firstDeterministic)
    case "shard": return .shard(shardsPerClient: try object.integer("num_shards_per_partition", atLeast: 1) ?? 2)
    case "column": return .column(try object.required("column").string())
    default: return .sizes(PartitionMethod.SizeRule(rawValue: name)!)
    }
  }

  /// The split fractions, and the phase shares when the spec states them (they override the
  /// run's preset, like the `training` object).
  private static func parseSplits(_ node: SpecNode) throws -> (SplitFractions, phases: [Double]?) {
    let object = try node.object(allowed: ["test", "phase1", "phase2", "phase3", "support", "validation", "mode"])
    var splits = SplitFractions()
    let fraction = { (key: String) in try object.number(key, "between 0 and 1") { $0 >= 0 && $0 <= 1 } }
    splits.test = try fraction("test") ?? splits.test
    splits.phase1 = try fraction("phase1") ?? splits.phase1
    splits.phase2 = try fraction("phase2") ?? splits.phase2
    splits.phase3 = try fraction("phase3") ?? splits.phase3
    splits.support = try fraction("support") ?? splits.support
    splits.validation = try fraction("validation") ?? splits.validation
    if let modeNode = object.optional("mode") {
      let text = try modeNode.string()
      guard let mode = SplitMode(text) else {
        throw modeNode.error("\"\(text)\" is not \"stratified\" or \"blocks:N\" with N ≥ 2")
      }
      splits.mode = mode
    }
    if let problem = splits.problem { throw node.error(problem) }
    let stated = ["phase1", "phase2", "phase3"].contains { object.optional($0) != nil }
    return (splits, stated ? [splits.phase1, splits.phase2, splits.phase3] : nil)
  }

  /// `seed` is the data's (partitions, splits); `mu` and `similarity_floor` are plugin config
  /// (kept as aliases of `plugin_config`); every other entry goes to the run settings.
  private static func parseTraining(_ node: SpecNode) throws -> TrainingOverrides {
    let object = try node.object(allowed: nil)
    var training = TrainingOverrides()
    for key in object.fields.keys.sorted() {
      let child = object.optional(key)!
      switch key {
      case "seed": training.seed = try object.integer("seed", atLeast: 0).map(UInt64.init)
      case "mu", "similarity_floor": training.pluginConfig[key] = try child.jsonText()
      default: training.entries.append(child)
      }
    }
    return training
  }

}
