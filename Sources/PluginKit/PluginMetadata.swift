import PluginAPI

/// What a plugin is: the data behind its static `fhp_descriptor`.
public struct PluginMetadata: Sendable {
  /// Reverse-DNS, stable: "org.fedhost.fedavg". Also stamped into saved state.
  public var id: String
  public var name: String
  public var version: String
  /// One or two sentences for `host plugins describe`.
  public var summary: String
  /// Which vtable functions the plugin implements; the descriptor's kinds follow from it.
  public var capabilities: PluginCapabilities
  /// Accepted config keys besides "seed", which PluginKit always accepts and lists first.
  public var configKeys: [ConfigKey]
  /// Format version written into saved state; bump it when the state layout changes.
  public var stateVersion: UInt32
  /// Auxiliary vectors per client and round (each n_params floats): written by `prepareClient`
  /// for the client (down) and by the client hook for the aggregator (up). ABI 1.2.
  public var auxDownVectors: UInt32
  public var auxUpVectors: UInt32

  public init(id: String, name: String, version: String, summary: String,
              capabilities: PluginCapabilities, configKeys: [ConfigKey] = [], stateVersion: UInt32 = 1,
              auxDownVectors: UInt32 = 0, auxUpVectors: UInt32 = 0) {
    self.auxDownVectors = auxDownVectors
    self.auxUpVectors = auxUpVectors
    self.id = id
    self.name = name
    self.version = version
    self.summary = summary
    self.capabilities = capabilities
    self.configKeys = configKeys
    self.stateVersion = stateVersion
  }

  /// The descriptor's `FHP_KIND_*` bits.
  public var kinds: UInt32 {
    var kinds: UInt32 = 0
    if capabilities.contains(.aggregate) { kinds |= UInt32(FHP_KIND_AGGREGATOR) }
    if capabilities.contains(.initialize) { kinds |= UInt32(FHP_KIND_INITIALIZER) }
    if !capabilities.isDisjoint(with: [.adjustGradient, .adjustGradientInContext, .trainLocal]) {
      kinds |= UInt32(FHP_KIND_CLIENT_HOOK)
    }
    return kinds
  }

  /// Every key the config accepts, "seed" first.
  var acceptedKeys: [ConfigKey] { [ConfigKey.seed] + configKeys }
}

/// The vtable functions a plugin implements; the others are left NULL ("not supported").
public struct PluginCapabilities: OptionSet, Sendable {
  public let rawValue: UInt32
  public init(rawValue: UInt32) { self.rawValue = rawValue }

  public static let aggregate = PluginCapabilities(rawValue: 1 << 0)
  public static let initialize = PluginCapabilities(rawValue: 1 << 1)
  public static let adjustGradient = PluginCapabilities(rawValue: 1 << 2)
  public static let trainLocal = PluginCapabilities(rawValue: 1 << 3)
  /// save_state and load_state.
  public static let state = PluginCapabilities(rawValue: 1 << 4)
  /// prepare_client (ABI 1.2): the aux_down vectors each client receives.
  public static let prepareClient = PluginCapabilities(rawValue: 1 << 5)
  /// adjust_gradient_in_context (ABI 1.2): global-shaped vectors and the client's context.
  public static let adjustGradientInContext = PluginCapabilities(rawValue: 1 << 6)
  /// select_clients (ABI 1.2): the aggregator chooses each round's clients.
  public static let selectClients = PluginCapabilities(rawValue: 1 << 7)
}

/// One accepted config key: its JSON type, default, an optional valid range and a summary.
public struct ConfigKey: Sendable {
  public enum ValueType: String, Sendable {
    case number, integer, boolean, string
  }

  public let name: String
  public let type: ValueType
  public let defaultValue: ConfigValue
  public let summary: String
  /// Inclusive bounds for number and integer keys.
  public let range: ClosedRange<Double>?
  /// The allowed values of a string key (empty: any string).
  public let choices: [String]

  private init(name: String, type: ValueType, defaultValue: ConfigValue, summary: String,
               range: ClosedRange<Double>? = nil, choices: [String] = []) {
    self.name = name
    self.type = type
    self.defaultValue = defaultValue
    self.summary = summary
    self.range = range
    self.choices = choices
  }

  public static func number(_ name: String, default value: Double, in range: ClosedRange<Double>? = nil,
                            _ summary: String) -> ConfigKey {
    ConfigKey(name: name, type: .number, defaultValue: .number(value), summary: summary, range: range)
  }

  public static func integer(_ name: String, default value: Int64, in range: ClosedRange<Int64>? = nil,
                             _ summary: String) -> ConfigKey {
    ConfigKey(name: name, type: .integer, defaultValue: .integer(value), summary: summary,
              range: range.map { Double($0.lowerBound)...Double($0.upperBound) })
  }

  public static func boolean(_ name: String, default value: Bool, _ summary: String) -> ConfigKey {
    ConfigKey(name: name, type: .boolean, defaultValue: .boolean(value), summary: summary)
  }

  public static func string(_ name: String, default value: String, choices: [String] = [],
                            _ summary: String) -> ConfigKey {
    ConfigKey(name: name, type: .string, defaultValue: .string(value), summary: summary, choices: choices)
  }

  /// "seed": accepted by every plugin (header rule 9).
  static let seed = ConfigKey.integer("seed", default: 0,
                                      "seed of the plugin's random generator, >= 0 (accepted by every plugin)")

  /// The line `host plugins describe` shows, with range or choices appended.
  var describedSummary: String {
    if !choices.isEmpty { return "\(summary) (one of: \(choices.joined(separator: ", ")))" }
    return range == nil ? summary : "\(summary) (range \(describedRange))"
  }
}

/// A parsed config value.
public enum ConfigValue: Sendable, Equatable {
  case number(Double)
  case integer(Int64)
  case boolean(Bool)
  case string(String)

  /// The value as a JSON literal, e.g. `0.01`, `10`, `true`, `"v1"`.
  var jsonLiteral: String {
    switch self {
    case let .number(value): return value.description
    case let .integer(value): return value.description
    case let .boolean(value): return value ? "true" : "false"
    case let .string(value): return JSONText.quoted(value)
    }
  }

  func jsonLiteral(as type: ConfigKey.ValueType) -> String {
    if type == .integer, case let .number(value) = self, let exact = Int64(exactly: value) {
      return exact.description
    }
    return jsonLiteral
  }
}
