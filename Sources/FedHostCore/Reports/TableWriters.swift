import Foundation

/// Table-I-style renderings of a `ComparisonReport`: per device accuracy and F1, their
/// average, as mean ± std over seeds, in percent.
public enum TableWriters {
  /// Above this many devices the table shows the average and the worst device instead of a
  /// column pair per device (the CSV and JSON keep every device).
  public static let maxDeviceColumns = 8

  public static func markdown(_ report: ComparisonReport) -> String {
    let perDevice = report.devices.count <= maxDeviceColumns
    let multiSeed = report.seeds.count > 1
    func cell(_ values: [Double]) -> String {
      let (mean, std) = meanAndStandardDeviation(values)
      return multiSeed ? String(format: "%.2f ± %.2f", mean * 100, std * 100) : String(format: "%.2f", mean * 100)
    }
    var header = ["Method", "Stage"]
    if perDevice {
      for device in report.devices { header += ["\(device.name) acc", "\(device.name) F1"] }
    }
    header += ["Average acc", "Average F1"] + (perDevice ? [] : ["Worst device acc", "Worst device F1"])
    let seeds = report.seeds.map(String.init).joined(separator: ", ")
    let caption = multiSeed
      ? "Test accuracy and F1 (%), mean ± std over \(report.seeds.count) seeds (seeds \(seeds))."
      : "Test accuracy and F1 (%) (seed \(seeds))."
    var lines = ["# \(report.title)", "", caption, "",
                 "| " + header.joined(separator: " | ") + " |",
                 "|" + header.indices.map { $0 < 2 ? " --- |" : " ---: |" }.joined()]
    for method in report.methods {
      var row = [method.method, method.stage]
      if let failure = method.failure {
        row += Array(repeating: "—", count: header.count - 2)
        row[1] = "\(method.stage): **failed**: \(failure.replacingOccurrences(of: "|", with: "\\|"))"
      } else {
        if perDevice {
          for device in report.devices.indices { row += [cell(method.accuracy[device]), cell(method.f1[device])] }
        }
        row += [cell(method.averageAccuracyPerSeed), cell(method.averageF1PerSeed)]
        if !perDevice {
          // The device whose mean over seeds is lowest, with its spread over seeds.
          func worst(_ scores: [[Double]]) -> String {
            cell(scores.min { meanAndStandardDeviation($0).mean < meanAndStandardDeviation($1).mean } ?? [])
          }
          row += [worst(method.accuracy), worst(method.f1)]
        }
      }
      lines.append("| " + row.joined(separator: " | ") + " |")
    }
    if !perDevice {
      lines += ["", "\(report.devices.count) devices: every device's scores are in report.csv and report.json."]
    }
    if report.devices.contains(where: { $0.widthRate != 1 }) {
      lines += ["", "| Device | Width rate | Parameters |", "| --- | ---: | ---: |"]
      lines += report.devices.map { "| \($0.name) | \($0.widthRate) | \($0.parameterCount) |" }
    }
    lines += strategyMetricLines(report)
    if !report.notes.isEmpty { lines += [""] + report.notes.map { "- " + $0 } }
    return lines.joined(separator: "\n") + "\n"
  }

  /// What aggregators reported through report_metric (ABI 1.2), at each method's last round,
  /// mean ± std over seeds; every round's values are in report.json's curves.
  private static func strategyMetricLines(_ report: ComparisonReport) -> [String] {
    var rows: [String] = []
    for method in report.curves.map(\.method).reduce(into: [String](), { if !$0.contains($1) { $0.append($1) } }) {
      let runs = report.curves.filter { $0.method == method }
      let keys = Set(runs.flatMap { $0.strategyMetrics?.keys.map { $0 } ?? [] }).sorted()
      for key in keys {
        let finals = runs.compactMap { $0.strategyMetrics?[key]?.last ?? nil }
        guard !finals.isEmpty else { continue }
        let (mean, std) = meanAndStandardDeviation(finals)
        let value = finals.count > 1 ? String(format: "%.6g ± %.2g", mean, std) : String(format: "%.6g", mean)
        rows.append("| \(method) | \(key) | \(value) | \(finals.count) |")
      }
    }
    guard !rows.isEmpty else { return [] }
    return ["", "Metrics the aggregators reported, last round (mean ± std over seeds):", "",
            "| Method | Metric | Value | Seeds |", "| --- | --- | ---: | ---: |"] + rows
  }

  /// One row per method, stage, device and seed: easy to load into any analysis tool.
  public static func csv(_ report: ComparisonReport) -> String {
    var lines = ["method,stage,device,seed,accuracy,f1,status"]
    func quoted(_ text: String) -> String {
      text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
        ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
    for method in report.methods {
      if let failure = method.failure {
        lines.append([quoted(method.method), method.stage, "", "", "", "", quoted("failed: " + failure)]
          .joined(separator: ","))
        continue
      }
      for (deviceIndex, device) in report.devices.enumerated() {
        for (seedIndex, seed) in report.seeds.enumerated() {
          lines.append([quoted(method.method), method.stage, quoted(device.name), String(seed),
                        String(format: "%.6f", method.accuracy[deviceIndex][seedIndex]),
                        String(format: "%.6f", method.f1[deviceIndex][seedIndex]), "ok"].joined(separator: ","))
        }
      }
    }
    return lines.joined(separator: "\n") + "\n"
  }

  public static func json(_ report: ComparisonReport) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                  nan: "nan")
    return try encoder.encode(report)
  }
}
