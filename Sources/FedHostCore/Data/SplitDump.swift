import Foundation

/// A federation's exact splits on disk, so that a reference in another language trains on
/// identical rows (`host splits`), and a spec can read them back (`splits_from`):
///
///     DIR/splits.json             format, seed, input width, classes, task, and per device its
///                                 directory, model rate and row indices (into its dataset) of
///                                 every part: train, validation, test (standard FL) and the
///                                 Fed-Meta-Align protocol's seven lists
///     DIR/<device>/train.csv      standardized features (fitted on the device's train part) and
///     DIR/<device>/validation.csv the class index as `label`, one file per standard FL part
///     DIR/<device>/test.csv
///
/// Pipelines add what only they know (the model's widths and initial parameters).
public enum SplitDump {
  public static let format = "fedhost-splits/1"
  static let partNames = ["train", "validation", "test", "phase1_support", "phase1_query", "phase2_support",
                          "phase2_query", "phase3_train", "phase3_validation"]

  /// The JSON object of `splits.json` (without the pipeline's keys) and the CSV files, by path
  /// relative to the dump directory.
  public static func contents(of data: FederationData, seed: UInt64) -> (json: [String: Any], files: [String: String]) {
    var devices: [[String: Any]] = []
    var files: [String: String] = [:]
    for index in data.devices.indices {
      let device = data.prepareForFL(device: index, seed: seed)
      let directory = fileName(forDevice: device.name)
      let split = device.split
      let lists = [split.flTrain, split.flValidation, split.test, split.phase1Support, split.phase1Query,
                   split.phase2Support, split.phase2Query, split.phase3Train, split.phase3Validation]
      devices.append(["name": device.name, "directory": directory, "model_rate": data.devices[index].modelRate,
                      "rows": Dictionary(uniqueKeysWithValues: zip(partNames, lists))])
      for (part, samples) in [("train", device.train), ("validation", device.validation), ("test", device.test)] {
        files["\(directory)/\(part).csv"] = csv(samples, featureNames: device.featureNames)
      }
    }
    let first = data.devices[0].dataset
    let json: [String: Any] = [
      "format": format, "seed": seed, "input_width": first.samples.width, "classes": first.classNames,
      "task": first.task.rawValue, "devices": devices,
    ]
    return (json, files)
  }

  private static func csv(_ samples: Samples, featureNames: [String]) -> String {
    var lines = [(featureNames + ["label"]).map(quoted).joined(separator: ",")]
    lines.reserveCapacity(samples.count + 1)
    for row in 0..<samples.count {
      let features = samples.row(row).map { "\($0)" }
      lines.append((features + [String(samples.labels[row])]).joined(separator: ","))
    }
    return lines.joined(separator: "\n") + "\n"
  }

  private static func quoted(_ field: String) -> String {
    field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
      ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : field
  }

  /// The dumped splits of every device of `data`, by name; errors name the dump file and key.
  static func readSplits(from directory: URL, for data: FederationData, spec: String) throws -> [String: DeviceSplit] {
    let url = directory.appendingPathComponent("splits.json")
    let file = url.path
    guard let bytes = try? Data(contentsOf: url) else {
      throw SpecError(file: spec, path: "splits_from", "cannot read \(file)")
    }
    let root = try SpecNode.parse(bytes, file: file).object(allowed: nil)
    guard try root.required("format").string() == format else {
      throw SpecError(file: file, path: "format", "expected \"\(format)\"")
    }
    var result: [String: DeviceSplit] = [:]
    let nodes = try root.required("devices").array()
    for node in nodes {
      let object = try node.object(allowed: nil)
      let name = try object.required("name").string()
      guard let device = data.devices.first(where: { $0.name == name }) else {
        throw node.child("name", .null).error("no device \"\(name)\" in \(spec)")
      }
      let rows = try object.required("rows").object(allowed: partNames)
      let rowCount = device.dataset.samples.count
      let lists = try partNames.map { part -> [Int] in
        let list = try rows.required(part)
        return try list.array().map { item in
          let row = try item.integer()
          guard (0..<rowCount).contains(row) else { throw item.error("row \(row) is outside 0..<\(rowCount)") }
          return row
        }
      }
      let fedMetaAlign = Set(lists[2...].joined()), fl = Set(lists[0..<3].joined())
      guard fl.count == lists[0..<3].map(\.count).reduce(0, +), fedMetaAlign.count == lists[2...].map(\.count).reduce(0, +),
            Set(lists[0] + lists[1]) == Set(lists[3...].joined()) else {
        throw node.child("rows", .null).error("parts overlap, or train + validation is not the Phase 1–3 rows")
      }
      result[name] = DeviceSplit(test: lists[2], phase1Support: lists[3], phase1Query: lists[4], phase2Support: lists[5],
                                 phase2Query: lists[6], phase3Train: lists[7], phase3Validation: lists[8],
                                 flTrain: lists[0], flValidation: lists[1])
    }
    for device in data.devices where result[device.name] == nil {
      throw SpecError(file: file, path: "devices", "has no splits for device \"\(device.name)\"")
    }
    return result
  }
}
