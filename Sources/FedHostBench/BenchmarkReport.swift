import Foundation

/// Renders benchmark rows: FedHost's figure, the peer's from the same run, their ratio.
enum BenchmarkReport {
  static func markdown(_ rows: [BenchmarkRow], machine: String) -> String {
    var lines = ["# FedHost benchmarks", "", machine, "",
                 "| section | measurement | unit | FedHost median | FedHost best | peer (same run) | peer median | ratio | note |",
                 "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- |"]
    for row in rows {
      let ratio = row.peerMedian.map { peer -> String in
        guard peer > 0, row.fedhostMedian > 0 else { return "–" }
        return String(format: "%.2f×", row.higherIsBetter ? row.fedhostMedian / peer : peer / row.fedhostMedian)
      } ?? "–"
      lines.append("| \(row.section) | \(row.name) | \(row.unit) | \(format(row.fedhostMedian)) | \(format(row.fedhostMin)) | "
                     + "\(row.peer ?? "–") | \(row.peerMedian.map(format) ?? "–") | \(ratio) | \(row.note ?? "") |")
    }
    lines += ["", "ratio: FedHost ÷ peer for rates, peer ÷ FedHost for times (> 1 means FedHost is better)."]
    return lines.joined(separator: "\n") + "\n"
  }

  static func format(_ value: Double) -> String {
    switch abs(value) {
    case 1000...: String(format: "%.0f", value)
    case 10...: String(format: "%.1f", value)
    default: String(format: "%.3g", value)
    }
  }

  /// CPU model (with family and model numbers and cache sizes: VMs often report only "AMD EPYC",
  /// and the L2 size decides whether training's working set stays in cache), core count and
  /// kernel, for the table's header.
  static func machineDescription() -> String {
    let cpuInfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    func field(_ key: String) -> String? {
      cpuInfo.split(separator: "\n").first { $0.hasPrefix(key) }
        .flatMap { $0.split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) }
    }
    func cache(_ index: Int) -> String {
      let path = "/sys/devices/system/cpu/cpu0/cache/index\(index)/size"
      return (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
    }
    var name = utsname()
    uname(&name)
    let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    return "Machine: \(field("model name") ?? "unknown CPU") (family \(field("cpu family") ?? "?"), model "
      + "\(field("model\t") ?? "?"); L2 \(cache(2)) per core, L3 \(cache(3))), "
      + "\(ProcessInfo.processInfo.activeProcessorCount) cores, Linux \(release); "
      + "measured \(ISO8601DateFormatter().string(from: Date()))."
  }
}
