import Foundation

/// One participant's raw (unscaled) data and what it brings to the federation.
public struct FederatedDevice: Sendable, Equatable {
  public var name: String
  public var dataset: LabelledDataset
  public var memory: MemoryBudget?
  /// Width of this device's sub-model relative to the global model, in (0, 1].
  public var modelRate: Double

  public init(name: String, dataset: LabelledDataset, memory: MemoryBudget? = nil, modelRate: Double = 1) {
    self.name = name
    self.dataset = dataset
    self.memory = memory
    self.modelRate = modelRate
  }
}

/// A federation's data before splitting: every device's dataset (all with the same input width and
/// classes), the optional pretraining dataset, and the protocol settings. Made from a spec file
/// (`FederationSpec.loadData(dataDirectory:)`) or by `EmbeddedFederation.make(seed:)`.
public struct FederationData: Sendable, Equatable {
  public var devices: [FederatedDevice]
  public var pretraining: LabelledDataset?
  public var splits: SplitFractions
  public var training: TrainingOverrides
  /// Row indices read from a split dump (`splits_from`), by device name; they replace the seeded splits.
  public var fixedSplits: [String: DeviceSplit]

  public init(devices: [FederatedDevice], pretraining: LabelledDataset? = nil,
              splits: SplitFractions = SplitFractions(), training: TrainingOverrides = TrainingOverrides(),
              fixedSplits: [String: DeviceSplit] = [:]) {
    precondition(!devices.isEmpty, "a federation needs at least one device")
    self.devices = devices
    self.fixedSplits = fixedSplits
    self.pretraining = pretraining
    self.splits = splits
    self.training = training
  }

  /// Every device split by the protocol and standardized with statistics of its own training
  /// rows only; the pretraining set split into train/validation and standardized on its train part.
  /// Device `i` uses its own seed stream, so adding a device leaves the others' splits unchanged.
  public func prepare(seed: UInt64) -> PreparedFederation {
    let devices = self.devices.indices.map { PreparedDevice(self.devices[$0], split: split(ofDevice: $0, seed: seed)) }
    let pretraining = self.pretraining.map {
      PreparedPretraining($0, validationFraction: splits.validation, seed: SeededGenerator.seed(seed, stream: 99))
    }
    return PreparedFederation(devices: devices, pretraining: pretraining, splits: splits, training: training, seed: seed)
  }

  /// Device `index`'s split for `seed`: its own seed stream, so adding a device leaves the
  /// others' splits unchanged; or the dumped split it was given.
  public func split(ofDevice index: Int, seed: UInt64) -> DeviceSplit {
    let device = devices[index]
    return fixedSplits[device.name]
      ?? DeviceSplit(labels: device.dataset.samples.labels, fractions: splits,
                     seed: SeededGenerator.seed(seed, stream: 100 + UInt64(index)))
  }

  /// Device `index` under the standard FL protocol: its train part minus the validation slice,
  /// the slice and the test part, standardized with statistics of the train part. Only these
  /// three are made, so a many-client protocol can prepare clients as it samples them.
  public func prepareForFL(device index: Int, seed: UInt64) -> FLDevice {
    let device = devices[index]
    let split = split(ofDevice: index, seed: seed)
    let raw = device.dataset.samples
    let standardizer = Standardizer(fittedOn: raw.subset(split.train))
    return FLDevice(name: device.name, featureNames: device.dataset.featureNames, split: split,
                    train: standardizer.apply(to: raw.subset(split.flTrain)),
                    validation: standardizer.apply(to: raw.subset(split.flValidation)),
                    test: standardizer.apply(to: raw.subset(split.test)))
  }

  /// `prepare(seed:)` with each device's train part divided among Phases 1/2/3 by `phaseFractions`
  /// (a run's settings decide these, not the spec's splits alone).
  public func prepare(seed: UInt64, phaseFractions: [Double]) -> PreparedFederation {
    var phased = self
    phased.splits.phase1 = phaseFractions[0]
    phased.splits.phase2 = phaseFractions[1]
    phased.splits.phase3 = phaseFractions[2]
    return phased.prepare(seed: seed)
  }
}

/// A phase's rows for meta-learning: support (inner adaptation) and query (outer update).
public struct SupportQuery: Sendable, Equatable {
  public var support: Samples
  public var query: Samples

  public init(support: Samples, query: Samples) {
    self.support = support
    self.query = query
  }

  /// Support then query rows, for methods that do not distinguish them.
  public var combined: Samples { .concatenating([support, query]) }
}

/// One device ready for the pipeline: standardized splits plus the description of its inputs.
public struct PreparedDevice: Sendable, Equatable {
  public var name: String
  public var featureNames: [String]
  public var classNames: [String]
  public var task: DatasetSpec.Task
  public var memory: MemoryBudget?
  public var modelRate: Double
  /// Fitted on `train` (all three phases), applied to everything below.
  public var standardizer: Standardizer
  /// The row indices behind each part, into the device's dataset.
  public var split: DeviceSplit
  /// The held-out test rows (20 % by default); never seen by training or threshold choice.
  public var test: Samples
  /// All training rows (Phases 1–3), e.g. for a Local Only baseline on the whole 80 %.
  public var train: Samples
  /// Serial meta-initialization (20 % of train by default).
  public var phase1: SupportQuery
  /// Parallel federated learning (50 % of train by default).
  public var phase2: SupportQuery
  /// On-device personalization (30 % of train, minus the validation slice).
  public var phase3Train: Samples
  /// Phase 3's slice for choosing the decision threshold.
  public var phase3Validation: Samples

  public init(_ device: FederatedDevice, fractions: SplitFractions, seed: UInt64) {
    self.init(device, split: DeviceSplit(labels: device.dataset.samples.labels, fractions: fractions, seed: seed))
  }

  public init(_ device: FederatedDevice, split: DeviceSplit) {
    let raw = device.dataset.samples
    let standardizer = Standardizer(fittedOn: raw.subset(split.train))
    let part = { (rows: [Int]) in standardizer.apply(to: raw.subset(rows)) }
    name = device.name
    featureNames = device.dataset.featureNames
    classNames = device.dataset.classNames
    task = device.dataset.task
    memory = device.memory
    modelRate = device.modelRate
    self.standardizer = standardizer
    self.split = split
    test = part(split.test)
    train = part(split.train)
    phase1 = SupportQuery(support: part(split.phase1Support), query: part(split.phase1Query))
    phase2 = SupportQuery(support: part(split.phase2Support), query: part(split.phase2Query))
    phase3Train = part(split.phase3Train)
    phase3Validation = part(split.phase3Validation)
  }
}

/// One device under the standard FL protocol, standardized on its train part.
public struct FLDevice: Sendable {
  public var name: String
  public var featureNames: [String]
  public var split: DeviceSplit
  public var train: Samples
  public var validation: Samples
  public var test: Samples
}

/// The pretraining (Phase 0) dataset, split stratified into train and validation and
/// standardized on its train part.
public struct PreparedPretraining: Sendable, Equatable {
  public var name: String
  public var featureNames: [String]
  public var classNames: [String]
  public var standardizer: Standardizer
  public var train: Samples
  public var validation: Samples

  public init(_ dataset: LabelledDataset, validationFraction: Double, seed: UInt64) {
    let parts = Splitter.stratified(labels: dataset.samples.labels,
                                    fractions: [1 - validationFraction, validationFraction], seed: seed)
    let standardizer = Standardizer(fittedOn: dataset.samples.subset(parts[0]))
    name = dataset.name
    featureNames = dataset.featureNames
    classNames = dataset.classNames
    self.standardizer = standardizer
    train = standardizer.apply(to: dataset.samples.subset(parts[0]))
    validation = standardizer.apply(to: dataset.samples.subset(parts[1]))
  }
}

/// Everything the pipelines consume, split and standardized.
public struct PreparedFederation: Sendable, Equatable {
  public var devices: [PreparedDevice]
  public var pretraining: PreparedPretraining?
  public var splits: SplitFractions
  public var training: TrainingOverrides
  public var seed: UInt64

  /// The common input width.
  public var inputWidth: Int { devices[0].train.width }
  /// The common class names (two for a binary task).
  public var classNames: [String] { devices[0].classNames }
  public var task: DatasetSpec.Task { devices[0].task }
}

extension FederationSpec {
  /// Reads every CSV the spec names from `dataDirectory` (each file once), builds the devices
  /// (partitioning if asked, seeded by `training.seed`, default 0) and checks that all devices
  /// and the pretraining set share an input width and class list.
  public func loadData(dataDirectory: URL) throws -> FederationData {
    var tables = [String: CSVTable]()
    func read(_ source: DataSource) throws -> LabelledDataset {
      if tables[source.file] == nil {
        tables[source.file] = try CSVTable(contentsOf: dataDirectory.appendingPathComponent(source.file))
      }
      return try source.dataset.makeDataset(from: tables[source.file]!)
    }

    var devices = [FederatedDevice]()
    var paths = [String]()
    switch self.devices {
    case .explicit(let list):
      for (index, device) in list.enumerated() {
        devices.append(FederatedDevice(name: device.profile.name ?? device.source.file, dataset: try read(device.source),
                                       memory: device.profile.memory, modelRate: device.profile.modelRate))
        paths.append("devices[\(index)]")
      }
    case .partitioned(let partition):
      devices = try partitionDevices(partition, dataset: try read(partition.source), table: tables[partition.source.file]!)
      paths = devices.map { _ in "partition" }
    }

    let pretraining = try self.pretraining.map(read)
    let reference = devices[0]
    let checked = zip(devices, paths).map { ($0.dataset, $1) } + (pretraining.map { [($0, "pretraining")] } ?? [])
    for (dataset, path) in checked {
      if dataset.samples.width != reference.dataset.samples.width {
        throw SpecError(file: fileName, path: path,
                        "\(dataset.samples.width) inputs but \(reference.name) has \(reference.dataset.samples.width); set pad_to")
      }
      if dataset.classNames != reference.dataset.classNames {
        throw SpecError(file: fileName, path: path,
                        "classes \(dataset.classNames) differ from \(reference.name)'s \(reference.dataset.classNames)")
      }
    }
    try checkClasses(devices, paths: paths)
    var data = FederationData(devices: devices, pretraining: pretraining, splits: splits, training: training)
    if let splitsFrom {
      let directory = splitsFrom.hasPrefix("/") ? URL(fileURLWithPath: splitsFrom)
        : dataDirectory.appendingPathComponent(splitsFrom)
      data.fixedSplits = try SplitDump.readSplits(from: directory, for: data, spec: fileName)
    }
    return data
  }

  /// A device whose rows are all one class scores 100 % by answering that class, so a binary task
  /// needs both classes on every device, and any task needs two classes in the federation.
  /// Dirichlet partitions are exempt per device: one-class clients are the label skew they model.
  private func checkClasses(_ devices: [FederatedDevice], paths: [String]) throws {
    let classNames = devices[0].dataset.classNames
    guard classNames.count >= 2 else {
      throw SpecError(file: fileName, path: paths[0],
                      "every row of every device is class \"\(classNames.first ?? "")\"; the task needs at least two classes")
    }
    if case .partitioned(let partition) = self.devices, case .dirichlet = partition.method { return }
    for (device, path) in zip(devices, paths) where device.dataset.task == .binary {
      let counts = device.dataset.classCounts
      guard let missing = counts.firstIndex(of: 0) else { continue }
      let present = counts.indices.first { counts[$0] > 0 }.map { classNames[$0] } ?? ""
      let source = device.dataset.name == device.name ? "" : " (\(device.dataset.name))"
      throw SpecError(file: fileName, path: path,
                      "device \"\(device.name)\"\(source) has only class \"\(present)\" in its \(device.dataset.samples.count) rows, "
                        + "no class \"\(classNames[missing])\"; a binary task needs rows of both classes")
    }
  }

  private func partitionDevices(_ partition: Partition, dataset: LabelledDataset,
                                table: CSVTable) throws -> [FederatedDevice] {
    let seed = training.seed ?? 0
    let stem = (partition.source.file as NSString).deletingPathExtension
    var parts: [(name: String, rows: [Int])]
    do {
      if case .column(let column) = partition.method {
        parts = Partitioner.byValue(try table.textColumn(column)).map { ("\(column)=\($0.value)", $0.rows) }
        if let clients = partition.clients, clients != parts.count {
          throw PartitionError("column \"\(column)\" has \(parts.count) distinct values, not \(clients) clients")
        }
      } else {
        parts = try Partitioner.partition(partition.method, labels: dataset.samples.labels,
                                          clients: partition.clients!, seed: seed)
          .enumerated().map { ("\(stem)-\($0 + 1)", $1) }
      }
    } catch let error as PartitionError {
      throw SpecError(file: fileName, path: "partition", error.message)
    }
    if !partition.profiles.isEmpty && partition.profiles.count != parts.count {
      throw SpecError(file: fileName, path: "partition.profiles",
                      "has \(partition.profiles.count) entries for \(parts.count) clients")
    }
    return parts.enumerated().map { index, part in
      let profile = partition.profiles.isEmpty ? Profile() : partition.profiles[index]
      let name = profile.name ?? part.name
      return FederatedDevice(name: name, dataset: dataset.subset(part.rows, name: name),
                             memory: profile.memory, modelRate: profile.modelRate)
    }
  }
}
