import FedHostCore
import Testing

@Suite("Reports: the Markdown table")
struct TableWriterTests {
  private func report(devices: Int) -> ComparisonReport {
    let infos = (0..<devices).map { DeviceInfo(name: "d\($0)", widthRate: 1, parameterCount: 10) }
    // Device i scores 0.5 + i/100 on seed 0 and 0.5 + i/50 on seed 1.
    let accuracy: [[Double]] = (0..<devices).map { device in
      let shift = Double(device)
      return [0.5 + shift / 100, 0.5 + shift / 50]
    }
    return ComparisonReport(title: "t", seeds: [0, 1], devices: infos,
                            methods: [MethodResult(method: "FedAvg", stage: "global", accuracy: accuracy, f1: accuracy)],
                            curves: [], notes: [])
  }

  @Test func fewDevicesGetAColumnPairEach() {
    let text = TableWriters.markdown(report(devices: 2))
    #expect(text.contains("| Method | Stage | d0 acc | d0 F1 | d1 acc | d1 F1 | Average acc | Average F1 |"))
    #expect(text.contains("| FedAvg | global | 50.00 ± 0.00 | 50.00 ± 0.00 | 51.50 ± 0.71 | 51.50 ± 0.71 | 50.75 ± 0.35 | 50.75 ± 0.35 |"))
  }

  @Test func manyDevicesGetTheAverageAndTheWorstDevice() {
    let text = TableWriters.markdown(report(devices: TableWriters.maxDeviceColumns + 1))
    #expect(text.contains("| Method | Stage | Average acc | Average F1 | Worst device acc | Worst device F1 |"))
    // Average over 9 devices: seed 0 0.54, seed 1 0.58; the worst device is d0 (0.5 on both seeds).
    #expect(text.contains("| FedAvg | global | 56.00 ± 2.83 | 56.00 ± 2.83 | 50.00 ± 0.00 | 50.00 ± 0.00 |"))
    #expect(text.contains("9 devices: every device's scores are in report.csv and report.json."))
    #expect(!text.contains("d3 acc"))
  }
}
