import FedHostCore
import Foundation
import Testing

/// The report's SVG figures as a reader sees them: one colour per method in every figure, round
/// tick values, loss and bar axes from 0; and each renders to a non-blank PNG with librsvg
/// (`rsvg-convert`; `.ci/run` installs it and sets FEDHOST_REQUIRE_RASTERIZER=1 so that a missing
/// one fails instead of skipping the rendering).
@Suite("Report charts")
struct ChartTests {
  /// Three methods over two seeds, accuracies between 0.84 and 0.99 (the range that used to give
  /// a bar axis starting at 0.84), losses around 0.3.
  static let report: ComparisonReport = {
    let methods = [
      MethodResult(method: "Local Only", stage: "personalized", accuracy: [[0.95, 0.96], [0.84, 0.86]], f1: [[0.9, 0.9], [0.8, 0.8]]),
      MethodResult(method: "FedAvg", stage: "global", accuracy: [[0.90, 0.91], [0.85, 0.87]], f1: [[0.9, 0.9], [0.8, 0.8]]),
      MethodResult(method: "FedAvg", stage: "personalized", accuracy: [[0.97, 0.99], [0.88, 0.90]], f1: [[0.9, 0.9], [0.8, 0.8]]),
      MethodResult(method: "Fed-Meta-Align", stage: "global", accuracy: [[0.92, 0.93], [0.86, 0.88]], f1: [[0.9, 0.9], [0.8, 0.8]]),
      MethodResult(method: "Fed-Meta-Align", stage: "personalized", accuracy: [[0.98, 0.99], [0.91, 0.93]], f1: [[0.9, 0.9], [0.8, 0.8]]),
    ]
    let curves = ["FedAvg", "Fed-Meta-Align"].enumerated().flatMap { index, method in
      [UInt64(0), 1].map { seed in
        let rounds = (1...12).map(Double.init)
        return RoundCurve(method: method, seed: seed,
                          accuracy: rounds.map { 0.84 + 0.01 * $0 + 0.005 * Double(index + Int(seed)) },
                          loss: rounds.map { 0.31 + 0.2 / $0 + 0.01 * Double(index + Int(seed)) })
      }
    }
    return ComparisonReport(title: "charts", seeds: [0, 1],
                            devices: [DeviceInfo(name: "line-fault", widthRate: 1, parameterCount: 10),
                                      DeviceInfo(name: "machine", widthRate: 1, parameterCount: 10)],
                            methods: methods, curves: curves, notes: [])
  }()

  /// 100 devices, one seed: device d scores 0.5 + 0.004·d (FedAvg) and 0.6 + 0.002·d (Local Only).
  static let manyDevices: ComparisonReport = {
    let devices = (0..<100).map { DeviceInfo(name: "client-\($0)", widthRate: 1, parameterCount: 10) }
    let methods = [("Local Only", 0.6, 0.002), ("FedAvg", 0.5, 0.004)].map { name, base, slope in
      MethodResult(method: name, stage: "personalized", accuracy: (0..<100).map { [base + slope * Double($0)] },
                   f1: (0..<100).map { _ in [0.5] })
    }
    return ComparisonReport(title: "many", seeds: [0], devices: devices, methods: methods, curves: [], notes: [])
  }()

  static let figures: [(name: String, svg: String)] = [
    ("global-accuracy", report.roundChart(metric: \.accuracy, label: "test accuracy")),
    ("global-loss", report.roundChart(metric: \.loss, label: "test loss")),
    ("personalized-accuracy", report.personalizedAccuracyChart()),
    ("personalized-accuracy-100-devices", manyDevices.personalizedAccuracyChart()),
  ]

  /// Past a dozen devices the bar chart summarizes each method over the devices: one bar each,
  /// its height the mean of the devices (hand-computed: 0.6 + 0.002·49.5 and 0.5 + 0.004·49.5).
  @Test func manyDevicesGetOneBarPerMethod() {
    let svg = Self.figures[3].svg
    let bars = Self.captures(#"<title>([^<]*), all 100 devices: ([0-9.]+) ± ([0-9.]+)</title>"#, in: svg)
    #expect(bars.map { $0[0] } == ["Local Only", "FedAvg"])
    #expect(bars.map { $0[1] } == ["69.90", "69.80"])
    // The spread across devices: the sample std of 0.004·d over d = 0…99 is 0.004·29.011 = 11.60 %.
    #expect(bars.last?[2] == "11.60")
    #expect(svg.contains("mean over 100 devices") && !svg.contains("client-7"))
  }

  /// Every match of `pattern`'s first capture group in `text`.
  static func captures(_ pattern: String, in text: String) -> [[String]] {
    let expression = try! NSRegularExpression(pattern: pattern)
    return expression.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { match in
      (1..<match.numberOfRanges).map { String(text[Range(match.range(at: $0), in: text)!]) }
    }
  }

  /// The legend: method name → colour.
  static func legend(_ svg: String) -> [String: String] {
    Dictionary(uniqueKeysWithValues: captures(#"width="14" height="14" fill="(#[0-9A-Fa-f]{6})"/><text [^>]*>([^<]*)</text>"#, in: svg)
      .map { ($0[1], $0[0]) })
  }

  /// The y axis's tick labels, bottom to top.
  static func yTicks(_ svg: String) -> [String] {
    captures(#"text-anchor="end" font-size="11">([^<]*)</text>"#, in: svg).map { $0[0] }
  }

  @Test func aMethodHasOneColourInEveryFigure() {
    var colours = [String: String]()
    for (name, svg) in Self.figures {
      let legend = Self.legend(svg)
      #expect(legend.count >= 2, "\(name) has no legend")
      for (method, colour) in legend {
        #expect(colours[method, default: colour] == colour, "\(method) is \(colour) in \(name), \(colours[method]!) before")
        colours[method] = colour
      }
    }
    #expect(Set(colours.values).count == colours.count, "two methods share a colour: \(colours)")
  }

  @Test func ticksAreRoundAndEvenlySpaced() throws {
    for (name, svg) in Self.figures {
      let ticks = try Self.yTicks(svg).map { try #require(Double($0), "\(name): tick \($0)") }
      #expect(ticks.count >= 3 && ticks.count <= 11, "\(name): \(ticks)")
      let step = ticks[1] - ticks[0]
      #expect(zip(ticks, ticks.dropFirst()).allSatisfy { abs($1 - $0 - step) < 1e-9 }, "\(name): \(ticks)")
      let mantissa = step / pow(10, log10(step).rounded(.down))
      #expect([1, 2, 2.5, 5].contains { abs($0 - mantissa) < 1e-9 }, "\(name): step \(step)")
      #expect(ticks.allSatisfy { abs($0 / step - ($0 / step).rounded()) < 1e-9 }, "\(name): \(ticks) off the step")
    }
  }

  @Test func lossAndBarAxesStartAtZero() {
    for (name, svg) in Self.figures where name != "global-accuracy" {
      #expect(Self.yTicks(svg).first.flatMap(Double.init) == 0, "\(name): \(Self.yTicks(svg))")
    }
    // The bar chart's top stays at 1: an accuracy axis to 1.25 would show impossible values.
    #expect(Self.yTicks(Self.figures[2].svg).last == "1.0")
  }

  static let rasterizer = "/usr/bin/rsvg-convert"
  static let rasterizerRequired = ProcessInfo.processInfo.environment["FEDHOST_REQUIRE_RASTERIZER"] == "1"

  /// Each figure rendered by librsvg: a PNG of the SVG's size that holds far more than a blank
  /// page of that size (PNG compresses a uniform image to almost nothing).
  @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: rasterizer) || rasterizerRequired))
  func figuresRenderToNonBlankPNGs() throws {
    try #require(FileManager.default.isExecutableFile(atPath: Self.rasterizer),
                 "\(Self.rasterizer) is missing; install it with: apt-get install librsvg2-bin")
    let directory = try DataTestSupport.temporaryDirectory()
    func render(_ name: String, _ svg: String) throws -> [UInt8] {
      let source = directory.appendingPathComponent(name + ".svg"), png = directory.appendingPathComponent(name + ".png")
      try Data(svg.utf8).write(to: source)
      let process = try Process.run(URL(fileURLWithPath: Self.rasterizer), arguments: ["-o", png.path, source.path])
      process.waitUntilExit()
      try #require(process.terminationStatus == 0, "rsvg-convert failed on \(name)")
      return [UInt8](try Data(contentsOf: png))
    }
    let blank = try render("blank", #"<svg xmlns="http://www.w3.org/2000/svg" width="760" height="440"><rect width="100%" height="100%" fill="white"/></svg>"#)
    for (name, svg) in Self.figures {
      let png = try render(name, svg)
      #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "\(name) is not a PNG")
      // IHDR: width and height, big-endian, at bytes 16 and 20.
      let size = [16, 20].map { offset in png[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) } }
      #expect(size == [760, 440], "\(name): \(size)")
      #expect(png.count > 10 * blank.count, "\(name): \(png.count) bytes against a blank page's \(blank.count)")
    }
  }
}
