import Foundation
import Glibc

/// Text for `host plugins list` and `host plugins describe`.
public enum PluginCatalog {
  /// One line per `.so` on the search path: file, name, id, version, ABI, kinds — or why it is
  /// not a plugin (FedHost's own engine library is named as such).
  public static func list(searchPath: PluginSearchPath) -> [String] {
    let files = searchPath.discover()
    guard !files.isEmpty else {
      return ["no plugins found; searched: " + searchPath.directories.joined(separator: ", ")]
    }
    let rows: [[String]] = files.map { path in
      let file = path.split(separator: "/").last.map(String.init) ?? path
      do {
        let d = try PluginLibrary.open(path, searchPath: searchPath).descriptor
        return [file, d.name, d.id, d.version, "\(d.abiMajor).\(d.abiMinor)", d.kinds.description]
      } catch PluginError.missingEntry where isEngineLibrary(path) {
        return [file, "-", "-", "-", "-", "the FedHost engine library (fedhost_engine.h), not a strategy plugin"]
      } catch {
        return [file, "-", "-", "-", "-", "not loadable: \(error)"]
      }
    }
    return alignedColumns([["FILE", "NAME", "ID", "VERSION", "ABI", "KINDS"]] + rows)
  }

  /// Whether `path` exports the engine library's version symbol.
  private static func isEngineLibrary(_ path: String) -> Bool {
    guard let handle = dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD) ?? dlopen(path, RTLD_LAZY | RTLD_LOCAL) else {
      return false
    }
    return dlsym(handle, "fhe_abi_version") != nil
  }

  /// The descriptor, the ABI it was built for, its file and every config key with its default.
  public static func describe(_ library: PluginLibrary) -> [String] {
    let d = library.descriptor
    var lines = [
      "\(d.name) \(d.version)  (\(d.id))",
      "file:   \(library.path)",
      "abi:    \(d.abiMajor).\(d.abiMinor) (host \(hostABIMajor).\(hostABIMinor))",
      "kinds:  \(d.kinds)",
    ]
    if d.auxDownVectors > 0 || d.auxUpVectors > 0 {
      lines.append("aux:    \(d.auxDownVectors) vector(s) down to each client, \(d.auxUpVectors) up, per round (needs an ABI 1.2 host)")
    }
    lines += [
      "about:  \(d.summary)",
      "config keys (JSON object; unknown keys are an error):",
    ]
    let keys = d.configKeys.contains { $0.key == "seed" } ? d.configKeys
      : d.configKeys + [PluginConfigKey(key: "seed", type: "integer", defaultJSON: "0",
                                        summary: "seed of the plugin's own random generator")]
    let rows = keys.map { ["  " + $0.key, $0.type, "default \($0.defaultJSON)", $0.summary] }
    lines += alignedColumns(rows)
    return lines
  }
}

/// Pads every column but the last to its widest cell.
func alignedColumns(_ rows: [[String]]) -> [String] {
  let columns = rows.map(\.count).max() ?? 0
  let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
  return rows.map { row in
    row.enumerated().map { column, cell in
      column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
    }.joined(separator: "  ")
  }
}
