import FedHostCore
import Testing

@Suite("Data: splits")
struct DataSplitTests {
  /// 103 / 47 / 20 rows of classes 0 / 1 / 2, stored class by class like the electrical files.
  static let labels: [Int32] = Array(repeating: 0, count: 103) + Array(repeating: 1, count: 47) + Array(repeating: 2, count: 20)

  private func counts(_ rows: [Int]) -> [Int] {
    var counts = [0, 0, 0]
    for row in rows { counts[Int(Self.labels[row])] += 1 }
    return counts
  }

  /// Every class of `part` holds within one row of `fraction` of that class in `parent`.
  private func expectStratified(_ part: [Int], _ fraction: Double, of parent: [Int],
                                sourceLocation: SourceLocation = #_sourceLocation) {
    for (inPart, inParent) in zip(counts(part), counts(parent)) {
      #expect(abs(Double(inPart) - fraction * Double(inParent)) <= 1, sourceLocation: sourceLocation)
    }
  }

  @Test func deviceSplitIsDisjointAndCoversEveryRow() {
    let split = DeviceSplit(labels: Self.labels, fractions: SplitFractions(), seed: 1)
    let all = split.test + split.train
    #expect(all.count == Self.labels.count)
    #expect(Set(all) == Set(Self.labels.indices))
  }

  @Test func everyLevelIsStratified() {
    let fractions = SplitFractions()
    let split = DeviceSplit(labels: Self.labels, fractions: fractions, seed: 2)
    let all = Array(Self.labels.indices)
    expectStratified(split.test, 0.2, of: all)
    let phase1 = split.phase1Support + split.phase1Query
    let phase2 = split.phase2Support + split.phase2Query
    let phase3 = split.phase3Train + split.phase3Validation
    expectStratified(phase1, 0.2, of: split.train)
    expectStratified(phase2, 0.5, of: split.train)
    expectStratified(phase3, 0.3, of: split.train)
    expectStratified(split.phase1Support, fractions.support, of: phase1)
    expectStratified(split.phase2Support, fractions.support, of: phase2)
    expectStratified(split.phase3Validation, 0.2, of: phase3)
  }

  @Test func sameSeedSameSplitOtherSeedOtherSplit() {
    let fractions = SplitFractions(support: 0.3)
    let first = DeviceSplit(labels: Self.labels, fractions: fractions, seed: 42)
    #expect(first == DeviceSplit(labels: Self.labels, fractions: fractions, seed: 42))
    #expect(first != DeviceSplit(labels: Self.labels, fractions: fractions, seed: 43))
    #expect(first.phase1Support.count == counts(first.phase1Support).reduce(0, +))
  }

  @Test func fractionsAreConfigurable() {
    let fractions = SplitFractions(test: 0.5, phase1: 0, phase2: 0.5, phase3: 0.5, support: 0.5, validation: 0.5)
    let split = DeviceSplit(labels: Self.labels, fractions: fractions, seed: 5)
    #expect(split.phase1Support.isEmpty && split.phase1Query.isEmpty)
    expectStratified(split.test, 0.5, of: Array(Self.labels.indices))
  }

  @Test func blockModeHoldsOutWholeContiguousBlocks() {
    let split = DeviceSplit(labels: Self.labels, fractions: SplitFractions(mode: .blocks(10)), seed: 9)
    // 170 rows in 10 blocks of 17; round(10 × 0.2) = 2 blocks held out.
    #expect(split.test.count == 34)
    let blocks = Set(split.test.map { $0 / 17 })
    #expect(blocks.count == 2)
    #expect(Set(split.test) == Set(blocks.flatMap { ($0 * 17)..<(($0 + 1) * 17) }))
    #expect(Set(split.test + split.train) == Set(Self.labels.indices))
  }

  @Test func splitModeParsesItsSpelling() {
    #expect(SplitMode("stratified") == .stratified)
    #expect(SplitMode("blocks:12") == .blocks(12))
    #expect(SplitMode("blocks:1") == nil)
    #expect(SplitMode("blocks") == nil)
    #expect(SplitMode.blocks(4).description == "blocks:4")
  }

  @Test func stratifiedPartsOfSamplesKeepRows() {
    let samples = Samples(features: Self.labels.indices.map(Float.init), labels: Self.labels, width: 1)
    let parts = samples.stratifiedParts([0.2, 0.8], seed: 4)
    #expect(parts.map(\.count).reduce(0, +) == samples.count)
    #expect(Set(parts.flatMap(\.features)) == Set(samples.features))
    #expect(parts[0].classCounts(classCount: 3) == [21, 9, 4])
  }

  @Test func badFractionsAreReported() {
    #expect(SplitFractions().problem == nil)
    #expect(SplitFractions(phase3: 0.2).problem == "phase1 + phase2 + phase3 must be 1, not 0.9")
    #expect(SplitFractions(test: 1).problem == "test must be between 0 and 1 (exclusive)")
  }
}

@Suite("Data: standardizer")
struct DataStandardizerTests {
  @Test func fitsOnTrainingRowsOnly() {
    // Columns: varying, constant, varying, zero padding.
    let train = Samples(features: [1, 10, 5, 0, 3, 10, 7, 0], labels: [0, 1], width: 4)
    let test = Samples(features: [5, 0, 6, 0], labels: [1], width: 4)
    let standardizer = Standardizer(fittedOn: train)
    #expect(standardizer.means == [2, 10, 6, 0])
    #expect(standardizer.scales == [1, 1, 1, 1])  // population σ 1, constant columns 1
    #expect(standardizer.apply(to: test).features == [3, -10, 0, 0])
    #expect(standardizer.apply(to: train).features == [-1, 0, -1, 0, 1, 0, 1, 0])
  }

  @Test func populationDeviation() {
    let standardizer = Standardizer(fittedOn: Samples(features: [0, 4, 8], labels: [0, 0, 1], width: 1))
    #expect(standardizer.means == [4])
    #expect(abs(standardizer.scales[0] - Float((32.0 / 3).squareRoot())) < 1e-6)
  }

  @Test func preparedDeviceScalesWithItsTrainingStatistics() {
    // Row r has features (r, r², 0 padding); the test rows must not move the statistics.
    let rows = 40
    var features = [Float]()
    for row in 0..<rows { features += [Float(row), Float(row * row), 0] }
    let labels = (0..<rows).map { Int32($0 % 2) }
    let dataset = LabelledDataset(name: "tiny", samples: Samples(features: features, labels: labels, width: 3),
                                  featureNames: ["x", "x²", "pad1"], classNames: ["0", "1"], task: .binary,
                                  paddingWidth: 1)
    let device = PreparedDevice(FederatedDevice(name: "tiny", dataset: dataset), fractions: SplitFractions(), seed: 7)
    let trainRows: [Double] = device.split.train.map(Double.init)
    let mean: Double = trainRows.reduce(0, +) / Double(trainRows.count)
    let squares: Double = trainRows.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
    let deviation = (squares / Double(trainRows.count)).squareRoot()
    #expect(abs(Double(device.standardizer.means[0]) - mean) < 1e-4)
    #expect(abs(Double(device.standardizer.scales[0]) - deviation) < 1e-4)
    for (position, row) in device.split.test.enumerated() {
      #expect(abs(Double(device.test.row(position).first!) - (Double(row) - mean) / deviation) < 1e-4)
      #expect(device.test.row(position).last == 0)
    }
    #expect(device.train.count + device.test.count == rows)
    let phaseRows = [device.phase1.combined, device.phase2.combined, device.phase3Train, device.phase3Validation]
    #expect(phaseRows.map(\.count).reduce(0, +) == device.train.count)
  }
}
