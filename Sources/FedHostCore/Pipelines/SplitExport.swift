import Foundation

/// `host splits`: a federation's exact splits for one seed (see `SplitDump` for the layout),
/// plus the model's widths and the seeded initial global model, so that a reference in another
/// language trains on identical rows from identical weights.
public enum SplitExport {
  /// Writes the dump into `directory`; returns the files written. Refuses a directory that
  /// already holds a dump unless `force`.
  @discardableResult
  public static func write(_ data: FederationData, settings: RunSettings, seed: UInt64, to directory: String,
                           force: Bool) throws -> [String] {
    let index = directory + "/splits.json"
    if !force && FileManager.default.fileExists(atPath: index) {
      throw OutputDirectoryError("--out \(directory) already holds a split dump: choose another directory or add --force")
    }
    let run = try StandardFLRun(data, settings: settings, seed: seed)
    var (json, files) = SplitDump.contents(of: data, seed: seed)
    json["protocol"] = settings.protocolKind.rawValue
    json["hidden_widths"] = settings.hiddenWidths
    let model = run.engine.initialModel()
    let initial: [String: Any] = ["widths": run.engine.architecture.widths, "parameters": model.buffer.map(Double.init)]
    files["initial-model.json"] = String(decoding: try JSONSerialization.data(withJSONObject: initial), as: UTF8.self)
    files["splits.json"] = String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]),
                                  as: UTF8.self)
    // splits.json last: a reader that finds it finds every file it names.
    for path in files.keys.sorted() where path != "splits.json" { try AtomicFile.write(files[path]!, to: directory + "/" + path) }
    try AtomicFile.write(files["splits.json"]!, to: index)
    return files.keys.sorted()
  }
}
