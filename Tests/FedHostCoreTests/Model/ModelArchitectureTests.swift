import FedHostCore
import Testing

@Suite struct ModelArchitectureTests {
  @Test func paperModelHasTheDocumentedSizeAndLayout() {
    let paper = MLPArchitecture.paper
    #expect(paper.widths == [9, 256, 128, 64, 32, 16, 12, 8, 1])
    #expect(paper.parameterCount == 46_637)
    #expect(paper.layerCount == 8)
    #expect(paper.head == .sigmoidBinaryCrossEntropy)
    // Layer by layer: W [in][out] then bias.
    #expect(paper.layers[0].weightOffset == 0)
    #expect(paper.layers[0].biasOffset == 9 * 256)
    #expect(paper.layers[0].end == 9 * 256 + 256)
    #expect(paper.layers[1].weightOffset == paper.layers[0].end)
    #expect(paper.layers[7].end == 46_637)
    #expect(paper.prefixParameterCount(layers: 2) == paper.layers[1].end)
    #expect(paper.prefixParameterCount(layers: 0) == 0)
  }

  @Test func headFollowsTheOutputWidth() throws {
    #expect(try MLPArchitecture(widths: [4, 3]).head == .softmaxCrossEntropy(classCount: 3))
    #expect(try MLPArchitecture(widths: [4, 3]).classCount == 3)
    #expect(try MLPArchitecture(widths: [4, 1]).classCount == 2)
  }

  @Test func rejectsMalformedWidths() {
    #expect(throws: ModelError.self) { try MLPArchitecture(widths: [4]) }
    #expect(throws: ModelError.self) { try MLPArchitecture(widths: [4, 0, 1]) }
  }

  @Test func initializationIsSeededHeForHiddenAndGlorotForOutput() throws {
    let architecture = try MLPArchitecture(widths: [200, 300, 100])
    let parameters = architecture.initialParameters(seed: 7)
    #expect(bitPatterns(parameters) == bitPatterns(architecture.initialParameters(seed: 7)))
    #expect(bitPatterns(parameters) != bitPatterns(architecture.initialParameters(seed: 8)))

    func statistics(_ range: Range<Int>) -> (mean: Double, variance: Double, largest: Double) {
      let values = range.map { Double(parameters[$0]) }
      let mean = values.reduce(0, +) / Double(values.count)
      let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
      return (mean, variance, values.map(abs).max()!)
    }
    let hidden = architecture.layers[0]
    let he = statistics(hidden.weightOffset..<hidden.biasOffset)
    #expect(abs(he.mean) < 0.002)
    #expect(abs(he.variance / (2.0 / 200) - 1) < 0.03)           // He: Var = 2 / fan_in
    #expect(he.largest <= (6.0 / 200).squareRoot())
    let output = architecture.layers[1]
    let glorot = statistics(output.weightOffset..<output.biasOffset)
    #expect(abs(glorot.variance / (2.0 / (300 + 100)) - 1) < 0.03) // Glorot: 2 / (in + out)
    #expect(glorot.largest <= (6.0 / 400).squareRoot())
    let biases = (hidden.biasOffset..<hidden.end).map { parameters[$0] } + (output.biasOffset..<output.end).map { parameters[$0] }
    #expect(biases.allSatisfy { $0 == 0 })
  }

  @Test func seededGeneratorIsReproducibleAndShufflesAPermutation() {
    var first = SeededGenerator(seed: 42)
    var second = SeededGenerator(seed: 42)
    #expect((0..<10).map { _ in first.next() } == (0..<10).map { _ in second.next() })
    var values = Array(0..<100)
    first.shuffle(&values)
    #expect(values != Array(0..<100))
    #expect(values.sorted() == Array(0..<100))
  }
}
