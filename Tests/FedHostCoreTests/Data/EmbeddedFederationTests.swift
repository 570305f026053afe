import FedHostCore
import Testing

@Suite("Data: embedded federation")
struct DataEmbeddedFederationTests {
  static let federation = EmbeddedFederation.make(seed: 0)

  private func positiveRate(_ dataset: LabelledDataset) -> Double {
    Double(dataset.classCounts[1]) / Double(dataset.samples.count)
  }

  @Test func deterministicFromTheSeed() {
    #expect(EmbeddedFederation.make(seed: 0) == Self.federation)
    #expect(EmbeddedFederation.make(seed: 1) != Self.federation)
  }

  @Test func devicesMimicThePapersDevices() {
    let devices = Self.federation.devices
    #expect(devices.map(\.name) == ["line-fault", "machine-failure"])
    #expect(devices.allSatisfy { $0.dataset.samples.width == 9 && $0.dataset.classNames == ["0", "1"] })
    #expect(devices[0].dataset.samples.count == 3_000)
    #expect((0.43...0.49).contains(positiveRate(devices[0].dataset)))
    #expect((800...1_100).contains(devices[1].dataset.samples.count))
    #expect(abs(positiveRate(devices[1].dataset) - 393.0 / 944.0) < 0.005)
    #expect(devices[0].dataset.featureNames.prefix(6) == ["Ia", "Ib", "Ic", "Va", "Vb", "Vc"])
  }

  @Test func pretrainingIsUnbalancedLikeAI4I() throws {
    let pretraining = try #require(Self.federation.pretraining)
    #expect(pretraining.samples.count == 5_000)
    #expect((0.02...0.06).contains(positiveRate(pretraining)))
    #expect(pretraining.featureNames.prefix(3) == ["Type=H", "Type=L", "Type=M"])
  }

  @Test func faultsRaiseCurrentsAndDepressVoltages() {
    let samples = Self.federation.devices[0].dataset.samples
    var current = [0.0, 0.0], voltage = [0.0, 0.0], rows = [0.0, 0.0]
    for row in 0..<samples.count {
      let label = Int(samples.labels[row]), values = samples.row(row).map(Double.init)
      current[label] += values[0..<3].map(abs).reduce(0, +)
      voltage[label] += values[3..<6].map(abs).reduce(0, +)
      rows[label] += 1
    }
    #expect(current[1] / rows[1] > 4 * current[0] / rows[0])
    #expect(voltage[1] / rows[1] < 0.8 * voltage[0] / rows[0])
  }

  @Test func machineFailureModesFollowThePublishedRules() throws {
    let table = SyntheticMachineFailure.table(processes: 4_000, seed: 3)
    let air = try table.numericColumn("Air temperature [K]"), process = try table.numericColumn("Process temperature [K]")
    let speed = try table.numericColumn("Rotational speed [rpm]"), heat = try table.numericColumn("HDF")
    let failure = try table.numericColumn("Machine failure")
    let modes = try ["TWF", "HDF", "PWF", "OSF", "RNF"].map { try table.numericColumn($0) }
    for row in 0..<table.rowCount {
      #expect((heat[row] == 1) == (process[row] - air[row] < 8.6 && speed[row] < 1380))
      #expect((failure[row] == 1) == modes.contains { $0[row] == 1 })
    }
    let airMean = air.reduce(0, +) / Double(air.count)
    #expect(abs(airMean - 300) < 0.1)
  }

  @Test func preparesLikeASpecFederation() {
    let prepared = Self.federation.prepare(seed: 0)
    #expect(prepared.inputWidth == 9)
    let device = prepared.devices[0]
    // Standardized on train: each real feature has mean ≈ 0 there, padding stays exactly 0.
    for column in 0..<9 {
      let values = (0..<device.train.count).map { Double(device.train.features[$0 * 9 + column]) }
      let mean = values.reduce(0, +) / Double(values.count)
      #expect(abs(mean) < 1e-4)
      if column >= 6 { #expect(values.allSatisfy { $0 == 0 }) }
    }
    #expect(prepared.pretraining != nil)
  }
}
