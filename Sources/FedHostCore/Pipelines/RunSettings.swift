/// Which protocol a run follows.
public enum ProtocolKind: String, Sendable, CaseIterable, Codable {
  /// The Fed-Meta-Align protocol (seed 002): each device's train part cut into Phases 1/2/3.
  case fedMetaAlign = "fed-meta-align"
  /// The standard FL protocol: every method trains on each device's whole train part minus a
  /// validation slice; R rounds of sampled clients; optional personalization.
  case fl
}

/// The two presets: `.paper` reproduces the paper's Section IV.D exactly (Adam 1e-5, batch 1,
/// 10 serial and 10 parallel rounds, 10 personalization epochs); `.tuned` (the default) keeps
/// the protocol but trains sanely (see docs/results.md for what each change bought).
public enum Preset: String, Sendable, CaseIterable, Codable { case paper, tuned }

/// How many clients train in a round of the standard FL protocol.
public enum ClientSampling: Sendable, Equatable, CustomStringConvertible {
  case all
  case count(Int)
  /// A share in (0, 1]: ⌈share · clients⌉ per round.
  case fraction(Double)

  public func sampleSize(of clients: Int) -> Int {
    switch self {
    case .all: clients
    case .count(let count): min(count, clients)
    case .fraction(let share): max(1, min(clients, Int((share * Double(clients)).rounded(.up))))
    }
  }

  public var description: String {
    switch self {
    case .all: "all"
    case .count(let count): String(count)
    case .fraction(let share): String(share)
    }
  }
}

/// Every hyperparameter of a run. Each one has exactly one entry in `RunSettings.options`
/// (name, flag, spec key, help, default per preset and protocol, valid range), which the
/// argument parser, the spec reader, validation, `--help` and the report's settings line read.
public struct RunSettings: Sendable, Equatable {
  public var protocolKind: ProtocolKind
  public var preset: Preset
  public var hiddenWidths: [Int] = []
  public var optimizer: OptimizerKind = .adam
  public var classWeighting: ClassWeighting = .none
  public var learningRate: Float = 0
  public var batchSize = 0
  public var rounds = 0
  public var localEpochs = 0
  /// nil: `localEpochs` for everyone.
  public var localSteps: Int?
  public var clientsPerRound = ClientSampling.all
  /// Fed-Meta-Align: shares of each device's train part for Phases 1/2/3.
  public var phaseFractions: [Double] = []
  public var pretrainEpochs = 0
  /// Fed-Meta-Align Phase 1, passed to initializer plugins declaring `serial_rounds` / `serial_epochs`.
  public var serialRounds = 0
  public var serialEpochs = 0
  public var personalizationEpochs = 0
  public var personalizationLearningRate: Float = 0
  public var freezeFraction = 0.0
  /// Keep the epoch of lowest validation loss, stopping after this many epochs without
  /// improvement; nil: train every epoch.
  public var earlyStoppingPatience: Int?
  /// Standard FL: keep the global model of the round of lowest validation loss, stopping after
  /// this many rounds without improvement; nil: run every round, keep the last.
  public var roundPatience: Int?
  public var localOnlyEpochs = 0
  /// Standard FL: epochs of the centralized upper bound on the pooled training data.
  public var centralizedEpochs = 0
  public var threshold = ThresholdRule.fixed
  /// MEFL's Meta-GDP client, passed to plugins declaring `outer_steps` / `meta_learning_rate`.
  public var metaOuterSteps = 0
  public var metaLearningRate: Float = 0
  /// Worker threads; results do not depend on it (not part of a run's identity).
  public var threads: Int

  public static let paperHiddenWidths = [256, 128, 64, 32, 16, 12, 8]

  /// Every option at its default for `preset` and `protocolKind`.
  public init(preset: Preset = .tuned, protocolKind: ProtocolKind = .fedMetaAlign,
              threads: Int = WorkerPool.defaultThreadCount) {
    self.preset = preset
    self.protocolKind = protocolKind
    self.threads = threads
    for option in Self.options { option.reset(&self) }
  }

  /// The engine's part of these settings, for one seed.
  public func engine(seed: UInt64) -> EngineSettings {
    EngineSettings(hiddenWidths: hiddenWidths, optimizer: optimizer, learningRate: learningRate, batchSize: batchSize,
                   localEpochs: localEpochs, localSteps: localSteps, classWeighting: classWeighting, seed: seed,
                   threads: threads)
  }

  /// The options this protocol uses, in table order.
  public var activeOptions: [SettingOption] { Self.options.filter { $0.protocols.contains(protocolKind) } }

  /// Human-readable lines stating the settings a result was produced with.
  public func describe() -> [String] {
    ["protocol \(protocolKind.rawValue), preset \(preset.rawValue)",
     activeOptions.map { "\($0.key) \($0.render(self))" }.joined(separator: "; ")]
  }

  /// The configuration a plugin gets: the seed, the protocol settings it declares (Phase 1's
  /// serial rounds and epochs, the meta-learner's outer steps and rate) and the user's
  /// `--plugin-config` entries for keys it declares.
  public func pluginConfig(for descriptor: PluginDescriptor, seed: UInt64, extra: [String: String]) -> String {
    let declared = Set(descriptor.configKeys.map(\.key))
    var entries: [String: String] = ["seed": String(seed)]
    var settings = [("outer_steps", String(metaOuterSteps)), ("meta_learning_rate", "\(metaLearningRate)")]
    if protocolKind == .fedMetaAlign {
      settings += [("serial_rounds", String(serialRounds)), ("serial_epochs", String(serialEpochs))]
    }
    for (key, value) in settings where declared.contains(key) { entries[key] = value }
    for (key, value) in extra where declared.contains(key) { entries[key] = value }
    return "{" + entries.keys.sorted().map { "\"\($0)\": \(entries[$0]!)" }.joined(separator: ", ") + "}"
  }
}

/// Where a setting's value came from, for the error message of a bad one.
enum SettingSource {
  /// A command-line flag's text.
  case flag(String)
  /// A federation spec's `training` entry.
  case spec(SpecNode)

  /// `problem` as the error of a bad value from here: naming the spec's key path, or `flag`.
  func error(_ problem: String, flag: String) -> Error {
    switch self {
    case .flag: SettingError("\(flag) \(problem)")
    case .spec(let node): node.error(problem)
    }
  }
}

/// A bad setting on the command line, one line naming the flag (exit status 2).
public struct SettingError: Error, CustomStringConvertible, InputError {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// One hyperparameter: its flag (`--key-with-dashes`), spec key (`training.key`), help, which
/// protocols use it, its default per preset and protocol, how it is parsed and checked, and how
/// the report shows it.
public struct SettingOption: Sendable {
  /// The spec key (`batch_size`); the flag is the same with dashes (`--batch-size`).
  public let key: String
  public let valueName: String
  public let help: String
  public let protocols: Set<ProtocolKind>
  /// Sets the option to its default for the settings' preset and protocol.
  let reset: @Sendable (inout RunSettings) -> Void
  let assign: @Sendable (inout RunSettings, SettingSource) throws -> Void
  let render: @Sendable (RunSettings) -> String
  /// The defaults shown in `--help`, e.g. "paper 1e-05, tuned 0.001".
  let defaults: @Sendable () -> String

  public var flag: String { key.replacingOccurrences(of: "_", with: "-") }

  /// Sets the option from a command-line flag's text.
  public func apply(flagValue text: String, to settings: inout RunSettings) throws { try assign(&settings, .flag(text)) }

  /// Sets the option from a federation spec's `training` entry.
  func apply(spec node: SpecNode, to settings: inout RunSettings) throws { try assign(&settings, .spec(node)) }

  /// Help with the defaults.
  public var helpWithDefaults: String { "\(help) (\(defaults()))" }
}

extension SettingOption {
  typealias Defaults<Value> = @Sendable (Preset, ProtocolKind) -> Value

  /// An option whose value is read by `parse` from a flag's text or a spec node and then checked.
  static func make<Value: Sendable & Equatable>(
    _ key: String, _ valueName: String, _ help: String, protocols: Set<ProtocolKind> = Set(ProtocolKind.allCases),
    _ path: WritableKeyPath<RunSettings, Value> & Sendable, default value: @escaping Defaults<Value>,
    parse: @escaping @Sendable (SettingSource, _ describe: String) throws -> Value,
    check: @escaping @Sendable (Value) -> String? = { _ in nil },
    show: @escaping @Sendable (Value) -> String = { "\($0)" }
  ) -> SettingOption {
    let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
    return SettingOption(
      key: key, valueName: valueName, help: help, protocols: protocols,
      reset: { settings in settings[keyPath: path] = value(settings.preset, settings.protocolKind) },
      assign: { settings, source in
        let parsed = try parse(source, flag)
        if let problem = check(parsed) { throw source.error(problem, flag: flag) }
        settings[keyPath: path] = parsed
      },
      render: { show($0[keyPath: path]) },
      defaults: {
        let kinds = ProtocolKind.allCases.filter(protocols.contains)
        func byPreset(_ kind: ProtocolKind) -> String {
          let paper = show(value(.paper, kind)), tuned = show(value(.tuned, kind))
          return paper == tuned ? paper : "paper \(paper), tuned \(tuned)"
        }
        let shown = kinds.map(byPreset)
        if Set(shown).count == 1 { return "default " + shown[0] }
        return "default " + zip(kinds, shown).map { "\($0.rawValue): \($1)" }.joined(separator: "; ")
      })
  }

  static func integer(_ key: String, _ help: String, protocols: Set<ProtocolKind> = Set(ProtocolKind.allCases),
                      _ path: WritableKeyPath<RunSettings, Int> & Sendable, atLeast minimum: Int, atMost maximum: Int,
                      default value: @escaping Defaults<Int>) -> SettingOption {
    make(key, "N", help, protocols: protocols, path, default: value, parse: { try readInteger($0, $1) },
         check: { ($0 < minimum || $0 > maximum) ? "must be within \(minimum)...\(maximum), not \($0)" : nil })
  }

  /// An integer where 0 means "off" (nil).
  static func optionalInteger(_ key: String, _ help: String, protocols: Set<ProtocolKind> = Set(ProtocolKind.allCases),
                              _ path: WritableKeyPath<RunSettings, Int?> & Sendable, atMost maximum: Int,
                              default value: @escaping Defaults<Int?>) -> SettingOption {
    make(key, "N", help, protocols: protocols, path, default: value,
         parse: { source, flag in
           let number = try readInteger(source, flag)
           guard number >= 0 else {
             throw source.error("must be 0 (off) or a positive integer, not \(number)", flag: flag)
           }
           return number == 0 ? nil : number
         },
         check: { ($0 ?? 0) > maximum ? "must be at most \(maximum)" : nil },
         show: { $0.map(String.init) ?? "off" })
  }

  static func rate(_ key: String, _ help: String, protocols: Set<ProtocolKind> = Set(ProtocolKind.allCases),
                   _ path: WritableKeyPath<RunSettings, Float> & Sendable, default value: @escaping Defaults<Float>)
    -> SettingOption
  {
    make(key, "LR", help, protocols: protocols, path, default: value,
         parse: { Float(try readNumber($0, $1)) },
         check: { $0.isFinite && $0 > 0 && $0 <= 10 ? nil : "must be a learning rate in (0, 10], not \($0)" })
  }

  static func choice<Value: RawRepresentable & CaseIterable & Sendable & Equatable>(
    _ key: String, _ help: String, protocols: Set<ProtocolKind> = Set(ProtocolKind.allCases),
    _ path: WritableKeyPath<RunSettings, Value> & Sendable, default value: @escaping Defaults<Value>
  ) -> SettingOption where Value.RawValue == String {
    let names = Value.allCases.map(\.rawValue)
    return make(key, "NAME", help + " (" + names.joined(separator: " or ") + ")", protocols: protocols, path,
                default: value,
                parse: { source, flag in
                  let text = try readText(source, flag)
                  guard let parsed = Value(rawValue: text) else {
                    throw source.error("must be one of \(names.joined(separator: ", ")), not \"\(text)\"", flag: flag)
                  }
                  return parsed
                },
                show: { $0.rawValue })
  }
}

/// Reading a setting's raw value from its source, with errors naming the flag or key path.
private func readText(_ source: SettingSource, _ flag: String) throws -> String {
  switch source {
  case .flag(let text): return text
  case .spec(let node): return try node.string()
  }
}

private func readNumber(_ source: SettingSource, _ flag: String) throws -> Double {
  switch source {
  case .flag(let text):
    guard let number = Double(text.trimmingCharacters(in: .whitespaces)), number.isFinite else {
      throw SettingError("\(flag) expects a number, got \"\(text)\"")
    }
    return number
  case .spec(let node):
    let number = try node.number()
    guard number.isFinite else { throw node.error("expected a finite number") }
    return number
  }
}

private func readInteger(_ source: SettingSource, _ flag: String) throws -> Int {
  switch source {
  case .flag(let text):
    guard let number = Int(text.trimmingCharacters(in: .whitespaces)) else {
      throw SettingError("\(flag) expects an integer, got \"\(text)\"")
    }
    return number
  case .spec(let node): return try node.integer()
  }
}

private func readNumbers(_ source: SettingSource, _ flag: String) throws -> [Double] {
  switch source {
  case .flag(let text):
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    let numbers = parts.compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, numbers.count == parts.count, numbers.allSatisfy(\.isFinite) else {
      throw SettingError("\(flag) expects comma-separated numbers, got \"\(text)\"")
    }
    return numbers
  case .spec(let node): return try node.array().map { try $0.number() }
  }
}

extension RunSettings {
  private static let fedMetaAlignOnly: Set<ProtocolKind> = [.fedMetaAlign]
  private static let flOnly: Set<ProtocolKind> = [.fl]

  /// The option table: one entry per hyperparameter.
  public static let options: [SettingOption] = [
    .make("hidden_widths", "W1,W2,…", "hidden layer widths of the global model", \.hiddenWidths,
          default: { _, _ in paperHiddenWidths },
          parse: { source, flag in
            let numbers = try readNumbers(source, flag)
            guard numbers.allSatisfy({ $0 == $0.rounded() && $0 >= 1 && $0 <= 4096 }) else {
              throw source.error("expects widths in 1...4096, got \(numbers)", flag: flag)
            }
            return numbers.map { Int($0) }
          },
          check: { (1...32).contains($0.count) ? nil : "needs 1 to 32 hidden layers, not \($0.count)" },
          show: { $0.map(String.init).joined(separator: ",") }),
    .choice("optimizer", "local optimizer", \.optimizer, default: { _, _ in .adam }),
    .choice("class_weighting", "class weights of every training loss: balanced weighs class c by n/(k·n_c) "
              + "over the rows being trained on, capped at 2", \.classWeighting, default: { _, _ in ClassWeighting.none }),
    .rate("learning_rate", "local learning rate", \.learningRate,
          default: { preset, _ in preset == .paper ? 1e-5 : 1e-3 }),
    .integer("batch_size", "local batch size", \.batchSize, atLeast: 1, atMost: 1 << 20,
             default: { preset, _ in preset == .paper ? 1 : 16 }),
    .integer("rounds", "FL rounds (Fed-Meta-Align: Phase 2 parallel rounds)", \.rounds, atLeast: 1, atMost: 100_000,
             default: { _, kind in kind == .fl ? 20 : 10 }),
    .integer("local_epochs", "local epochs per round, when local_steps is off", \.localEpochs, atLeast: 1,
             atMost: 10_000, default: { _, _ in 1 }),
    .optionalInteger("local_steps", "about N optimizer steps per client per round instead of local_epochs, 0: off",
                     \.localSteps, atMost: 10_000_000, default: { _, _ in nil }),
    .make("clients_per_round", "N|F", "clients trained per round: a count, a share in (0, 1), or all",
          protocols: flOnly, \.clientsPerRound, default: { _, _ in .all },
          parse: { source, flag in
            if case .spec(let node) = source, case .string(let text) = node.value, text == "all" { return .all }
            if case .flag("all") = source { return .all }
            let number = try readNumber(source, flag)
            if number > 0 && number < 1 { return .fraction(number) }
            guard number >= 1, number == number.rounded(), number <= 10_000_000 else {
              throw source.error("must be a count ≥ 1, a share in (0, 1) or \"all\", not \(number)", flag: flag)
            }
            return .count(Int(number))
          }),
    .make("phases", "P1,P2,P3", "shares of each device's train part for Phases 1/2/3", protocols: fedMetaAlignOnly,
          \.phaseFractions, default: { preset, _ in preset == .paper ? [0.2, 0.5, 0.3] : [0.1, 0.3, 0.6] },
          parse: { try readNumbers($0, $1) },
          check: { shares in
            shares.count == 3 && shares.allSatisfy({ (0...1).contains($0) }) && abs(shares.reduce(0, +) - 1) < 1e-9
              ? nil : "must be three shares in 0...1 that sum to 1, not \(shares)"
          },
          show: { $0.map { String(Int(($0 * 100).rounded())) }.joined(separator: "/") }),
    .integer("pretrain_epochs", "Phase 0 epochs on the pretraining set, 0 skips it", protocols: fedMetaAlignOnly,
             \.pretrainEpochs, atLeast: 0, atMost: 10_000, default: { preset, _ in preset == .paper ? 1 : 0 }),
    .integer("serial_rounds", "Phase 1 rounds of the initializer", protocols: fedMetaAlignOnly, \.serialRounds,
             atLeast: 0, atMost: 10_000, default: { _, _ in 10 }),
    .integer("serial_epochs", "Phase 1 epochs per device visit", protocols: fedMetaAlignOnly, \.serialEpochs,
             atLeast: 1, atMost: 10_000, default: { _, _ in 1 }),
    .integer("personalization_epochs", "fine-tuning epochs on each device after the rounds, 0 skips it",
             \.personalizationEpochs, atLeast: 0, atMost: 10_000, default: { _, _ in 10 }),
    .rate("personalization_learning_rate", "fine-tuning learning rate", \.personalizationLearningRate,
          default: { preset, _ in preset == .paper ? 1e-5 : 1e-3 }),
    .make("freeze_fraction", "F", "share of the layers frozen while fine-tuning", \.freezeFraction,
          default: { preset, kind in preset == .paper && kind == .fedMetaAlign ? 0.5 : 0 },
          parse: { try readNumber($0, $1) },
          check: { (0...1).contains($0) ? nil : "must be within 0...1, not \($0)" }),
    .optionalInteger("early_stopping", "patience: fine-tuning and Local Only keep the epoch of lowest validation loss, stopping after N epochs without improvement, 0: off",
                     \.earlyStoppingPatience, atMost: 10_000, default: { _, _ in nil }),
    .optionalInteger("round_patience", "patience: keep the global model of the round of lowest validation loss (over every client's validation slice), stopping after N rounds without improvement, 0: off",
                     protocols: flOnly, \.roundPatience, atMost: 100_000, default: { _, _ in nil }),
    .integer("local_only_epochs", "epochs of the Local Only baseline", \.localOnlyEpochs, atLeast: 1, atMost: 100_000,
             default: { _, kind in kind == .fl ? 20 : 10 }),
    .integer("centralized_epochs", "epochs of the centralized bound on the pooled training data", protocols: flOnly,
             \.centralizedEpochs, atLeast: 1, atMost: 100_000, default: { _, _ in 20 }),
    // MEFL's paper-recovered client (one first-order meta step of 1e-3 per round) leaves the
    // global model at its initialization after 20 rounds (chance accuracy on the suite); under
    // fl the client takes as many meta steps as a FedAvg client takes optimizer steps, roughly.
    .integer("meta_outer_steps", "meta steps per round of a Meta-SGD client (MEFL's outer_steps)", \.metaOuterSteps,
             atLeast: 1, atMost: 10_000, default: { _, kind in kind == .fl ? 40 : 1 }),
    .rate("meta_learning_rate", "learning rate of a Meta-SGD client's meta step (MEFL's meta_learning_rate)",
          \.metaLearningRate, default: { _, kind in kind == .fl ? 1e-2 : 1e-3 }),
    .choice("threshold", "decision threshold of binary tasks: F1-optimal on the validation slice, or 0.5",
            \.threshold, default: { preset, kind in preset == .paper && kind == .fedMetaAlign ? .f1 : .fixed }),
  ]
}

extension RunSettings {
  /// Spec keys kept from earlier versions, and the option they now name.
  static let aliases = ["parallel_rounds": "rounds"]

  /// A run's settings: the preset's and protocol's defaults, then the spec's `training` entries
  /// (and its `splits` phase shares), then command-line flags (text by option key). The
  /// protocol comes from `protocolName`, else the spec's `training.protocol`, else Fed-Meta-Align.
  /// An option the protocol does not use is an error, wherever it was given.
  public static func resolve(preset presetName: String?, protocol protocolName: String?, training: TrainingOverrides,
                             flags: [String: String], threads: Int) throws -> RunSettings {
    let preset = try presetName.map { name in
      guard let preset = Preset(rawValue: name) else {
        throw SettingError("--preset must be one of \(Preset.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(name)\"")
      }
      return preset
    } ?? .tuned
    var protocolKind = ProtocolKind.fedMetaAlign
    let specProtocol = training.entries.first { $0.key == "protocol" }
    if let protocolName {
      guard let kind = ProtocolKind(rawValue: protocolName) else {
        throw SettingError("--protocol must be one of \(ProtocolKind.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(protocolName)\"")
      }
      protocolKind = kind
    } else if let specProtocol {
      let name = try specProtocol.string()
      guard let kind = ProtocolKind(rawValue: name) else {
        throw specProtocol.error("must be one of \(ProtocolKind.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(name)\"")
      }
      protocolKind = kind
    }
    guard threads >= 1 && threads <= 1024 else { throw SettingError("--threads must be within 1...1024, not \(threads)") }
    var settings = RunSettings(preset: preset, protocolKind: protocolKind, threads: threads)
    let byKey = Dictionary(uniqueKeysWithValues: options.map { ($0.key, $0) })
    if let phases = training.phases, protocolKind == .fedMetaAlign { settings.phaseFractions = phases }
    for node in training.entries where node.key != "protocol" {
      let key = aliases[node.key] ?? node.key
      guard let option = byKey[key] else {
        var message = "unknown key"
        if let guess = closestName(to: node.key, in: options.map(\.key) + ["protocol", "seed", "mu", "similarity_floor"]) {
          message += " (did you mean \"\(guess)\"?)"
        }
        throw node.error(message)
      }
      guard option.protocols.contains(protocolKind) else {
        throw node.error("only used by the \(option.protocols.map(\.rawValue).sorted().joined(separator: ", ")) protocol, not \(protocolKind.rawValue)")
      }
      try option.apply(spec: node, to: &settings)
    }
    for key in flags.keys.sorted() {
      guard let option = byKey[key] else { throw SettingError("unknown setting \(key)") }
      guard option.protocols.contains(protocolKind) else {
        throw SettingError("--\(option.flag) is only used by the \(option.protocols.map(\.rawValue).sorted().joined(separator: ", ")) protocol, not \(protocolKind.rawValue)")
      }
      try option.apply(flagValue: flags[key]!, to: &settings)
    }
    return settings
  }
}
