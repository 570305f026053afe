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
    .flag("no-local-only", "skip the Local Only baseline"),
    .value("seed", "N", "seed of the splits, initialization and every random choice (default 0)"),
    .value("export", "DIR", "also quantize each device's personalized model to int8 and write DIR/DEVICE.tflite and a report (see host export)"),
  ] + ExperimentOptions.specs

  static let help = helpText(
    usage: "host [run] --aggregator LIB [options]",
    summary: """
      Runs the Fed-Meta-Align protocol on a federation: Phase 0 pretraining on the public set,
      Phase 1 serial meta-initialization by the initializer plugin, Phase 2 parallel FL rounds
      with the aggregator plugin, Phase 3 on-device personalization (first half of the layers
      frozen, F1-optimal threshold). The baselines (Local Only, FedAvg, FedProx, MEFL) run on the
      same splits. Progress goes to stderr, the Table-I-style report to stdout.
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
    var settings = try ExperimentOptions.settings(options, data: data)
    settings.seed = UInt64(try options.integer("seed", default: Int(settings.seed)))
    let initializer: InitializerChoice = switch options.value("initializer") {
    case "none": .none
    case let name?: .plugin(name)
    case nil: .plugin("libSimilarityAware.so")
    }
    let baselines = options.value("baselines").map { $0 == "none" ? [] : $0.split(separator: ",").map(String.init) }
      ?? defaultBaselines
    let main = StrategyEntry(aggregator: aggregator, initializer: initializer, clientHook: options.value("client-hook"))
    let plan = ComparisonPlan(
      strategies: baselines.map { StrategyEntry(aggregator: $0, initializer: .none) } + [main],
      includeLocalOnly: !options.has("no-local-only"), seeds: [settings.seed], settings: settings,
      searchPath: .standard(explicit: options.all("plugin-path")),
      title: "FedHost run: \(aggregator) on the \(source)", extraConfig: try ExperimentOptions.pluginConfig(options))

    let progress = ExperimentOptions.progress(options)
    let mainIndex = plan.strategies.count - 1
    let (outDirectory, resume) = try ExperimentOptions.output(options)
    let exportDirectory = options.value("export")
    let report = try Comparison.run(plan, data: data, checkpointDirectory: outDirectory, resume: resume,
                                    progress: progress) { _, index, outcome, federation in
      guard index == mainIndex else { return }
      if let outDirectory { try ReportFiles.writeModels(outcome, to: outDirectory) }
      if let exportDirectory { try exportPersonalized(outcome, federation: federation, to: exportDirectory, progress: progress) }
    }
    try ExperimentOptions.publish(report, options: options)
    return report.methods.last?.failure == nil ? 0 : 1
  }
}

/// Writes each device's personalized model as an int8 TFLite file plus its export report.
private func exportPersonalized(_ outcome: StrategyOutcome, federation: Federation, to directory: String,
                                progress: (String) -> Void) throws {
  for (index, device) in federation.devices.enumerated() {
    let stem = directory + "/" + ReportFiles.fileName(forDevice: device.name)
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
    .value("seeds", "N|LIST", "number of seeds (0..N-1) or a comma-separated list (default 5)"),
    .flag("no-local-only", "skip the Local Only baseline"),
  ] + ExperimentOptions.specs

  static let help = helpText(
    usage: "host compare --aggregators LIST [--seeds N] [--out DIR] [options]",
    summary: """
      Runs every strategy through the same protocol, on the same splits and seeds, plus Local
      Only, and writes a Table-I-style comparison (mean ± std over seeds) as Markdown, CSV and
      JSON, with SVG plots of the global model per round and of personalized accuracy per device.
      A strategy whose plugin fails is reported as failed; the others finish. An aggregator that
      is also an initializer (SimilarityAware) runs its Phase 1; the others start from Phase 0.
      """,
    specs: specs)

  static func run(_ arguments: ArraySlice<String>) throws -> Int32 {
    let options = try ParsedOptions(arguments, specs: specs, command: "compare")
    if options.has("help") { print(help); return 0 }
    guard let list = options.value("aggregators") else { throw UsageError("--aggregators LIST is required") }
    let seedsText = options.value("seeds") ?? "5"
    let seeds: [UInt64]
    if !seedsText.contains(","), let count = Int(seedsText) {
      guard count >= 1 else { throw UsageError("--seeds must be at least 1") }
      seeds = (0..<UInt64(count)).map { $0 }
    } else {
      let parsed = seedsText.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
      guard !parsed.isEmpty, parsed.allSatisfy({ $0 != nil }) else {
        throw UsageError("--seeds expects a count or a comma-separated list of non-negative integers, got \"\(seedsText)\"")
      }
      seeds = parsed.map { $0! }
    }
    let (data, source) = try ExperimentOptions.federationData(options)
    let settings = try ExperimentOptions.settings(options, data: data)
    let plan = ComparisonPlan(
      strategies: list.split(separator: ",").map { StrategyEntry(aggregator: String($0)) },
      includeLocalOnly: !options.has("no-local-only"), seeds: seeds, settings: settings,
      searchPath: .standard(explicit: options.all("plugin-path")),
      title: "FedHost comparison on the \(source)", extraConfig: try ExperimentOptions.pluginConfig(options))
    let (outDirectory, resume) = try ExperimentOptions.output(options)
    let report = try Comparison.run(plan, data: data, checkpointDirectory: outDirectory, resume: resume,
                                    progress: ExperimentOptions.progress(options))
    try ExperimentOptions.publish(report, options: options)
    return report.methods.contains { $0.failure != nil } ? 1 : 0
  }
}
