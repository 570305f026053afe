import Foundation
import Synchronization

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

  private static let standardSetting = Mutex<PluginIsolation>(fromEnvironment())

  /// What `PluginLibrary.makeInstance` uses when not told, so that every instance a run creates
  /// gets the same isolation without threading it through each layer: the environment's
  /// `FEDHOST_ISOLATION` (`none`, `process` or `process:SECONDS`), else `.none`, until a
  /// program sets it.
  public static var standard: PluginIsolation {
    get { standardSetting.withLock { $0 } }
    set { standardSetting.withLock { $0 = newValue } }
  }

  /// `FEDHOST_ISOLATION` parsed; an unusable value is reported on stderr and ignored.
  static func fromEnvironment() -> PluginIsolation {
    guard let value = ProcessInfo.processInfo.environment["FEDHOST_ISOLATION"], !value.isEmpty else { return .none }
    if let isolation = parse(value) { return isolation }
    FileHandle.standardError.write(Data(
      "host: FEDHOST_ISOLATION=\(value) ignored: expected none, process or process:SECONDS (SECONDS > 0)\n".utf8))
    return .none
  }

  static func parse(_ value: String) -> PluginIsolation? {
    if value == "none" { return PluginIsolation.none }
    if value == "process" { return .process() }
    guard value.hasPrefix("process:"), let seconds = Double(value.dropFirst(8)), seconds > 0, seconds.isFinite
    else { return nil }
    return .process(callTimeout: seconds)
  }
}
