import FedHostCore
import Foundation
import Testing

@Suite("Data: federation spec")
struct DataFederationSpecTests {
  private func parse(_ json: String) throws -> FederationSpec {
    try FederationSpec.parse(Data(json.utf8), fileName: "spec.json")
  }

  private func error(_ json: String) -> String? {
    DataTestSupport.errorMessage { _ = try parse(json) }
  }

  private static let device = #"{"name": "m", "dataset": "machine_failure.csv", "label": "fail"}"#

  @Test func paperExampleLoadsAndPrepares() throws {
    let spec = try FederationSpec.load(contentsOf: DataTestSupport.examplesDirectory.appendingPathComponent("paper-federation.json"))
    let data = try spec.loadData(dataDirectory: DataTestSupport.dataDirectory)
    #expect(data.devices.map(\.name) == ["electrical", "machine"])
    #expect(data.devices.map(\.dataset.samples.width) == [9, 9])
    #expect(data.pretraining?.samples.count == 10_000)
    let prepared = data.prepare(seed: spec.training.seed ?? 0)
    #expect(prepared.inputWidth == 9)
    let electrical = prepared.devices[0], machine = prepared.devices[1]
    #expect(electrical.test.count == 2_400)  // 1,301 + 1,099
    #expect(machine.test.count == 189)  // 110 + 79
    #expect(machine.train.count == 755)
    #expect(electrical.featureNames == ["Ia", "Ib", "Ic", "Va", "Vb", "Vc", "pad1", "pad2", "pad3"])
    #expect(electrical.test.features.enumerated().allSatisfy { $0.offset % 9 < 6 || $0.element == 0 })
    #expect(prepared.pretraining.map { $0.train.count + $0.validation.count } == 10_000)
  }

  @Test func heterogeneousExamplePartitionsTheSixClassFile() throws {
    let spec = try FederationSpec.load(
      contentsOf: DataTestSupport.examplesDirectory.appendingPathComponent("electrical-class-hetero.json"))
    let data = try spec.loadData(dataDirectory: DataTestSupport.dataDirectory)
    #expect(data.devices.map(\.name) == ["gateway", "relay-a", "relay-b", "sensor"])
    #expect(data.devices.map(\.modelRate) == [1, 0.5, 0.25, 0.25])
    #expect(data.devices[0].memory == MemoryBudget(flashBytes: 1_048_576, ramBytes: 262_144))
    #expect(data.devices.map(\.dataset.samples.count).reduce(0, +) == 7_861)
    #expect(data.devices.allSatisfy { $0.dataset.classNames == ["0000", "0110", "0111", "1001", "1011", "1111"] })
    #expect(try spec.loadData(dataDirectory: DataTestSupport.dataDirectory) == data)
  }

  @Test func phasesLeftOutLeaveThePresetInCharge() throws {
    let spec = try parse("""
      {"devices": [{"name": "a", "dataset": "machine_failure.csv", "label": "fail"}], "splits": {"test": 0.25}}
      """)
    #expect(spec.training.phases == nil)
  }

  @Test func everyKeyIsRead() throws {
    let spec = try parse("""
      {"partition": {"dataset": "ai4i2020.csv", "label": "Machine failure", "drop": ["UDI", "Product ID"],
                     "categorical": ["Type"], "method": "column", "column": "Type", "pad_to": 16},
       "splits": {"test": 0.25, "phase1": 0.1, "phase2": 0.6, "phase3": 0.3, "support": 0.4, "validation": 0.1,
                  "mode": "blocks:8"},
       "training": {"optimizer": "sgd", "learning_rate": 0.01, "batch_size": 32, "local_epochs": 2,
                    "serial_rounds": 1, "serial_epochs": 3, "parallel_rounds": 20, "personalization_epochs": 5,
                    "personalization_learning_rate": 0.001, "freeze_fraction": 0.5, "similarity_floor": 0.1,
                    "mu": 0.01, "pretrain_epochs": 4, "threshold": "fixed", "seed": 12}}
      """)
    #expect(spec.splits == SplitFractions(test: 0.25, phase1: 0.1, phase2: 0.6, phase3: 0.3, support: 0.4,
                                          validation: 0.1, mode: .blocks(8)))
    #expect(spec.training.seed == 12)
    #expect(spec.training.phases == [0.1, 0.6, 0.3])  // stated in "splits": they override the run's preset
    #expect(spec.training.pluginConfig == ["mu": "0.01", "similarity_floor": "0.1"])
    let settings = try RunSettings.resolve(preset: nil, protocol: nil, training: spec.training, flags: [:], threads: 1)
    #expect(settings.optimizer == .sgd && settings.learningRate == 0.01 && settings.batchSize == 32)
    #expect(settings.localEpochs == 2 && settings.serialRounds == 1 && settings.serialEpochs == 3)
    #expect(settings.rounds == 20 && settings.personalizationEpochs == 5 && settings.personalizationLearningRate == 0.001)
    #expect(settings.freezeFraction == 0.5 && settings.pretrainEpochs == 4 && settings.threshold == .fixed)
    #expect(settings.phaseFractions == [0.1, 0.6, 0.3])
    let data = try spec.loadData(dataDirectory: DataTestSupport.dataDirectory)
    #expect(data.devices.map(\.name) == ["Type=H", "Type=L", "Type=M"])
    #expect(data.devices.map(\.dataset.samples.count) == [1_003, 6_000, 2_997])
  }

  @Test(arguments: [
    (#"{"devices": [\#(device), {"name": "e", "dataset": "electrical_detect.csv"}]}"#,
     "spec.json: devices[1].label: missing"),
    (#"{"devices": [{"name": "m", "dataset": "machine_failure.csv", "lable": "fail"}]}"#,
     #"spec.json: devices[0].lable: unknown key (did you mean "label"?)"#),
    (#"{"devices": [\#(device)], "trainng": {}}"#, #"spec.json: trainng: unknown key (did you mean "training"?)"#),
    (#"{"devices": [\#(device)], "training": {"seed": "7"}}"#, "spec.json: training.seed: expected a number, found a string"),
    (#"{"devices": [\#(device)], "splits": {"phase3": 0.2}}"#,
     "spec.json: splits: phase1 + phase2 + phase3 must be 1, not 0.9"),
    (#"{"devices": [\#(device)], "splits": {"mode": "blocks"}}"#,
     #"spec.json: splits.mode: "blocks" is not "stratified" or "blocks:N" with N ≥ 2"#),
    (#"{"devices": [{"name": "m", "dataset": "machine_failure.csv", "label": "fail", "model_rate": 1.5}]}"#,
     "spec.json: devices[0].model_rate: must be in (0, 1], not 1.5"),
    (#"{"devices": [{"name": "m", "dataset": "x.csv", "label": "a", "memory": {"flash_bytes": 10}}]}"#,
     "spec.json: devices[0].memory.ram_bytes: missing"),
    (#"{"devices": [\#(device), \#(device)]}"#, #"spec.json: devices[1].name: "m" is used by another device"#),
    (#"{"devices": []}"#, "spec.json: devices: needs at least one device"),
    (#"{}"#, #"spec.json: devices: missing (or give "partition")"#),
    (#"{"partition": {"dataset": "a.csv", "label": "y", "method": "dirichlet", "clients": 3}}"#,
     #"spec.json: partition.alpha: missing (method "dirichlet" needs it)"#),
    (#"{"partition": {"dataset": "a.csv", "label": "y", "method": "iid", "clients": 3, "alpha": 1}}"#,
     #"spec.json: partition.alpha: only used with method "dirichlet" or "quantity""#),
    (#"{"partition": {"dataset": "a.csv", "label": "y", "method": "iid"}}"#, "spec.json: partition.clients: missing"),
    (#"{"partition": {"dataset": "a.csv", "label": "y", "method": "iid", "clients": 2, "profiles": [{}]}}"#,
     "spec.json: partition.profiles: has 1 entries for 2 clients"),
    (#"{"devices": [{"name": "m", "dataset": "a.csv", "label": "y", "label_bits": ["a"]}]}"#,
     #"spec.json: devices[0].label_bits: give either "label" or "label_bits", not both"#),
    (#"[1]"#, "spec.json: expected an object, found an array"),
    (#"{"partition": {"dataset": "a.csv", "label": "y", "method": "iid", "clients": 2, "profiles": [{"name": "a"}, {"name": "a"}]}}"#,
     #"spec.json: partition.profiles[1].name: "a" is used by another client"#),
    (#"{"devices": [{"name": "m", "dataset": "a.csv", "label": "y", "pad_to": true}]}"#,
     "spec.json: devices[0].pad_to: expected a number, found a boolean"),
  ])
  func badSpecsNameTheKeyPath(json: String, expected: String) {
    #expect(error(json) == expected)
  }

  @Test func invalidJSONIsOneLine() {
    let message = error(#"{"devices": [}"#) ?? ""
    #expect(message == #"spec.json: line 1 column 14: unexpected "}", expected a value"#)
    #expect(!message.contains("\n"))
  }

  @Test func loadingChecksWidthsClassesAndFiles() throws {
    let mismatched = try parse(#"""
      {"devices": [{"name": "e", "dataset": "electrical_detect.csv", "label": "Output (S)"},
                   {"name": "m", "dataset": "machine_failure.csv", "label": "fail"}]}
      """#)
    #expect(DataTestSupport.errorMessage { _ = try mismatched.loadData(dataDirectory: DataTestSupport.dataDirectory) }
      == "spec.json: devices[1]: 9 inputs but e has 6; set pad_to")
    let missing = try parse(#"{"devices": [{"name": "m", "dataset": "nope.csv", "label": "fail"}]}"#)
    #expect(DataTestSupport.errorMessage { _ = try missing.loadData(dataDirectory: DataTestSupport.dataDirectory) }
      == "nope.csv: no such file in \(DataTestSupport.dataDirectory.path)")
    let tooManyClients = try parse(#"""
      {"partition": {"dataset": "machine_failure.csv", "label": "fail", "method": "dirichlet", "alpha": 0.001,
                     "clients": 50}}
      """#)
    let message = DataTestSupport.errorMessage { _ = try tooManyClients.loadData(dataDirectory: DataTestSupport.dataDirectory) }
    #expect(message?.hasPrefix("spec.json: partition: Dirichlet(α = 0.001) left a client empty") == true)
  }
}

@Suite("Data: a spec's full class list")
struct DataClassListTests {
  private static let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fedhost-classes-\(getpid())")

  private func load(_ spec: String, files: [String: String]) throws -> FederationData {
    try FileManager.default.createDirectory(at: Self.directory, withIntermediateDirectories: true)
    for (name, text) in files { try text.write(to: Self.directory.appendingPathComponent(name), atomically: true, encoding: .utf8) }
    return try FederationSpec.parse(Data(spec.utf8), fileName: "spec.json").loadData(dataDirectory: Self.directory)
  }

  @Test func aDeviceMissingAClassLoadsWithTheFullList() throws {
    let files = ["a.csv": "x,y\n1,red\n2,green\n3,blue\n", "b.csv": "x,y\n4,blue\n5,blue\n6,red\n"]
    let classes = #""task": "multiclass", "classes": ["red", "green", "blue"]"#
    let data = try load(#"""
      {"devices": [{"name": "a", "dataset": "a.csv", "label": "y", \#(classes)},
                   {"name": "b", "dataset": "b.csv", "label": "y", \#(classes)}]}
      """#, files: files)
    #expect(data.devices.map(\.dataset.classNames) == [["red", "green", "blue"], ["red", "green", "blue"]])
    #expect(data.devices[1].dataset.samples.labels == [2, 2, 0])
    // Without the list, b's classes differ from a's and loading says so.
    let message = DataTestSupport.errorMessage {
      _ = try load(#"{"devices": [{"name": "a", "dataset": "a.csv", "label": "y", "task": "multiclass"}, {"name": "b", "dataset": "b.csv", "label": "y", "task": "multiclass"}]}"#,
                   files: files)
    }
    #expect(message?.contains("differ from a's") == true)
  }

  @Test func badClassListsAreOneLine() throws {
    let files = ["c.csv": "x,y\n1,red\n2,pink\n"]
    let unknown = DataTestSupport.errorMessage {
      _ = try load(#"{"devices": [{"name": "c", "dataset": "c.csv", "label": "y", "task": "multiclass", "classes": ["red", "green"]}]}"#,
                   files: files)
    }
    #expect(unknown == #"c.csv:3: class "pink" is not in the spec's classes ["red", "green"]"#)
    let twice = DataTestSupport.errorMessage {
      _ = try load(#"{"devices": [{"name": "c", "dataset": "c.csv", "label": "y", "task": "multiclass", "classes": ["red", "red"]}]}"#,
                   files: files)
    }
    #expect(twice == "spec.json: devices[0].classes: names a class twice")
    let binary = DataTestSupport.errorMessage {
      _ = try load(#"{"devices": [{"name": "c", "dataset": "c.csv", "label": "y", "classes": ["0", "1"]}]}"#, files: files)
    }
    #expect(binary == "spec.json: devices[0].classes: only for multi-class tasks (a binary task's classes are 0 and 1)")
  }
}
