import Foundation

/// Two self-contained SVG chart kinds for reports — lines over rounds and grouped bars with
/// error bars — written by hand (no dependencies), readable without any other file.
public enum SVGCharts {
  public struct Series {
    public var name: String
    /// (x, mean, std) points; std 0 draws no band.
    public var points: [(x: Double, mean: Double, std: Double)]
    public init(name: String, points: [(x: Double, mean: Double, std: Double)]) {
      self.name = name
      self.points = points
    }
  }

  static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
  static let width = 760.0, height = 440.0
  static let plotLeft = 70.0, plotRight = 560.0, plotTop = 50.0, plotBottom = 380.0

  /// Lines (mean) with a shaded ± std band, one per series, legend on the right.
  public static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series]) -> String {
    let xs = series.flatMap { $0.points.map(\.x) }
    let ys = series.flatMap { $0.points.flatMap { [$0.mean - $0.std, $0.mean + $0.std] } }.filter(\.isFinite)
    let xRange = (xs.min() ?? 0, max(xs.max() ?? 1, (xs.min() ?? 0) + 1))
    let yRange = niceRange(ys)
    var body = frame(title: title, xLabel: xLabel, yLabel: yLabel, yRange: yRange)
    body += xTicks(xRange)
    for (index, line) in series.enumerated() {
      let color = palette[index % palette.count]
      let points = line.points.filter { $0.mean.isFinite }
      guard !points.isEmpty else { continue }
      func px(_ x: Double) -> Double { scale(x, xRange, plotLeft, plotRight) }
      func py(_ y: Double) -> Double { scale(y, yRange, plotBottom, plotTop) }
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
    body += legend(series.map(\.name))
    return document(body)
  }

  /// Grouped bars: one group per category (device), one bar per series (method), with error bars.
  public static func barChart(title: String, yLabel: String, groups: [String], series: [Series]) -> String {
    let ys = series.flatMap { $0.points.flatMap { [$0.mean - $0.std, $0.mean + $0.std] } }.filter(\.isFinite)
    let yRange = niceRange(ys + [ys.min().map { $0 - 0.05 } ?? 0])
    var body = frame(title: title, xLabel: "", yLabel: yLabel, yRange: yRange)
    let groupWidth = (plotRight - plotLeft) / Double(max(groups.count, 1))
    let barWidth = groupWidth * 0.8 / Double(max(series.count, 1))
    for (groupIndex, group) in groups.enumerated() {
      let groupLeft = plotLeft + groupWidth * Double(groupIndex) + groupWidth * 0.1
      body += "<text x=\"\(f(groupLeft + groupWidth * 0.4))\" y=\"\(f(plotBottom + 20))\" text-anchor=\"middle\" font-size=\"13\">\(escape(group))</text>\n"
      for (seriesIndex, bars) in series.enumerated() where groupIndex < bars.points.count {
        let point = bars.points[groupIndex]
        guard point.mean.isFinite else { continue }
        let color = palette[seriesIndex % palette.count]
        let x = groupLeft + barWidth * Double(seriesIndex)
        let top = scale(point.mean, yRange, plotBottom, plotTop)
        body += "<rect x=\"\(f(x))\" y=\"\(f(top))\" width=\"\(f(barWidth * 0.9))\" height=\"\(f(plotBottom - top))\" fill=\"\(color)\"><title>\(escape(bars.name)), \(escape(group)): \(String(format: "%.2f ± %.2f", point.mean * 100, point.std * 100))</title></rect>\n"
        if point.std > 0 {
          let center = x + barWidth * 0.45
          let high = scale(point.mean + point.std, yRange, plotBottom, plotTop)
          let low = scale(point.mean - point.std, yRange, plotBottom, plotTop)
          body += "<path d=\"M\(f(center)),\(f(high)) V\(f(low)) M\(f(center - 4)),\(f(high)) H\(f(center + 4)) M\(f(center - 4)),\(f(low)) H\(f(center + 4))\" stroke=\"#222\" stroke-width=\"1.2\"/>\n"
        }
      }
    }
    body += legend(series.map(\.name))
    return document(body)
  }

  // MARK: - pieces

  private static func document(_ body: String) -> String {
    """
    <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif">
    <rect width="100%" height="100%" fill="white"/>
    \(body)</svg>

    """
  }

  private static func frame(title: String, xLabel: String, yLabel: String, yRange: (Double, Double)) -> String {
    var svg = "<text x=\"\(f(width / 2))\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">\(escape(title))</text>\n"
    for step in 0...5 {
      let value = yRange.0 + (yRange.1 - yRange.0) * Double(step) / 5
      let y = scale(value, yRange, plotBottom, plotTop)
      svg += "<line x1=\"\(f(plotLeft))\" x2=\"\(f(plotRight))\" y1=\"\(f(y))\" y2=\"\(f(y))\" stroke=\"#ddd\"/>\n"
      svg += "<text x=\"\(f(plotLeft - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\" font-size=\"11\">\(tickLabel(value))</text>\n"
    }
    svg += "<path d=\"M\(f(plotLeft)),\(f(plotTop)) V\(f(plotBottom)) H\(f(plotRight))\" stroke=\"#333\" fill=\"none\"/>\n"
    svg += "<text x=\"18\" y=\"\(f((plotTop + plotBottom) / 2))\" transform=\"rotate(-90 18 \(f((plotTop + plotBottom) / 2)))\" text-anchor=\"middle\" font-size=\"13\">\(escape(yLabel))</text>\n"
    if !xLabel.isEmpty {
      svg += "<text x=\"\(f((plotLeft + plotRight) / 2))\" y=\"\(f(plotBottom + 42))\" text-anchor=\"middle\" font-size=\"13\">\(escape(xLabel))</text>\n"
    }
    return svg
  }

  private static func xTicks(_ range: (Double, Double)) -> String {
    let span = range.1 - range.0
    let step = max(1, (span / 10).rounded(.up))
    var svg = ""
    var value = range.0
    while value <= range.1 + 1e-9 {
      let x = scale(value, range, plotLeft, plotRight)
      svg += "<text x=\"\(f(x))\" y=\"\(f(plotBottom + 18))\" text-anchor=\"middle\" font-size=\"11\">\(tickLabel(value))</text>\n"
      value += step
    }
    return svg
  }

  private static func legend(_ names: [String]) -> String {
    names.enumerated().map { index, name in
      let y = plotTop + 8 + Double(index) * 22
      return "<rect x=\"\(f(plotRight + 20))\" y=\"\(f(y - 10))\" width=\"14\" height=\"14\" fill=\"\(palette[index % palette.count])\"/>"
        + "<text x=\"\(f(plotRight + 40))\" y=\"\(f(y + 2))\" font-size=\"12\">\(escape(name))</text>\n"
    }.joined()
  }

  /// A y range padded to round numbers; accuracy-like data stays within [0, 1].
  private static func niceRange(_ values: [Double]) -> (Double, Double) {
    guard var low = values.min(), var high = values.max() else { return (0, 1) }
    if high - low < 1e-9 { low -= 0.05; high += 0.05 }
    let pad = (high - low) * 0.08
    low -= pad
    high += pad
    if values.allSatisfy({ $0 >= 0 && $0 <= 1 }) { low = max(0, low); high = min(1, high) }
    let step = pow(10, (log10(high - low)).rounded(.down) - 1)
    return ((low / step).rounded(.down) * step, (high / step).rounded(.up) * step)
  }

  private static func scale(_ value: Double, _ range: (Double, Double), _ from: Double, _ to: Double) -> Double {
    from + (value - range.0) / (range.1 - range.0) * (to - from)
  }

  private static func tickLabel(_ value: Double) -> String {
    abs(value - value.rounded()) < 1e-9 ? String(Int(value.rounded())) : String(format: "%.3g", value)
  }

  private static func f(_ value: Double) -> String { String(format: "%.1f", value) }

  static func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }
}

extension ComparisonReport {
  /// Global-model test accuracy (or loss) per round, one line per strategy, ± std over seeds.
  public func roundChart(metric: KeyPath<RoundCurve, [Double]>, label: String) -> String {
    let methods = curves.map(\.method).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
    let series = methods.map { method -> SVGCharts.Series in
      let runs = curves.filter { $0.method == method }.map { $0[keyPath: metric] }
      let length = runs.map(\.count).min() ?? 0
      let points = (0..<length).map { round -> (x: Double, mean: Double, std: Double) in
        let (mean, std) = meanAndStandardDeviation(runs.map { $0[round] })
        return (Double(round + 1), mean, std)
      }
      return SVGCharts.Series(name: method, points: points)
    }
    return SVGCharts.lineChart(title: "Global model: \(label) per round (mean over devices\(seeds.count > 1 ? ", ± std over seeds" : ""))",
                               xLabel: "round", yLabel: label, series: series)
  }

  /// Personalized test accuracy per device, one bar per method, error bars = std over seeds.
  public func personalizedAccuracyChart() -> String {
    let rows = methods.filter { $0.stage == "personalized" && $0.failure == nil }
    let series = rows.map { row in
      SVGCharts.Series(name: row.method, points: devices.indices.map { device in
        let (mean, std) = meanAndStandardDeviation(row.accuracy[device])
        return (Double(device), mean, std)
      })
    }
    return SVGCharts.barChart(title: "Personalized test accuracy per device\(seeds.count > 1 ? " (± std over \(seeds.count) seeds)" : "")",
                              yLabel: "accuracy", groups: devices.map(\.name), series: series)
  }
}
