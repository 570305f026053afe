import FedHostCore
import Foundation

/// `host splits`: every device's exact row indices per split, standardized CSVs and the initial
/// model, for references outside FedHost (and for `splits_from` in a spec).
enum SplitsCommand {
  static let specs: [OptionSpec] = [
    .value("federation", "FILE", "federation spec (default: the embedded two-device federation)"),
    .value("data-dir", "DIR", "directory the spec's dataset files are relative to (default: .)"),
    .value("seed", "N", "seed of the splits and the initial model (default: the spec's training.seed, else 0)"),
    .value("out", "DIR", "where to write splits.json, DEVICE/{train,validation,test}.csv and initial-model.json"),
    .value("hidden-widths", "W1,W2,…", "hidden widths of the initial model (default: the paper's)"),
    .flag("force", "overwrite a split dump already in --out"),
    .flag("help", "show this help"),
  ]

  static let help = helpText(
    usage: "host splits --out DIR [--federation FILE --data-dir DIR] [--seed N]",
    summary: """
      Writes a federation's splits for one seed: DIR/splits.json (per device the row indices,
      into its dataset, of the standard FL protocol's train/validation/test parts and of the
      Fed-Meta-Align protocol's seven parts), DIR/DEVICE/{train,validation,test}.csv (features
      standardized on the device's train part, and the class index) and DIR/initial-model.json
      (the seeded initial global model in FedHost's flat layout). A spec's "splits_from": "DIR"
      reads the indices back. See docs/federation-spec.md.
      """,
    specs: specs)

  static func run(_ arguments: ArraySlice<String>) throws -> Int32 {
    let options = try ParsedOptions(arguments, specs: specs, command: "splits")
    if options.has("help") { print(help); return 0 }
    guard let out = options.value("out") else { throw UsageError("--out DIR is required (see `host splits --help`)") }
    let (data, _) = try ExperimentOptions.federationData(options)
    let settings = try ExperimentOptions.settings(options, data: data, protocol: .fl)
    let seed = try options.seed("seed") ?? data.training.seed ?? 0
    let files = try SplitExport.write(data, settings: settings, seed: seed, to: out, force: options.has("force"))
    print("wrote \(files.count) files to \(out) (seed \(seed), \(data.devices.count) devices)")
    return 0
  }
}
