import FedHostCore
import Testing

@Suite struct ModelSubModelTests {
  let global = try! MLPArchitecture(widths: [3, 4, 5, 2])

  @Test func scalesHiddenWidthsOnly() throws {
    #expect(try global.scaled(rate: 0.5, minimumWidth: 1).widths == [3, 2, 3, 2])   // ⌈2⌉, ⌈2.5⌉
    #expect(try global.scaled(rate: 0.3, minimumWidth: 1).widths == [3, 2, 2, 2])   // ⌈1.2⌉, ⌈1.5⌉, the output's 2
    #expect(try global.scaled(rate: 1).widths == global.widths)
    #expect(try MLPArchitecture.paper.scaled(rate: 0.5, minimumWidth: 1).widths == [9, 128, 64, 32, 16, 8, 6, 4, 1])
    #expect(throws: ModelError.invalidRate(0)) { try global.scaled(rate: 0) }
    #expect(throws: ModelError.invalidRate(1.5)) { try global.scaled(rate: 1.5) }
  }

  @Test func everyHiddenLayerKeepsAtLeastTheFloorOrItsWholeWidth() throws {
    // ¼ of the paper's tapering network: ⌈r·d⌉ would leave 4, 3 and 2 units before the output.
    #expect(try MLPArchitecture.paper.scaled(rate: 0.25).widths == [9, 64, 32, 16, 8, 8, 8, 8, 1])
    let sixClasses = try MLPArchitecture(widths: [6, 256, 128, 64, 32, 16, 12, 8, 6])
    #expect(try sixClasses.scaled(rate: 0.25).widths == [6, 64, 32, 16, 8, 8, 8, 8, 6])
    let tenClasses = try MLPArchitecture(widths: [64, 256, 128, 64, 32, 16, 12, 8, 10])
    #expect(try tenClasses.scaled(rate: 0.25).widths == [64, 64, 32, 16, 10, 10, 10, 8, 10])  // never wider than d
    #expect(try global.scaled(rate: 0.25).widths == global.widths)
  }

  @Test func extractTakesTheLeadingUnitsOfEveryLayer() throws {
    let sub = try SubModel(global: global, rate: 0.5, minimumWidth: 1)
    let parameters = ParameterVector((0..<global.parameterCount).map(Float.init))
    #expect(global.parameterCount == 53)
    let extracted = try sub.extract(from: parameters)
    // Layer 0: W 3×4 at 0, b at 12; layer 1: W 4×5 at 16, b at 36; layer 2: W 5×2 at 41, b at 51.
    #expect(extracted.array == [0, 1, 4, 5, 8, 9, 12, 13,
                                16, 17, 18, 21, 22, 23, 36, 37, 38,
                                41, 42, 43, 44, 45, 46, 51, 52])
  }

  @Test func scatterRoundTripsWithACoverageMask() throws {
    let sub = try SubModel(global: global, rate: 0.5, minimumWidth: 1)
    let parameters = ParameterVector((0..<global.parameterCount).map { Float($0) + 1 })
    let (delta, coverage) = try sub.scatter(delta: try sub.extract(from: parameters))
    #expect(coverage.count == 53)
    #expect(coverage.filter { $0 == 1 }.count == sub.architecture.parameterCount)
    #expect(sub.architecture.parameterCount == 25)
    for index in 0..<53 {
      #expect(delta[index] == (coverage[index] == 1 ? parameters[index] : 0))
    }
    #expect(coverage[2] == 0 && coverage[4] == 1 && coverage[14] == 0 && coverage[52] == 1)
  }

  @Test func insertWritesTheSubModelBackAndKeepsTheRest() throws {
    let sub = try SubModel(global: global, rate: 0.5, minimumWidth: 1)
    let parameters = ParameterVector((0..<global.parameterCount).map(Float.init))
    let trained = try sub.extract(from: parameters)
    for index in 0..<trained.count { trained[index] = -trained[index] - 1 }
    try sub.insert(trained, into: parameters)
    let (_, coverage) = try sub.scatter(delta: trained)
    for index in 0..<global.parameterCount {
      #expect(parameters[index] == (coverage[index] == 1 ? -Float(index) - 1 : Float(index)))
    }
  }

  @Test func fullRateCoversEverything() throws {
    let sub = try SubModel(global: .paper, rate: 1)
    let parameters = MLPArchitecture.paper.initialParameters(seed: 1)
    let (delta, coverage) = try sub.scatter(delta: try sub.extract(from: parameters))
    #expect(coverage.allSatisfy { $0 == 1 })
    #expect(bitPatterns(delta) == bitPatterns(parameters))
  }

  @Test func rejectsVectorsOfTheWrongSize() throws {
    let sub = try SubModel(global: global, rate: 0.5, minimumWidth: 1)
    #expect(throws: ModelError.parameterCountMismatch(expected: 53, actual: 25)) {
      try sub.extract(from: ParameterVector(count: 25))
    }
    #expect(throws: ModelError.parameterCountMismatch(expected: 25, actual: 53)) {
      try sub.scatter(delta: ParameterVector(count: 53))
    }
  }
}
