import Foundation

/// Where a plugin instance's calls run.
public enum PluginIsolation: Sendable, Equatable {
  /// In this process, through the plugin's vtable: a crash in the plugin is the host's crash.
  case none
  /// In a child plugin-host process (`host plugins serve`): a crash, abort, overrun or hang
  /// (no answer for `callTimeout` seconds) ends that instance with a `PluginError`, never the
  /// host. `hostExecutable` is the `host` binary to start (nil: this process's own executable,
  /// right when this process is `host`).
  case process(callTimeout: Double = PluginIsolation.defaultCallTimeout, hostExecutable: String? = nil)

  /// Seconds a call may go without an answer from the child before it counts as hung.
  public static let defaultCallTimeout: Double = 60

  /// Parses `none`, `process` or `process:SECONDS`.
  public static func parse(_ value: String) -> PluginIsolation? {
    if value == "none" { return PluginIsolation.none }
    if value == "process" { return .process() }
    guard value.hasPrefix("process:"), let seconds = Double(value.dropFirst(8)), seconds > 0, seconds.isFinite
    else { return nil }
    return .process(callTimeout: seconds)
  }
}
