import FedHostCore
import Foundation

/// Options shared by `host run` (the main job) and `host compare`: where the federation comes
/// from, the preset and every hyperparameter, plugins, output.
enum ExperimentOptions {
  /// One flag per hyperparameter, from the option table (RunSettings.options).
  static let settingSpecs: [OptionSpec] = RunSettings.options.map { option in
    let scope = option.protocols.count == 1 ? " [\(option.protocols.first!.rawValue)]" : ""
    return .value(option.flag, option.valueName, option.helpWithDefaults + scope)
  }

  static let specs: [OptionSpec] = [
    .value("federation", "FILE", "federation spec (JSON, see docs/federation-spec.md); default: the embedded two-device federation"),
    .value("data-dir", "DIR", "directory the spec's dataset files are relative to (default: .)"),
    .value("protocol", "NAME", "fed-meta-align (the paper's phases; default of host run) or fl (the standard FL protocol: every method on the whole train part)"),
    .value("preset", "NAME", "tuned (default: the protocol with sane training) or paper (Section IV.D exactly)"),
    .value("threads", "N", "worker threads for client training and for plugins (parallel_for) (default: all cores; results do not depend on it)"),
    .value("plugin-path", "DIRS", "extra plugin directories (colon-separated, repeatable)", repeatable: true),
    .value("plugin-config", "KEY=JSON", "config entry for the plugins that declare KEY (an error if none does), e.g. mu=0.1 or variance_mode=\"v2\" (repeatable)", repeatable: true),
    .value("isolation", "MODE", "process (default: each plugin in a child process, so a crash, hang or overrun fails that strategy only) or none (in this process)"),
    .value("plugin-timeout", "SECONDS", "isolated: a plugin call with no answer for this long counts as hung (default 60)"),
    .value("mu", "MU", "FedProx's proximal weight μ: the same as --plugin-config mu=MU (plugin default 0.01)"),
    .value("similarity-floor", "C", "SimilarityAware's floor c: the same as --plugin-config similarity_floor=C (plugin default 0.1)"),
  ] + settingSpecs + [
    .value("out", "DIR", "write report.md/.csv/.json, SVG plots, models and a checkpoint after every round here (atomically); refuses a directory holding another run's results"),
    .value("resume", "DIR", "continue the run whose --out was DIR (same command and options), e.g. after a crash or kill"),
    .flag("force", "with --out: overwrite a directory that holds another run's results"),
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
  static func settings(_ options: ParsedOptions, data: FederationData, protocol fallback: ProtocolKind? = nil) throws
    -> RunSettings
  {
    var flags: [String: String] = [:]
    for option in RunSettings.options {
      if let text = options.value(option.flag) { flags[option.key] = text }
    }
    let threads = try options.integer("threads", default: WorkerPool.defaultThreadCount, atLeast: 1)
    return try RunSettings.resolve(preset: options.value("preset"), protocol: options.value("protocol") ?? fallback?.rawValue,
                                   training: data.training, flags: flags, threads: threads)
  }

  /// `--isolation` and `--plugin-timeout`.
  static func isolation(_ options: ParsedOptions) throws -> PluginIsolation {
    let timeout = try options.number("plugin-timeout") ?? PluginIsolation.defaultCallTimeout
    guard timeout > 0 && timeout <= 86_400 else { throw UsageError("--plugin-timeout must be within (0, 86400] seconds, not \(timeout)") }
    switch options.value("isolation") ?? "process" {
    case "process": return .process(callTimeout: timeout)
    case "none":
      if options.value("plugin-timeout") != nil { throw UsageError("--plugin-timeout needs --isolation process") }
      return .none
    case let other: throw UsageError("--isolation must be process or none, not \"\(other)\"")
    }
  }

  /// The spec's `plugin_config`, then `--mu` / `--similarity-floor`, then `--plugin-config` entries.
  static func pluginConfig(_ options: ParsedOptions, data: FederationData) throws -> [String: String] {
    var config = data.training.pluginConfig
    for (flag, key) in [("mu", "mu"), ("similarity-floor", "similarity_floor")] {
      if let value = try options.number(flag) { config[key] = String(value) }
    }
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

  /// The --out directory (or the --resume one) and how to treat what it holds.
  static func output(_ options: ParsedOptions) throws -> OutputDirectory? {
    let out = options.value("out")
    guard let resume = options.value("resume") else {
      if options.has("force") && out == nil { throw UsageError("--force goes with --out DIR") }
      return out.map { OutputDirectory(path: $0, mode: .fresh(force: options.has("force"))) }
    }
    if let out, out != resume { throw UsageError("--resume DIR continues in DIR; drop --out \(out) or make it the same") }
    if options.has("force") { throw UsageError("--force starts over; it cannot go with --resume") }
    return OutputDirectory(path: resume, mode: .resume)
  }

  /// Prints the report (Markdown or JSON) and writes the report files under --out.
  static func publish(_ report: ComparisonReport, options: ParsedOptions) throws {
    if let directory = try output(options)?.path {
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
