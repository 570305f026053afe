import FedHostCore
import Foundation
import Testing

/// `Examples/suite/`: every federation loads from `../shared/data`, the README lists each one,
/// and together they cover the skews the README claims.
@Suite("Data: the federation suite")
struct DataFederationSuiteTests {
  static let directory = DataTestSupport.examplesDirectory.appendingPathComponent("suite")
  static let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
    .filter { $0.hasSuffix(".json") }.sorted()

  private static func load(_ file: String) throws -> (FederationSpec, FederationData) {
    let spec = try FederationSpec.load(contentsOf: directory.appendingPathComponent(file))
    return (spec, try spec.loadData(dataDirectory: DataTestSupport.dataDirectory))
  }

  @Test func theReadmeListsEveryFederation() throws {
    #expect(Self.files.count >= 8)
    let readme = try String(contentsOf: Self.directory.appendingPathComponent("README.md"), encoding: .utf8)
    for file in Self.files { #expect(readme.contains("`\(file)`"), "Examples/suite/README.md does not list \(file)") }
  }

  @Test(arguments: files)
  func everyFederationLoads(file: String) throws {
    let (_, data) = try Self.load(file)
    #expect(data.devices.count >= 2)
    #expect(data.devices.allSatisfy { $0.dataset.samples.count > 0 })
  }

  @Test func theSuiteCoversLabelQuantityFeatureSkewScaleAndWidths() throws {
    var methods = [PartitionMethod]()
    var largest = 0
    var rates = Set<Double>()
    var classCounts = Set<Int>()
    for file in Self.files {
      let (spec, data) = try Self.load(file)
      if case .partitioned(let partition) = spec.devices { methods.append(partition.method) }
      largest = max(largest, data.devices.count)
      rates.formUnion(data.devices.map(\.modelRate))
      classCounts.insert(data.devices[0].dataset.classNames.count)
    }
    for alpha in [0.1, 0.5, 1] { #expect(methods.contains(.dirichlet(alpha: alpha)), "no Dirichlet(\(alpha)) label skew") }
    #expect(methods.contains { if case .quantity = $0 { return true } else { return false } })
    #expect(methods.contains { if case .column = $0 { return true } else { return false } })
    #expect(largest >= 100)
    #expect(rates.isSuperset(of: [1, 0.5, 0.25]))
    #expect(classCounts.isSuperset(of: [2, 6]))
  }
}
