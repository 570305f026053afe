import FedHostCore
import Foundation

/// `host plugins list|describe|validate`.
enum PluginsCommand {
  static let specs: [OptionSpec] = [
    .value("plugin-path", "DIRS", "extra directories to search (colon-separated, repeatable), before FEDHOST_PLUGIN_PATH and the host's own directory"),
    .value("timeout", "SECONDS", "validate: a check with no progress for this long counts as hung (default 30)"),
    .flag("in-process", "validate: run the checks in this process (used by the child process)"),
    .flag("help", "show this help"),
  ]

  static let help = helpText(
    usage: "host plugins list | describe LIB | validate LIB [options]",
    summary: """
      list      one line per plugin on the search path: file, id, version, kinds
      describe  a plugin's descriptor and its config keys with their defaults
      validate  a conformance run on synthetic updates, isolated in a child process;
                exit status 0 when every check passes, 1 with one line per failure
      LIB is a path or a bare file name (libFedAvg.so, or just FedAvg).
      """,
    specs: specs)

  static func run(_ arguments: ArraySlice<String>) throws -> Int32 {
    let options = try ParsedOptions(arguments, specs: specs, command: "plugins")
    if options.has("help") || options.positionals.isEmpty {
      print(help)
      return options.has("help") ? 0 : 2
    }
    let searchPath = PluginSearchPath.standard(explicit: options.all("plugin-path"))
    let action = options.positionals[0]
    let target = options.positionals.dropFirst().first
    switch action {
    case "list":
      PluginCatalog.list(searchPath: searchPath).forEach { print($0) }
      return 0
    case "describe":
      let library = try PluginLibrary.open(try required(target, for: action), searchPath: searchPath)
      PluginCatalog.describe(library).forEach { print($0) }
      return 0
    case "validate":
      let library = try PluginLibrary.open(try required(target, for: action), searchPath: searchPath)
      if options.has("in-process") {
        return PluginValidation.runChild(library: library) ? 0 : 1
      }
      let timeout = try options.number("timeout") ?? 30
      let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
      let report = try PluginValidation.runParent(
        executable: executable, arguments: ["plugins", "validate", "--in-process", library.path], timeout: timeout)
      print("validating \(library.descriptor.id) \(library.descriptor.version) (\(library.path))")
      report.lines.forEach { print($0) }
      let total = report.passed + report.failures
      print(report.succeeded ? "validate: all \(total) checks passed" : "validate: \(report.failures) of \(total) checks failed")
      return report.succeeded ? 0 : 1
    case "serve":  // hidden: the child process of an isolated plugin instance
      return PluginServer.run(library: try PluginLibrary.open(try required(target, for: action), searchPath: searchPath))
    default:
      throw UsageError("unknown plugins action \"\(action)\" (expected list, describe or validate)")
    }
  }

  private static func required(_ target: String?, for action: String) throws -> String {
    guard let target else { throw UsageError("plugins \(action) needs a plugin: a path or a file name") }
    return target
  }
}
