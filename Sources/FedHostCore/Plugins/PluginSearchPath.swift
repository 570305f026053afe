import Foundation

/// Where bare plugin names (`libFedAvg.so`) are looked up, in order: `--plugin-path`
/// directories, then `FEDHOST_PLUGIN_PATH` (colon-separated), then the directory of the
/// running `host` binary — so `host --aggregator libSimilarityAware.so` works right after
/// `swift build`. A name containing "/" is a path and is used as given.
public struct PluginSearchPath: Sendable, Equatable {
  public var directories: [String]

  public init(directories: [String]) {
    var seen = Set<String>()
    self.directories = directories.filter { !$0.isEmpty && seen.insert($0).inserted }
  }

  /// The standard order: explicit directories, the environment variable, the executable's
  /// directory.
  public static func standard(explicit: [String] = [],
                              environment: [String: String] = ProcessInfo.processInfo.environment,
                              executableDirectory: String? = currentExecutableDirectory())
    -> PluginSearchPath
  {
    let fromEnvironment = environment["FEDHOST_PLUGIN_PATH"]?.split(separator: ":").map(String.init) ?? []
    let explicitDirectories = explicit.flatMap { $0.split(separator: ":").map(String.init) }
    return PluginSearchPath(directories: explicitDirectories + fromEnvironment
                              + (executableDirectory.map { [$0] } ?? []))
  }

  /// Resolves `name` to an existing file. Bare names are tried as given and as `lib<name>.so`.
  public func resolve(_ name: String) throws -> String {
    if name.contains("/") {
      guard FileManager.default.fileExists(atPath: name) else {
        throw PluginError.notFound(name: name, searched: [])
      }
      return name
    }
    let candidates = name.hasSuffix(".so") ? [name] : [name, "lib\(name).so"]
    for directory in directories {
      for candidate in candidates {
        let path = (directory as NSString).appendingPathComponent(candidate)
        if FileManager.default.fileExists(atPath: path) { return path }
      }
    }
    throw PluginError.notFound(name: name, searched: directories)
  }

  /// Every `*.so` in the search directories, first occurrence of each file name wins.
  public func discover() -> [String] {
    var seenNames = Set<String>()
    var found: [String] = []
    for directory in directories {
      let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
      for name in names.sorted() where name.hasSuffix(".so") && seenNames.insert(name).inserted {
        found.append((directory as NSString).appendingPathComponent(name))
      }
    }
    return found
  }
}

/// The directory holding the running executable (from /proc/self/exe).
public func currentExecutableDirectory() -> String? {
  guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
    return nil
  }
  return (path as NSString).deletingLastPathComponent
}
