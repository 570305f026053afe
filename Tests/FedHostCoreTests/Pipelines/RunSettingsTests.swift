import FedHostCore
import Foundation
import Testing

@Suite("Run settings: the option table, presets, protocols, spec and flag errors")
struct RunSettingsTests {
  private func spec(_ training: String) throws -> TrainingOverrides {
    let json = #"{"devices": [{"name": "m", "dataset": "machine_failure.csv", "label": "fail"}], "training": \#(training)}"#
    return try FederationSpec.parse(Data(json.utf8), fileName: "spec.json").training
  }

  private func resolve(_ training: String = "{}", flags: [String: String] = [:], protocol kind: String? = nil,
                       preset: String? = nil) throws -> RunSettings {
    try RunSettings.resolve(preset: preset, protocol: kind, training: spec(training), flags: flags, threads: 1)
  }

  private func message(_ body: () throws -> Void) -> String? {
    do { try body() } catch { return String(describing: error) }
    return nil
  }

  @Test func thePaperPresetIsSectionIVD() {
    let paper = RunSettings(preset: .paper)
    #expect(paper.learningRate == 1e-5 && paper.batchSize == 1 && paper.optimizer == .adam)
    #expect(paper.serialRounds == 10 && paper.rounds == 10 && paper.personalizationEpochs == 10)
    #expect(paper.freezeFraction == 0.5 && paper.threshold == .f1 && paper.localSteps == nil)
    #expect(paper.phaseFractions == [0.2, 0.5, 0.3])
    #expect(paper.hiddenWidths == [256, 128, 64, 32, 16, 12, 8])
  }

  @Test func theStandardProtocolHasItsOwnDefaults() {
    let fl = RunSettings(preset: .tuned, protocolKind: .fl)
    #expect(fl.rounds == 20 && fl.localOnlyEpochs == 20 && fl.centralizedEpochs == 20 && fl.clientsPerRound == .all)
    #expect(fl.freezeFraction == 0 && fl.threshold == .fixed)
    #expect(RunSettings(preset: .paper, protocolKind: .fl).threshold == .fixed)
    // MEFL's client learns under fl; Fed-Meta-Align keeps the plugin's paper-recovered defaults.
    #expect(fl.metaOuterSteps == 40 && fl.metaLearningRate == 0.01)
    for preset in Preset.allCases {
      let fedMetaAlign = RunSettings(preset: preset, protocolKind: .fedMetaAlign)
      #expect(fedMetaAlign.metaOuterSteps == 1 && fedMetaAlign.metaLearningRate == 1e-3)
    }
  }

  @Test func specThenFlagsOverrideThePreset() throws {
    let settings = try resolve(#"{"learning_rate": 0.01, "threshold": "f1"}"#, flags: ["learning_rate": "0.02"])
    #expect(settings.learningRate == 0.02 && settings.threshold == .f1)
    #expect(settings.batchSize == RunSettings(preset: .tuned).batchSize)
    #expect(try resolve(#"{"parallel_rounds": 3}"#).rounds == 3)  // the old key still reads
  }

  @Test func theProtocolComesFromTheFlagOrTheSpec() throws {
    #expect(try resolve(#"{"protocol": "fl"}"#).protocolKind == .fl)
    #expect(try resolve(#"{"protocol": "fl"}"#, protocol: "fed-meta-align").protocolKind == .fedMetaAlign)
    #expect(try resolve(flags: ["clients_per_round": "0.25"], protocol: "fl").clientsPerRound == .fraction(0.25))
    #expect(try resolve(#"{"clients_per_round": 10}"#, protocol: "fl").clientsPerRound == .count(10))
  }

  @Test func clientSamplingSizes() {
    #expect(ClientSampling.all.sampleSize(of: 7) == 7)
    #expect(ClientSampling.count(10).sampleSize(of: 7) == 7)
    #expect(ClientSampling.count(3).sampleSize(of: 7) == 3)
    #expect(ClientSampling.fraction(0.1).sampleSize(of: 101) == 11)  // ⌈10.1⌉
    #expect(ClientSampling.fraction(0.001).sampleSize(of: 100) == 1)
  }

  @Test func balancedLocalWorkRoundsUpToWholeEpochs() {
    var settings = RunSettings(preset: .tuned).engine(seed: 0)
    settings.localSteps = 240
    settings.batchSize = 16
    #expect(settings.epochsPerRound(sampleCount: 3_840) == 1)  // 240 × 16 = 3,840 samples
    #expect(settings.epochsPerRound(sampleCount: 302) == 13)   // ⌈3,840 / 302⌉
    settings.localSteps = nil
    settings.localEpochs = 3
    #expect(settings.epochsPerRound(sampleCount: 302) == 3)
  }

  @Test(arguments: [
    (#"{"batch_size": 1.5}"#, "spec.json: training.batch_size: expected an integer, found 1.5"),
    (#"{"batch_size": 0}"#, "spec.json: training.batch_size: must be within 1...1048576, not 0"),
    (#"{"optimizer": "adamw"}"#, #"spec.json: training.optimizer: must be one of adam, sgd, not "adamw""#),
    (#"{"learning_rate": -1}"#, "spec.json: training.learning_rate: must be a learning rate in (0, 10], not -1.0"),
    (#"{"local_epochs": 0}"#, "spec.json: training.local_epochs: must be within 1...10000, not 0"),
    (#"{"local_steps": -3}"#, "spec.json: training.local_steps: must be 0 (off) or a positive integer, not -3"),
    (#"{"batch_sise": 4}"#, #"spec.json: training.batch_sise: unknown key (did you mean "batch_size"?)"#),
    (#"{"protocol": "fedavg"}"#, #"spec.json: training.protocol: must be one of fed-meta-align, fl, not "fedavg""#),
    (#"{"protocol": "fl", "serial_rounds": 3}"#,
     "spec.json: training.serial_rounds: only used by the fed-meta-align protocol, not fl"),
    (#"{"clients_per_round": 10}"#, "spec.json: training.clients_per_round: only used by the fl protocol, not fed-meta-align"),
    (#"{"hidden_widths": []}"#, "spec.json: training.hidden_widths: needs 1 to 32 hidden layers, not 0"),
    (#"{"hidden_widths": [64, 0]}"#, "spec.json: training.hidden_widths: expects widths in 1...4096, got [64.0, 0.0]"),
    (#"{"freeze_fraction": 2}"#, "spec.json: training.freeze_fraction: must be within 0...1, not 2.0"),
    (#"{"threshold": 1}"#, "spec.json: training.threshold: expected a string, found a number"),
  ])
  func badSpecEntriesNameTheKeyPath(_ training: String, _ expected: String) {
    #expect(message { _ = try resolve(training) } == expected)
  }

  @Test(arguments: [
    (["batch_size": "x"], nil, "--batch-size expects an integer, got \"x\""),
    (["batch_size": "-4"], nil, "--batch-size must be within 1...1048576, not -4"),
    (["rounds": "0"], nil, "--rounds must be within 1...100000, not 0"),
    (["early_stopping": "-1"], nil, "--early-stopping must be 0 (off) or a positive integer, not -1"),
    (["local_steps": "-2"], nil, "--local-steps must be 0 (off) or a positive integer, not -2"),
    (["phases": "0.5,0.5"], nil, "--phases must be three shares in 0...1 that sum to 1, not [0.5, 0.5]"),
    (["phases": "a,b,c"], nil, "--phases expects comma-separated numbers, got \"a,b,c\""),
    (["learning_rate": "nan"], nil, "--learning-rate expects a number, got \"nan\""),
    (["clients_per_round": "0"], "fl", "--clients-per-round must be a count ≥ 1, a share in (0, 1) or \"all\", not 0.0"),
    (["clients_per_round": "2.5"], "fl", "--clients-per-round must be a count ≥ 1, a share in (0, 1) or \"all\", not 2.5"),
    (["pretrain_epochs": "1"], "fl", "--pretrain-epochs is only used by the fed-meta-align protocol, not fl"),
    (["centralized_epochs": "5"], nil, "--centralized-epochs is only used by the fl protocol, not fed-meta-align"),
    (["hidden_widths": "64,0"], nil, "--hidden-widths expects widths in 1...4096, got [64.0, 0.0]"),
  ] as [([String: String], String?, String)])
  func badFlagsNameTheFlag(_ flags: [String: String], _ kind: String?, _ expected: String) {
    #expect(message { _ = try resolve(flags: flags, protocol: kind) } == expected)
  }

  @Test func pluginConfigComesFromTheSpec() throws {
    let json = #"{"devices": [{"name": "m", "dataset": "m.csv", "label": "fail"}], "plugin_config": {"mode": "median", "beta": 0.25, "list": [1, 2]}, "training": {"mu": 0.1}}"#
    let training = try FederationSpec.parse(Data(json.utf8), fileName: "spec.json").training
    #expect(training.pluginConfig == ["mode": "\"median\"", "beta": "0.25", "list": "[1,2]", "mu": "0.1"])
    #expect(message {
      _ = try FederationSpec.parse(Data(#"{"devices": [{"name": "m", "dataset": "m.csv", "label": "fail"}], "plugin_config": 3}"#.utf8),
                                   fileName: "spec.json")
    } == "spec.json: plugin_config: expected an object, found a number")
  }

  @Test func badPresetAndProtocolAreOneLine() {
    #expect(message { _ = try resolve(preset: "fast") } == "--preset must be one of paper, tuned, not \"fast\"")
    #expect(message { _ = try resolve(protocol: "x") } == "--protocol must be one of fed-meta-align, fl, not \"x\"")
  }

  @Test func everyOptionHasAFlagAHelpAndAShownDefault() {
    for option in RunSettings.options {
      #expect(!option.help.isEmpty && option.helpWithDefaults.contains("default "))
      #expect(option.flag == option.key.replacingOccurrences(of: "_", with: "-"))
    }
    #expect(Set(RunSettings.options.map(\.key)).count == RunSettings.options.count)
    let lines = RunSettings(preset: .paper).describe()
    #expect(lines[0] == "protocol fed-meta-align, preset paper")
    #expect(lines[1].contains("learning_rate 1e-05") && lines[1].contains("phases 20/50/30"))
  }

  @Test func theSpecDocumentationListsEveryOption() throws {
    let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs/federation-spec.md")
    let text = try String(contentsOf: docs, encoding: .utf8)
    for option in RunSettings.options {
      #expect(text.contains("`\(option.key)`"), "docs/federation-spec.md does not document training.\(option.key)")
    }
  }
}
