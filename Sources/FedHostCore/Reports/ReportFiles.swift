import Foundation

/// The files a run or comparison leaves in `--out`: every one written atomically.
public enum ReportFiles {
  public static func write(_ report: ComparisonReport, to directory: String) throws {
    try AtomicFile.write(TableWriters.markdown(report), to: directory + "/report.md")
    try AtomicFile.write(TableWriters.csv(report), to: directory + "/report.csv")
    try AtomicFile.write(TableWriters.json(report), to: directory + "/report.json")
    if !report.curves.isEmpty {
      try AtomicFile.write(report.roundChart(metric: \.accuracy, label: "test accuracy"),
                           to: directory + "/global-accuracy.svg")
      try AtomicFile.write(report.roundChart(metric: \.loss, label: "test loss"), to: directory + "/global-loss.svg")
    }
    try AtomicFile.write(report.personalizedAccuracyChart(), to: directory + "/personalized-accuracy.svg")
  }

  /// The final global model and each device's personalized model (`ModelFile` format).
  /// A model records its inputs' names when they name every input (not padded ones), and for
  /// the global model when every device has the same.
  public static func writeModels(_ outcome: StrategyOutcome, to directory: String) throws {
    func names(_ featureNames: [String], _ architecture: MLPArchitecture) -> [String]? {
      featureNames.count == architecture.inputWidth ? featureNames : nil
    }
    let shared = Set(outcome.devices.map(\.featureNames)).count == 1 ? outcome.devices.first?.featureNames : nil
    try ModelFile.write(outcome.globalModel, architecture: outcome.globalArchitecture,
                        featureNames: shared.flatMap { names($0, outcome.globalArchitecture) },
                        to: directory + "/models/global.fhmodel")
    for (model, device) in zip(outcome.personalizedModels, outcome.devices) {
      let name = FedHostCore.fileName(forDevice: device.name)
      try ModelFile.write(model, architecture: device.architecture, featureNames: names(device.featureNames, device.architecture),
                          to: directory + "/models/personalized-\(name).fhmodel")
    }
  }
}
