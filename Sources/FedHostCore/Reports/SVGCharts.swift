import Foundation

/// Two self-contained SVG chart kinds for reports — lines over rounds and grouped bars with
/// error bars — written by hand (no dependencies), readable without any other file.
public enum SVGCharts {
  public struct Series {
    public var name: String
    /// (x, mean, std) points; std 0 draws no band.
    public var points: [(x: Double, mean: Double, std: Double)]
    /// The series' colour; nil takes the palette's colour for its position.
    public var color: String?
    public init(name: String, points: [(x: Double, mean: Double, std: Double)], color: String? = nil) {
      self.name = name
      self.points = points
      self.color = color
    }
  }

  /// Colour-blind-safe (Okabe–Ito) and distinct in greyscale order.
  public static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
  static let width = 760.0, height = 440.0
  static let plotLeft = 70.0, plotRight = 560.0, plotTop = 50.0, plotBottom = 380.0

  static func color(_ series: [Series], _ index: Int) -> String {
    series[index].color ?? palette[index % palette.count]
  }

  /// Lines (mean) with a shaded ± std band, one per series, legend on the right. With
  /// `fromZero` the y axis starts at 0 (losses: a zoomed axis would exaggerate small changes).
  public static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series], fromZero: Bool = false) -> String {
    let xs = series.flatMap { $0.points.map(\.x) }
    let ys = series.flatMap { $0.points.flatMap { [$0.mean - $0.std, $0.mean + $0.std] } }.filter(\.isFinite)
    let xAxis = Axis(integersFrom: xs.min() ?? 1, to: xs.max() ?? 1)
    let yAxis = Axis(covering: ys, fromZero: fromZero)
    var body = frame(title: title, xLabel: xLabel, yLabel: yLabel, yAxis: yAxis)
    body += xTicks(xAxis)
    for (index, line) in series.enumerated() {
      let color = color(series, index)
      let points = line.points.filter { $0.mean.isFinite }
      guard !points.isEmpty else { continue }
      func px(_ x: Double) -> Double { xAxis.position(x, plotLeft, plotRight) }
      func py(_ y: Double) -> Double { yAxis.position(y, plotBottom, plotTop) }
      if points.contains(where: { $0.std > 0 }) {
        let upper = points.map { "\(f(px($0.x))),\(f(py($0.mean + $0.std)))" }
        let lower = points.reversed().map { "\(f(px($0.x))),\(f(py($0.mean - $0.std)))" }
        body += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(color)\" fill-opacity=\"0.15\" stroke=\"none\"/>\n"
      }
      body += "<polyline points=\"\(points.map { "\(f(px($0.x))),\(f(py($0.mean)))" }.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
      for point in points {
        body += "<circle cx=\"\(f(px(point.x)))\" cy=\"\(f(py(point.mean)))\" r=\"2.5\" fill=\"\(color)\"><title>\(escape(line.name)) @ \(f(point.x)): \(String(format: "%.4f", point.mean))</title></circle>\n"
      }
    }
    body += legend(series)
    return document(body)
  }

  /// Grouped bars: one group per category (device), one bar per series (method), with error bars.
  /// The axis starts at 0, so bar heights compare honestly.
  public static func barChart(title: String, yLabel: String, groups: [String], series: [Series]) -> String {
    let ys = series.flatMap { $0.points.flatMap { [$0.mean - $0.std, $0.mean + $0.std] } }.filter(\.isFinite)
    let yAxis = Axis(covering: ys, fromZero: true)
    var body = frame(title: title, xLabel: "", yLabel: yLabel, yAxis: yAxis)
    let groupWidth = (plotRight - plotLeft) / Double(max(groups.count, 1))
    let barWidth = groupWidth * 0.8 / Double(max(series.count, 1))
    for (groupIndex, group) in groups.enumerated() {
      let groupLeft = plotLeft + groupWidth * Double(groupIndex) + groupWidth * 0.1
      body += "<text x=\"\(f(groupLeft + groupWidth * 0.4))\" y=\"\(f(plotBottom + 20))\" text-anchor=\"middle\" font-size=\"13\">\(escape(group))</text>\n"
      for (seriesIndex, bars) in series.enumerated() where groupIndex < bars.points.count {
        let point = bars.points[groupIndex]
        guard point.mean.isFinite else { continue }
        let x = groupLeft + barWidth * Double(seriesIndex)
        let top = yAxis.position(point.mean, plotBottom, plotTop)
        body += "<rect x=\"\(f(x))\" y=\"\(f(top))\" width=\"\(f(barWidth * 0.9))\" height=\"\(f(plotBottom - top))\" fill=\"\(color(series, seriesIndex))\"><title>\(escape(bars.name)), \(escape(group)): \(String(format: "%.2f ± %.2f", point.mean * 100, point.std * 100))</title></rect>\n"
        // The value above the bar: on an axis from 0, close accuracies differ by less than the eye sees.
        let labelTop = yAxis.position(point.mean + point.std, plotBottom, plotTop) - 4
        body += "<text x=\"\(f(x + barWidth * 0.45))\" y=\"\(f(labelTop))\" text-anchor=\"middle\" font-size=\"9\">\(String(format: "%.3f", point.mean))</text>\n"
        if point.std > 0 {
          let center = x + barWidth * 0.45
          let high = yAxis.position(point.mean + point.std, plotBottom, plotTop)
          let low = yAxis.position(point.mean - point.std, plotBottom, plotTop)
          body += "<path d=\"M\(f(center)),\(f(high)) V\(f(low)) M\(f(center - 4)),\(f(high)) H\(f(center + 4)) M\(f(center - 4)),\(f(low)) H\(f(center + 4))\" stroke=\"#222\" stroke-width=\"1.2\"/>\n"
        }
      }
    }
    body += legend(series)
    return document(body)
  }

  /// An axis over round numbers: ticks every 1, 2, 2.5 or 5 × 10^k, the ends on ticks.
  struct Axis: Equatable {
    var low: Double
    var high: Double
    var step: Double

    /// About five ticks covering `values`. Accuracy-like data (within [0, 1] but for a ± std
    /// overshoot) stays within [0, 1]: an axis up to 1.25 would show impossible accuracies.
    init(covering values: [Double], fromZero: Bool) {
      var low = values.min() ?? 0, high = values.max() ?? 1
      if fromZero { low = min(0, low) }
      if high - low < 1e-9 { (low, high) = (low - 0.05, high + 0.05) }
      if values.allSatisfy({ $0 >= -0.05 && $0 <= 1.05 }) { (low, high) = (max(0, low), min(1, high)) }
      self.init(low: low, high: high, steps: 5, mantissas: [1, 2, 2.5, 5])
    }

    /// Whole-number ticks (rounds): every 1, 2 or 5 × 10^k.
    init(integersFrom low: Double, to high: Double) {
      self.init(low: low, high: max(high, low + 1), steps: 10, mantissas: [1, 2, 5])
      step = max(step, 1)
      self.low = (low / step).rounded(.down) * step
      self.high = (max(high, low + 1) / step).rounded(.up) * step
    }

    private init(low: Double, high: Double, steps: Double, mantissas: [Double]) {
      let rough = (high - low) / steps
      let magnitude = pow(10, log10(rough).rounded(.down))
      step = (mantissas.map { $0 * magnitude } + [10 * magnitude]).first { $0 >= rough * 0.999 }!
      self.low = (low / step + 1e-9).rounded(.down) * step
      self.high = (high / step - 1e-9).rounded(.up) * step
    }

    var ticks: [Double] {
      let count = Int(((high - low) / step).rounded())
      return (0...count).map { low + Double($0) * step }
    }

    func position(_ value: Double, _ from: Double, _ to: Double) -> Double {
      from + (value - low) / (high - low) * (to - from)
    }

    /// Just enough decimals for the step: 0.25 → "0.25", 0.2 → "0.2", 5 → "5".
    func label(_ value: Double) -> String {
      var decimals = 0
      while decimals < 6, abs(step * pow(10, Double(decimals)) - (step * pow(10, Double(decimals))).rounded()) > 1e-6 { decimals += 1 }
      return String(format: "%.\(decimals)f", abs(value) < step * 1e-6 ? 0 : value)
    }
  }

  // MARK: - pieces

  private static func document(_ body: String) -> String {
    """
    <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif">
    <rect width="100%" height="100%" fill="white"/>
    \(body)</svg>

    """
  }

  private static func frame(title: String, xLabel: String, yLabel: String, yAxis: Axis) -> String {
    var svg = "<text x=\"\(f(width / 2))\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">\(escape(title))</text>\n"
    for value in yAxis.ticks {
      let y = yAxis.position(value, plotBottom, plotTop)
      svg += "<line x1=\"\(f(plotLeft))\" x2=\"\(f(plotRight))\" y1=\"\(f(y))\" y2=\"\(f(y))\" stroke=\"#ddd\"/>\n"
      svg += "<text x=\"\(f(plotLeft - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\" font-size=\"11\">\(yAxis.label(value))</text>\n"
    }
    svg += "<path d=\"M\(f(plotLeft)),\(f(plotTop)) V\(f(plotBottom)) H\(f(plotRight))\" stroke=\"#333\" fill=\"none\"/>\n"
    svg += "<text x=\"18\" y=\"\(f((plotTop + plotBottom) / 2))\" transform=\"rotate(-90 18 \(f((plotTop + plotBottom) / 2)))\" text-anchor=\"middle\" font-size=\"13\">\(escape(yLabel))</text>\n"
    if !xLabel.isEmpty {
      svg += "<text x=\"\(f((plotLeft + plotRight) / 2))\" y=\"\(f(plotBottom + 42))\" text-anchor=\"middle\" font-size=\"13\">\(escape(xLabel))</text>\n"
    }
    return svg
  }

  private static func xTicks(_ axis: Axis) -> String {
    axis.ticks.map { value in
      "<text x=\"\(f(axis.position(value, plotLeft, plotRight)))\" y=\"\(f(plotBottom + 18))\" text-anchor=\"middle\" font-size=\"11\">\(axis.label(value))</text>\n"
    }.joined()
  }

  private static func legend(_ series: [Series]) -> String {
    series.indices.map { index in
      let y = plotTop + 8 + Double(index) * 22
      return "<rect x=\"\(f(plotRight + 20))\" y=\"\(f(y - 10))\" width=\"14\" height=\"14\" fill=\"\(color(series, index))\"/>"
        + "<text x=\"\(f(plotRight + 40))\" y=\"\(f(y + 2))\" font-size=\"12\">\(escape(series[index].name))</text>\n"
    }.joined()
  }

  private static func f(_ value: Double) -> String { String(format: "%.1f", value) }

  static func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }
}

extension ComparisonReport {
  /// Every method of the report, rows first, in order of first appearance: its position picks
  /// its colour, so a method has the same colour in every figure of the report.
  var chartMethods: [String] {
    (methods.map(\.method) + curves.map(\.method)).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
  }

  func chartColor(_ method: String) -> String {
    SVGCharts.palette[(chartMethods.firstIndex(of: method) ?? 0) % SVGCharts.palette.count]
  }

  /// Global-model test accuracy (or loss, on an axis from 0) per round, one line per strategy, ± std over seeds.
  public func roundChart(metric: KeyPath<RoundCurve, [Double]>, label: String) -> String {
    let methods = curves.map(\.method).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
    let series = methods.map { method -> SVGCharts.Series in
      let runs = curves.filter { $0.method == method }.map { $0[keyPath: metric] }
      let length = runs.map(\.count).min() ?? 0
      let points = (0..<length).map { round -> (x: Double, mean: Double, std: Double) in
        let (mean, std) = meanAndStandardDeviation(runs.map { $0[round] })
        return (Double(round + 1), mean, std)
      }
      return SVGCharts.Series(name: method, points: points, color: chartColor(method))
    }
    return SVGCharts.lineChart(title: "Global model: \(label) per round (mean over devices\(seeds.count > 1 ? ", ± std over seeds" : ""))",
                               xLabel: "round", yLabel: label, series: series, fromZero: metric == \RoundCurve.loss)
  }

  /// Personalized test accuracy per device, one bar per method, error bars = std over seeds.
  /// Devices a per-device bar chart shows at most; beyond, bars of 100 devices would be hairlines
  /// with unreadable labels, so the chart summarizes each method over the devices instead.
  public static let perDeviceBarLimit = 12

  public func personalizedAccuracyChart() -> String {
    let rows = methods.filter { $0.stage == "personalized" && $0.failure == nil }
    if devices.count > Self.perDeviceBarLimit {
      // Per method: each device's mean over seeds, then their mean and spread across devices.
      let series = rows.map { row in
        let (mean, std) = meanAndStandardDeviation(row.accuracy.map { meanAndStandardDeviation($0).mean })
        return SVGCharts.Series(name: row.method, points: [(0, mean, std)], color: chartColor(row.method))
      }
      return SVGCharts.barChart(title: "Personalized test accuracy, mean over \(devices.count) devices (± std across devices)",
                                yLabel: "accuracy", groups: ["all \(devices.count) devices"], series: series)
    }
    let series = rows.map { row in
      SVGCharts.Series(name: row.method, points: devices.indices.map { device in
        let (mean, std) = meanAndStandardDeviation(row.accuracy[device])
        return (Double(device), mean, std)
      }, color: chartColor(row.method))
    }
    return SVGCharts.barChart(title: "Personalized test accuracy per device\(seeds.count > 1 ? " (± std over \(seeds.count) seeds)" : "")",
                              yLabel: "accuracy", groups: devices.map(\.name), series: series)
  }
}
