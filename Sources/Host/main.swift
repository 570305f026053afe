import FedHostCore
import Foundation

// The `host` executable: argument parsing and one library call per command.

let topLevelHelp = """
  FedHost \(fedHostVersion): federated learning on small sensor models, with aggregation and
  initialization strategies loaded as C-ABI plugins.

  usage:
    host plugins list | describe LIB | validate LIB   inspect and check strategy plugins
    host --help | --version

  Plugins are found by path, or by file name in --plugin-path, FEDHOST_PLUGIN_PATH, then the
  directory of the host binary. `host COMMAND --help` describes each command.
  """

func runHost(_ arguments: [String]) -> Int32 {
  let rest = arguments.dropFirst()
  do {
    switch rest.first {
    case "plugins": return try PluginsCommand.run(rest.dropFirst())
    case "--version": print("fedhost \(fedHostVersion) (plugin ABI \(hostABIMajor).\(hostABIMinor))"); return 0
    case "--help", "-h", "help", nil: print(topLevelHelp); return rest.isEmpty ? 2 : 0
    case let other?: throw UsageError("unknown command \"\(other)\" (see `host --help`)")
    }
  } catch let error as UsageError {
    FileHandle.standardError.write(Data("host: \(error)\n".utf8))
    return 2
  } catch {
    FileHandle.standardError.write(Data("host: error: \(error)\n".utf8))
    return 1
  }
}

exit(runHost(CommandLine.arguments))
