import FedHostCore
import Foundation
import Testing

/// The real datasets in ../shared/data, checked against the counts in its README.
@Suite("Data: real files")
struct DataRealFilesTests {
  private func read(_ name: String) throws -> CSVTable {
    try CSVTable(contentsOf: DataTestSupport.dataDirectory.appendingPathComponent(name))
  }

  @Test func ai4i2020() throws {
    let table = try read("ai4i2020.csv")
    #expect(table.columnNames.first == "UDI")  // the BOM is gone
    let data = try Self.ai4iSpec.makeDataset(from: table)
    #expect(data.samples.count == 10_000)
    #expect(data.classCounts == [9_661, 339])
    #expect(data.featureNames == ["Type=H", "Type=L", "Type=M", "Air temperature [K]", "Process temperature [K]",
                                  "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]", "pad1"])
    let typeCounts = (0..<3).map { column in
      (0..<data.samples.count).reduce(0) { $0 + Int(data.samples.features[$1 * 9 + column]) }
    }
    #expect(typeCounts == [1_003, 6_000, 2_997])
    let byType = Partitioner.byValue(try table.textColumn("Type"))
    #expect(byType.map(\.value) == ["H", "L", "M"])
    #expect(byType.map(\.rows.count) == [1_003, 6_000, 2_997])
  }

  @Test func electricalDetect() throws {
    let table = try read("electrical_detect.csv")
    #expect(table.columnNames == ["Output (S)", "Ia", "Ib", "Ic", "Va", "Vb", "Vc"])  // the two empty columns are dropped
    let data = try DatasetSpec(label: .column("Output (S)"), padTo: 9).makeDataset(from: table)
    #expect(data.samples.count == 12_001)
    #expect(data.classCounts == [6_505, 5_496])
    #expect(data.samples.width == 9)
    #expect(data.samples.features[1 * 9 + 3] == Float(0.102))  // `1.02E-01` in row 2
  }

  @Test func electricalClass() throws {
    let data = try DatasetSpec(label: .bits(["G", "C", "B", "A"])).makeDataset(from: read("electrical_class.csv"))
    #expect(data.samples.count == 7_861)
    #expect(data.classNames == ["0000", "0110", "0111", "1001", "1011", "1111"])
    #expect(data.classCounts == [2_365, 1_004, 1_096, 1_129, 1_134, 1_133])
    #expect(data.featureNames == ["Ia", "Ib", "Ic", "Va", "Vb", "Vc"])
    let anyFault = try DatasetSpec(label: .bits(["G", "C", "B", "A"]), task: .binary)
      .makeDataset(from: read("electrical_class.csv"))
    #expect(anyFault.classCounts == [2_365, 5_496])
  }

  @Test func machineFailure() throws {
    let data = try DatasetSpec(label: .column("fail")).makeDataset(from: read("machine_failure.csv"))
    #expect(data.samples.count == 944)
    #expect(data.classCounts == [551, 393])
    #expect(data.samples.width == 9)
  }

  @Test func stratifiedSplitOfTheClassBlockedFileKeepsProportions() throws {
    let data = try DatasetSpec(label: .bits(["G", "C", "B", "A"])).makeDataset(from: read("electrical_class.csv"))
    let split = DeviceSplit(labels: data.samples.labels, fractions: SplitFractions(), seed: 3)
    let counts = data.classCounts
    let testCounts = data.samples.subset(split.test).classCounts(classCount: 6)
    for (total, test) in zip(counts, testCounts) { #expect(abs(Double(test) - 0.2 * Double(total)) <= 1) }
  }

  static let ai4iSpec = DatasetSpec(label: .column("Machine failure"),
                                    drop: ["UDI", "Product ID", "TWF", "HDF", "PWF", "OSF", "RNF"],
                                    categorical: ["Type"], padTo: 9)
}
