import Glibc

/// Everything that can go wrong between the host and a plugin, each a one-line message
/// naming the file and, where known, the plugin id or symbol.
public enum PluginError: Error, CustomStringConvertible, Equatable, Codable {
  /// The plugin itself broke (crashed, exited, hung, wrote bad output, its process failed), as
  /// opposed to a mistake in how it was named or configured: a run reports that strategy failed
  /// and goes on with the others.
  public var isFault: Bool {
    switch self {
    case .badOutput, .crashed, .exited, .timedOut, .instanceDead, .isolationFailed: true
    default: false
    }
  }

  /// A bare name was not found in any search directory.
  case notFound(name: String, searched: [String])
  /// dlopen refused the file (not an ELF shared object, wrong architecture, missing deps).
  case notLoadable(path: String, reason: String)
  /// The library has no `fedhost_plugin_entry`.
  case missingEntry(path: String)
  /// The plugin was built for another ABI major version.
  case abiMismatch(path: String, pluginMajor: UInt32, pluginMinor: UInt32)
  /// The entry point answered with something unusable (NULL tables, missing required calls).
  case malformed(path: String, reason: String)
  /// The plugin does not implement the kind the caller needs (e.g. an initializer).
  case wrongKind(path: String, id: String, wanted: PluginKinds, has: PluginKinds)
  /// `create` failed; the plugin's own message is kept.
  case createFailed(path: String, id: String, message: String)
  /// A call on an instance failed with a status and the plugin's message.
  case callFailed(id: String, function: String, status: Int32, message: String)
  /// The host refused to pass the call (bad lengths etc.) before reaching the plugin.
  case invalidArgument(id: String, function: String, reason: String)
  /// A call returned OK but an output fails the host's check (an element left unwritten, a
  /// non-finite value); `problem` names the element.
  case badOutput(path: String, function: String, problem: String)
  /// The child plugin-host process of an isolated instance died of a signal during a call.
  case crashed(path: String, function: String, signal: Int32)
  /// The child plugin-host process exited (the plugin called exit) during a call.
  case exited(path: String, function: String, status: Int32)
  /// A call on an isolated instance got no answer within the time limit; the child was killed.
  case timedOut(path: String, function: String, seconds: Double)
  /// A call on an isolated instance whose child already died (`cause` says how).
  case instanceDead(path: String, function: String, cause: String)
  /// The child plugin-host process could not be started or broke the protocol.
  case isolationFailed(path: String, function: String, reason: String)

  public var description: String {
    switch self {
    case let .notFound(name, searched):
      let places = searched.isEmpty ? "(no search directories)" : searched.joined(separator: ", ")
      return "plugin \"\(name)\" not found; searched: \(places)"
    case let .notLoadable(path, reason):
      return "\(path): not a loadable shared object (\(reason))"
    case let .missingEntry(path):
      return "\(path): no symbol \"\(entrySymbolName)\": not a FedHost plugin"
    case let .abiMismatch(path, major, minor):
      return "\(path): plugin ABI \(major).\(minor) is incompatible with host ABI "
        + "\(hostABIMajor).\(hostABIMinor) (major versions differ)"
    case let .malformed(path, reason):
      return "\(path): malformed plugin: \(reason)"
    case let .wrongKind(path, id, wanted, has):
      return "\(path) (\(id)) is not \(wanted.articleName); it provides: \(has)"
    case let .createFailed(path, id, message):
      return "\(path) (\(id)): create failed: \(message)"
    case let .callFailed(id, function, status, message):
      return "\(id): \(function) failed (\(statusName(status))): \(message)"
    case let .invalidArgument(id, function, reason):
      return "\(id): \(function): \(reason)"
    case let .badOutput(path, function, problem):
      return "\(path): \(function) returned OK but \(problem)"
    case let .crashed(path, function, signal):
      return "\(path): the plugin crashed in \(function) (signal \(signal), \(signalName(signal))); its process was reaped"
    case let .exited(path, function, status):
      return "\(path): the plugin's process exited with status \(status) during \(function)"
    case let .timedOut(path, function, seconds):
      return "\(path): \(function) did not return within \(seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)) s; the plugin's process was killed"
    case let .instanceDead(path, function, cause):
      return "\(path): \(function) refused: this plugin instance is dead (\(cause))"
    case let .isolationFailed(path, function, reason):
      return "\(path): \(function): plugin process failed: \(reason)"
    }
  }
}

/// The name of a signal that ends processes, for messages ("SIGSEGV").
public func signalName(_ signal: Int32) -> String {
  switch signal {
  case SIGSEGV: "SIGSEGV"
  case SIGABRT: "SIGABRT"
  case SIGBUS: "SIGBUS"
  case SIGFPE: "SIGFPE"
  case SIGILL: "SIGILL"
  case SIGTRAP: "SIGTRAP"
  case SIGKILL: "SIGKILL"
  case SIGTERM: "SIGTERM"
  case SIGSYS: "SIGSYS"
  default: "signal \(signal)"
  }
}

/// The C name of a status code, for messages.
public func statusName(_ status: Int32) -> String {
  switch status {
  case 0: "FHP_OK"
  case -1: "FHP_E_INVALID"
  case -2: "FHP_E_UNSUPPORTED"
  case -3: "FHP_E_VERSION"
  case -4: "FHP_E_NOMEM"
  case -5: "FHP_E_HOST"
  case -6: "FHP_E_STATE"
  case -7: "FHP_E_NUMERIC"
  case -99: "FHP_E_INTERNAL"
  default: "status \(status)"
  }
}
