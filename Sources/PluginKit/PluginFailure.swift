import PluginAPI

/// A failure a plugin reports to the host: a status code plus a one-line message.
///
/// Throw it from any plugin method; the boundary wrappers in `PluginExport` turn it into the
/// returned `fhp_status` and the text `last_error` hands out. Any other Swift error that
/// escapes a plugin method is reported as `FHP_E_INTERNAL` with its description.
public struct PluginFailure: Error, CustomStringConvertible, Sendable {
  public let status: fhp_status
  public let message: String

  public init(status: fhp_status, message: String) {
    self.status = status
    self.message = message
  }

  public var description: String { message }

  /// Bad argument or config (`FHP_E_INVALID`).
  public static func invalid(_ message: String) -> PluginFailure { .init(status: PluginStatus.invalid, message: message) }
  /// The call is not meaningful for this plugin (`FHP_E_UNSUPPORTED`).
  public static func unsupported(_ message: String) -> PluginFailure {
    .init(status: PluginStatus.unsupported, message: message)
  }
  /// Saved state of an incompatible format version (`FHP_E_VERSION`).
  public static func version(_ message: String) -> PluginFailure { .init(status: PluginStatus.version, message: message) }
  /// An allocation failed (`FHP_E_NOMEM`).
  public static func noMemory(_ message: String) -> PluginFailure { .init(status: PluginStatus.noMemory, message: message) }
  /// A host callback failed (`FHP_E_HOST`); `message` should carry the host's own text.
  public static func host(_ message: String) -> PluginFailure { .init(status: PluginStatus.host, message: message) }
  /// Saved state is truncated, corrupt or foreign (`FHP_E_STATE`).
  public static func state(_ message: String) -> PluginFailure { .init(status: PluginStatus.state, message: message) }
  /// A non-finite input, or an output that would not be finite (`FHP_E_NUMERIC`).
  public static func numeric(_ message: String) -> PluginFailure { .init(status: PluginStatus.numeric, message: message) }
  /// A plugin bug (`FHP_E_INTERNAL`).
  public static func `internal`(_ message: String) -> PluginFailure {
    .init(status: PluginStatus.internalError, message: message)
  }
}

/// The header's status codes as `fhp_status` (C's anonymous enums import as `Int`).
public enum PluginStatus {
  public static let ok = fhp_status(FHP_OK)
  public static let invalid = fhp_status(FHP_E_INVALID)
  public static let unsupported = fhp_status(FHP_E_UNSUPPORTED)
  public static let version = fhp_status(FHP_E_VERSION)
  public static let noMemory = fhp_status(FHP_E_NOMEM)
  public static let host = fhp_status(FHP_E_HOST)
  public static let state = fhp_status(FHP_E_STATE)
  public static let numeric = fhp_status(FHP_E_NUMERIC)
  public static let internalError = fhp_status(FHP_E_INTERNAL)
}
