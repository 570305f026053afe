import FedHostCore
import Foundation

/// Options shared by `host run` (the main job) and `host compare`: where the federation comes
/// from, the preset and every hyperparameter, plugins, output.
enum ExperimentOptions {
  static let specs: [OptionSpec] = [
    .value("federation", "FILE", "federation spec (JSON, see docs/federation-spec.md); default: the embedded two-device federation"),
    .value("data-dir", "DIR", "directory the spec's dataset files are relative to (default: .)"),
    .value("preset", "NAME", "tuned (default: the protocol with sane training) or paper (Section IV.D exactly)"),
    .value("threads", "N", "worker threads for client training and for plugins (parallel_for) (default: all cores; results do not depend on it)"),
    .value("plugin-path", "DIRS", "extra plugin directories (colon-separated, repeatable)"),
    .value("plugin-config", "KEY=JSON", "extra config entry for every plugin declaring KEY, e.g. variance_mode=\"v2\" (repeatable)"),
    .value("phases", "P1,P2,P3", "shares of each device's train part for Phases 1/2/3 (paper 0.2,0.5,0.3; tuned 0.1,0.3,0.6)"),
    .value("optimizer", "NAME", "adam or sgd (both presets: adam)"),
    .value("learning-rate", "LR", "local learning rate (paper 1e-5, tuned 1e-3)"),
    .value("batch-size", "N", "local batch size (paper 1, tuned 16)"),
    .value("pretrain-epochs", "N", "Phase 0 epochs on the pretraining set, 0 skips it (paper 1, tuned 0)"),
    .value("serial-rounds", "N", "Phase 1 rounds of the initializer (10)"),
    .value("serial-epochs", "N", "Phase 1 epochs per device visit (1)"),
    .value("rounds", "N", "Phase 2 parallel rounds (10)"),
    .value("local-epochs", "N", "Phase 2 local epochs per round, when --local-steps is off (1)"),
    .value("local-steps", "N", "Phase 2: about N optimizer steps per client per round instead of --local-epochs, 0: off (default off)"),
    .value("personalization-epochs", "N", "Phase 3 fine-tuning epochs, 0 skips it (10)"),
    .value("personalization-learning-rate", "LR", "Phase 3 learning rate (paper 1e-5, tuned 1e-3)"),
    .value("freeze-fraction", "F", "share of layers frozen in Phase 3 (paper 0.5: the first half; tuned 0)"),
    .value("early-stopping", "PATIENCE", "Phase 3 and Local Only keep the epoch of lowest validation loss, stopping after PATIENCE epochs without improvement (0: off)"),
    .value("local-only-epochs", "N", "epochs of the Local Only baseline (10)"),
    .value("threshold", "RULE", "f1 (F1-optimal on a validation slice) or fixed (0.5) (paper f1, tuned fixed)"),
    .value("similarity-floor", "C", "SimilarityAware's floor c (0.1)"),
    .value("mu", "MU", "FedProx's proximal weight μ (0.01)"),
    .value("out", "DIR", "write report.md/.csv/.json, SVG plots, models and a checkpoint after every round here (atomically)"),
    .value("resume", "DIR", "continue the run whose --out was DIR (same command and options), e.g. after a crash or kill"),
    .flag("json", "print the report as JSON on stdout instead of Markdown"),
    .flag("quiet", "no progress lines on stderr"),
    .flag("help", "show this help"),
  ]

  /// Loads the federation's data: a spec file with its data directory, or the embedded default.
  static func federationData(_ options: ParsedOptions) throws -> (data: FederationData, source: String) {
    guard let specPath = options.value("federation") else {
      return (EmbeddedFederation.make(seed: EmbeddedFederation.defaultSeed), "embedded two-device federation (synthetic)")
    }
    let spec = try FederationSpec.load(contentsOf: URL(fileURLWithPath: specPath))
    let directory = options.value("data-dir") ?? "."
    return (try spec.loadData(dataDirectory: URL(fileURLWithPath: directory)), "\(specPath) (data in \(directory))")
  }

  /// Preset, then the spec's `training` object, then command-line flags.
  static func settings(_ options: ParsedOptions, data: FederationData) throws -> PipelineSettings {
    let presetName = options.value("preset") ?? PipelineSettings.Preset.tuned.rawValue
    guard let preset = PipelineSettings.Preset(rawValue: presetName) else {
      throw UsageError("--preset must be one of \(PipelineSettings.Preset.allCases.map(\.rawValue)), got \"\(presetName)\"")
    }
    var settings = PipelineSettings(preset: preset, threads: try options.integer("threads", default: WorkerPool.defaultThreadCount))
    settings.apply(data.training)
    if let text = options.value("phases") {
      let shares = text.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
      guard shares.count == 3 else { throw UsageError("--phases expects three comma-separated shares, got \"\(text)\"") }
      settings.phaseFractions = shares
    }
    if let name = options.value("optimizer") {
      guard ["adam", "sgd"].contains(name) else { throw UsageError("--optimizer must be adam or sgd, got \"\(name)\"") }
      settings.useSGD = name == "sgd"
    }
    if let value = try options.number("learning-rate") { settings.learningRate = Float(value) }
    settings.batchSize = try options.integer("batch-size", default: settings.batchSize)
    settings.pretrainEpochs = try options.integer("pretrain-epochs", default: settings.pretrainEpochs)
    settings.serialRounds = try options.integer("serial-rounds", default: settings.serialRounds)
    settings.serialEpochs = try options.integer("serial-epochs", default: settings.serialEpochs)
    settings.parallelRounds = try options.integer("rounds", default: settings.parallelRounds)
    settings.localEpochs = try options.integer("local-epochs", default: settings.localEpochs)
    if options.value("local-steps") != nil {
      let steps = try options.integer("local-steps", default: 0)
      settings.localSteps = steps > 0 ? steps : nil
    }
    settings.personalizationEpochs = try options.integer("personalization-epochs", default: settings.personalizationEpochs)
    if let value = try options.number("personalization-learning-rate") { settings.personalizationLearningRate = Float(value) }
    if let value = try options.number("freeze-fraction") { settings.freezeFraction = value }
    settings.localOnlyEpochs = try options.integer("local-only-epochs", default: settings.localOnlyEpochs)
    if options.value("early-stopping") != nil {
      let patience = try options.integer("early-stopping", default: 0)
      settings.earlyStoppingPatience = patience > 0 ? patience : nil
    }
    if let rule = options.value("threshold") {
      guard let parsed = PipelineSettings.ThresholdRule(rawValue: rule) else {
        throw UsageError("--threshold must be f1 or fixed, got \"\(rule)\"")
      }
      settings.threshold = parsed
    }
    if let value = try options.number("similarity-floor") { settings.similarityFloor = value }
    if let value = try options.number("mu") { settings.mu = value }
    do { try settings.validate() } catch { throw UsageError("\(error)") }
    return settings
  }

  static func pluginConfig(_ options: ParsedOptions) throws -> [String: String] {
    var config: [String: String] = [:]
    for entry in options.all("plugin-config") {
      let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2, !parts[0].isEmpty,
            (try? JSONSerialization.jsonObject(with: Data(parts[1].utf8), options: [.fragmentsAllowed])) != nil else {
        throw UsageError("--plugin-config expects KEY=JSON (e.g. mu=0.1 or mode=\"median\"), got \"\(entry)\"")
      }
      config[parts[0]] = parts[1]
    }
    return config
  }

  static func progress(_ options: ParsedOptions) -> (String) -> Void {
    if options.has("quiet") { return { _ in } }
    let start = ContinuousClock.now
    return { line in
      let elapsed = ContinuousClock.now - start
      let stamp = String(format: "%7.2fs", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
      FileHandle.standardError.write(Data("\(stamp) \(line)\n".utf8))
    }
  }

  /// The --out directory (or the --resume one) and whether to resume from it.
  static func output(_ options: ParsedOptions) throws -> (directory: String?, resume: Bool) {
    let out = options.value("out")
    guard let resume = options.value("resume") else { return (out, false) }
    if let out, out != resume { throw UsageError("--resume DIR continues in DIR; drop --out \(out) or make it the same") }
    return (resume, true)
  }

  /// Prints the report (Markdown or JSON) and writes the report files under --out.
  static func publish(_ report: ComparisonReport, options: ParsedOptions) throws {
    if let directory = try output(options).directory {
      try ReportFiles.write(report, to: directory)
    }
    if options.has("json") {
      FileHandle.standardOutput.write(try TableWriters.json(report))
      print()
    } else {
      print(TableWriters.markdown(report), terminator: "")
    }
  }
}
