import FedHostCore
import Foundation

/// `host [run] --aggregator LIB`: the Fed-Meta-Align protocol with one aggregator, the
/// baselines beside it in the same run, one seed.
enum RunCommand {
  static let specs: [OptionSpec] = [
    .value("aggregator", "LIB", "aggregator plugin (path or file name), e.g. libSimilarityAware.so"),
    .value("initializer", "LIB", "Phase 1 initializer plugin, or none (default: libSimilarityAware.so)"),
    .value("client-hook", "LIB", "client-side plugin (default: the aggregator, if it is one)"),
    .value("baselines", "LIST", "comma-separated aggregators run beside it, or none (default: libFedAvg.so,libFedProx.so,libMEFLVariance.so)"),
    .flag("no-local-only", "skip the protocol's baselines (Local Only; with --protocol fl also Centralized)"),
    .value("seed", "N", "seed of the splits, initialization and every random choice (default: the spec's training.seed, else 0)"),
    .value("export", "DIR", "also quantize each device's personalized model to int8 and write DIR/DEVICE.tflite and a report (see host export)"),
  ] + ExperimentOptions.specs

  static let help = helpText(
    usage: "host [run] --aggregator LIB [options]",
    summary: """
      Runs the Fed-Meta-Align protocol on a federation: Phase 0 pretraining on the public set,
      Phase 1 serial meta-initialization by the initializer plugin, Phase 2 parallel FL rounds
      with the aggregator plugin, Phase 3 on-device personalization (first half of the layers
      frozen, F1-optimal threshold). The baselines (Local Only, FedAvg, FedProx, MEFL) run on the
      same splits. With --protocol fl it runs the standard FL protocol instead: every method on
      each device's whole train part, R rounds of sampled clients, optional fine-tuning, and
      Local Only and Centralized as baselines. Progress goes to stderr, the report to stdout.
      Options marked [fed-meta-align] or [fl] belong to that protocol only.
      """,
    specs: specs,
    footer: "example: host --aggregator libSimilarityAware.so --federation Examples/paper-federation.json --data-dir ../shared/data")

  static let defaultBaselines = ["libFedAvg.so", "libFedProx.so", "libMEFLVariance.so"]

  static func run(_ arguments: ArraySlice<String>) throws -> Int32 {
    let options = try ParsedOptions(arguments, specs: specs, command: "run")
    if options.has("help") { print(help); return 0 }
    guard let aggregator = options.value("aggregator") else {
      throw UsageError("--aggregator LIB is required (e.g. --aggregator libSimilarityAware.so; see `host run --help`)")
    }
    let (data, source) = try ExperimentOptions.federationData(options)
    let settings = try ExperimentOptions.settings(options, data: data)
    let seed = try options.seed("seed") ?? data.training.seed ?? 0
    let initializer: InitializerChoice = switch options.value("initializer") {
    case "none": .none
    case let name?: .plugin(name)
    case nil: .plugin("libSimilarityAware.so")
    }
    let baselines = try options.value("baselines").map { $0 == "none" ? [] : try pluginList($0, flag: "baselines") }
      ?? defaultBaselines
    let main = StrategyEntry(aggregator: aggregator, initializer: initializer, clientHook: options.value("client-hook"))
    let plan = ComparisonPlan(
      strategies: baselines.map { StrategyEntry(aggregator: $0, initializer: .none) } + [main],
      includeBaselines: !options.has("no-local-only"), seeds: [seed], settings: settings,
      searchPath: .standard(explicit: options.all("plugin-path")),
      title: "FedHost run: \(aggregator) on the \(source)", pluginConfig: try ExperimentOptions.pluginConfig(options, data: data),
      isolation: try ExperimentOptions.isolation(options))

    let progress = ExperimentOptions.progress(options)
    let mainIndex = plan.strategies.count - 1
    let output = try ExperimentOptions.output(options)
    let exportDirectory = options.value("export")
    if exportDirectory != nil && settings.personalizationEpochs == 0 && settings.protocolKind == .fl {
      throw UsageError("--export writes the personalized models: set --personalization-epochs above 0")
    }
    let report = try Comparison.run(plan, data: data, output: output, progress: progress) { _, index, outcome, run in
      guard index == mainIndex else { return }
      if let output { try ReportFiles.writeModels(outcome, to: output.path) }
      if let exportDirectory { try exportPersonalized(outcome, data: data, seed: seed, settings: settings, to: exportDirectory, progress: progress) }
    }
    try ExperimentOptions.publish(report, options: options)
    return report.methods.last?.failure == nil ? 0 : 1
  }
}

/// Writes each device's personalized model as an int8 TFLite file plus its export report.
private func exportPersonalized(_ outcome: StrategyOutcome, data: FederationData, seed: UInt64, settings: RunSettings,
                                to directory: String, progress: (String) -> Void) throws {
  let devices = data.prepare(seed: seed, phaseFractions: settings.phaseFractions).devices
  for (index, device) in devices.enumerated() {
    let stem = directory + "/" + fileName(forDevice: device.name)
    let (report, files) = try TinyMLExporter.export(
      outcome.personalizedModels[index], architecture: outcome.devices[index].architecture, device: device,
      format: .tflite, granularity: .perChannel, to: stem + ".tflite")
    try AtomicFile.write(report.markdown, to: stem + "-export.md")
    progress("[export] \(device.name): \(files[0]) (\(report.footprint.flashBytes) B flash, "
               + "\(report.footprint.arenaBytes) B arena), int8 test accuracy "
               + String(format: "%.2f %% (float %.2f %%)", report.int8Metrics.accuracy * 100, report.floatMetrics.accuracy * 100))
  }
}

/// `host compare`: every strategy plus Local Only over several seeds.
enum CompareCommand {
  static let specs: [OptionSpec] = [
    .value("aggregators", "LIST", "comma-separated aggregator plugins, e.g. libFedAvg.so,libFedProx.so,libSimilarityAware.so,libMEFLVariance.so"),
    .value("seeds", "N|LIST", "number of seeds (0..N-1) or a comma-separated list of distinct seeds (default 5)"),
    .flag("no-local-only", "skip the protocol's baselines (Local Only; with --protocol fl also Centralized)"),
  ] + ExperimentOptions.specs

  static let help = helpText(
    usage: "host compare --aggregators LIST [--seeds N] [--out DIR] [options]",
    summary: """
      Runs every strategy through the same protocol (--protocol fed-meta-align, the default, or
      fl), on the same splits and seeds, plus the protocol's baselines, and writes a Table-I-style comparison (mean ± std over seeds) as Markdown, CSV and
      JSON, with SVG plots of the global model per round and of personalized accuracy per device.
      A strategy whose plugin fails is reported as failed; the others finish. An aggregator that
      is also an initializer (SimilarityAware) runs its Phase 1; the others start from Phase 0.
      """,
    specs: specs)

  static func run(_ arguments: ArraySlice<String>) throws -> Int32 {
    let options = try ParsedOptions(arguments, specs: specs, command: "compare")
    if options.has("help") { print(help); return 0 }
    guard let list = options.value("aggregators") else { throw UsageError("--aggregators LIST is required") }
    let aggregators = try pluginList(list, flag: "aggregators")
    let seeds = try seedList(options.value("seeds") ?? "5")
    let (data, source) = try ExperimentOptions.federationData(options)
    let settings = try ExperimentOptions.settings(options, data: data)
    let plan = ComparisonPlan(
      strategies: aggregators.map { StrategyEntry(aggregator: $0) },
      includeBaselines: !options.has("no-local-only"), seeds: seeds, settings: settings,
      searchPath: .standard(explicit: options.all("plugin-path")),
      title: "FedHost comparison on the \(source)", pluginConfig: try ExperimentOptions.pluginConfig(options, data: data),
      isolation: try ExperimentOptions.isolation(options))
    let report = try Comparison.run(plan, data: data, output: try ExperimentOptions.output(options),
                                    progress: ExperimentOptions.progress(options))
    try ExperimentOptions.publish(report, options: options)
    return report.methods.contains { $0.failure != nil } ? 1 : 0
  }
}

/// A comma-separated list of plugins, none empty.
func pluginList(_ text: String, flag: String) throws -> [String] {
  let names = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
  guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty }) else {
    throw UsageError("--\(flag) expects comma-separated plugin names, got \"\(text)\"")
  }
  return names
}

/// `N` (seeds 0..<N) or a comma-separated list of distinct non-negative seeds.
func seedList(_ text: String) throws -> [UInt64] {
  if !text.contains(","), let count = Int(text) {
    guard (1...1000).contains(count) else { throw UsageError("--seeds must be a count within 1...1000, not \(count)") }
    return (0..<UInt64(count)).map { $0 }
  }
  let parsed = text.split(separator: ",", omittingEmptySubsequences: false).map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
  guard !parsed.isEmpty, parsed.allSatisfy({ $0 != nil }) else {
    throw UsageError("--seeds expects a count or a comma-separated list of non-negative integers, got \"\(text)\"")
  }
  let seeds = parsed.map { $0! }
  if let repeated = seeds.first(where: { seed in seeds.filter { $0 == seed }.count > 1 }) {
    throw UsageError("--seeds lists seed \(repeated) twice")
  }
  return seeds
}
