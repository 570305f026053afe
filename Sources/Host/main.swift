import FedHostCore
import Foundation

// The `host` executable: argument parsing and one library call per command.

let topLevelHelp = """
  FedHost \(fedHostVersion): federated learning on small sensor models, with aggregation and
  initialization strategies loaded as C-ABI plugins.

  usage:
    host [run] --aggregator LIB [options]             the Fed-Meta-Align protocol + baselines, one seed
    host compare --aggregators LIST [--seeds N]       strategies side by side over seeds, with plots
    host plugins list | describe LIB | validate LIB   inspect and check strategy plugins
    host export --model FILE --format tflite|c-array --out FILE   int8 model for TFLite (Micro)
    host splits --out DIR [--federation FILE]         dump the exact splits for outside references
    host --help | --version

  Quick start:  host --aggregator libSimilarityAware.so

  Plugins are found by path, or by file name in --plugin-path, FEDHOST_PLUGIN_PATH, then the
  directory of the host binary. `host COMMAND --help` describes each command.
  """

func runHost(_ arguments: [String]) -> Int32 {
  let rest = arguments.dropFirst()
  do {
    switch rest.first {
    case "plugins": return try PluginsCommand.run(rest.dropFirst())
    case "run": return try RunCommand.run(rest.dropFirst())
    case "compare": return try CompareCommand.run(rest.dropFirst())
    case "export": return try ExportCommand.run(rest.dropFirst())
    case "splits": return try SplitsCommand.run(rest.dropFirst())
    case let option? where option.hasPrefix("--") && option != "--help" && option != "--version":
      return try RunCommand.run(rest)
    case "--version": print("fedhost \(fedHostVersion) (plugin ABI \(hostABIMajor).\(hostABIMinor))"); return 0
    case "--help", "-h", "help", nil: print(topLevelHelp); return rest.isEmpty ? 2 : 0
    case let other?: throw UsageError("unknown command \"\(other)\" (see `host --help`)")
    }
  } catch let error as UsageError {
    FileHandle.standardError.write(Data("host: \(error)\n".utf8))
    return 2
  } catch let error as InputError {
    // A bad data, spec or model file is the caller's to fix, like a bad flag.
    FileHandle.standardError.write(Data("host: \(error)\n".utf8))
    return 2
  } catch {
    FileHandle.standardError.write(Data("host: error: \(error)\n".utf8))
    return 1
  }
}

exit(runHost(CommandLine.arguments))
