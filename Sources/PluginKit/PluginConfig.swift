/// A plugin's validated configuration: the JSON object given to `create`, checked strictly
/// against the plugin's declared keys.
///
/// Unknown keys, duplicate keys, wrong types and out-of-range values are `FHP_E_INVALID`
/// with a message naming the key, so typos surface at once instead of silently running
/// with a default. Absent keys take their declared default.
public struct PluginConfig: Sendable {
  private let values: [String: ConfigValue]
  private let declared: [String: ConfigKey]

  /// The generator seed ("seed", default 0).
  public let seed: UInt64

  /// Parses `json` (a flat JSON object) against `keys` ("seed" is always accepted).
  public init(json: String, keys: [ConfigKey]) throws {
    let accepted = [ConfigKey.seed] + keys
    declared = Dictionary(accepted.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    var values: [String: ConfigValue] = [:]
    for (name, literal) in try JSONText.parseFlatObject(json) {
      guard let key = declared[name] else {
        throw PluginFailure.invalid(
          "unknown config key \(JSONText.quoted(name)) (accepted: \(accepted.map(\.name).joined(separator: ", ")))")
      }
      guard values[name] == nil else {
        throw PluginFailure.invalid("config key \(JSONText.quoted(name)) appears twice")
      }
      values[name] = try Self.convert(literal, for: key)
    }
    self.values = values
    if case let .integer(seed)? = values["seed"] {
      guard let seed = UInt64(exactly: seed) else {
        throw PluginFailure.invalid("config key \"seed\" must be a non-negative integer; got \(seed)")
      }
      self.seed = seed
    } else {
      self.seed = 0
    }
  }

  private static func convert(_ literal: JSONText.Literal, for key: ConfigKey) throws -> ConfigValue {
    let name = JSONText.quoted(key.name)
    let value: ConfigValue
    switch (key.type, literal) {
    case let (.number, .number(number, _)):
      value = .number(number)
    case let (.integer, .number(number, text)):
      // The literal first, so large seeds keep every digit.
      guard let integer = Int64(text) ?? Int64(exactly: number) else {
        throw PluginFailure.invalid("config key \(name) must be an integer; got \(literal.summary)")
      }
      value = .integer(integer)
    case let (.boolean, .boolean(flag)):
      value = .boolean(flag)
    case let (.string, .string(text)):
      guard key.choices.isEmpty || key.choices.contains(text) else {
        throw PluginFailure.invalid(
          "config key \(name) must be one of \(key.choices.map(JSONText.quoted).joined(separator: ", ")); got \(literal.summary)")
      }
      value = .string(text)
    default:
      let article = key.type == .integer ? "an" : "a"
      throw PluginFailure.invalid("config key \(name) must be \(article) \(key.type.rawValue); got \(literal.summary)")
    }
    if let range = key.range, case let .number(number, _) = literal, !range.contains(number) {
      throw PluginFailure.invalid("config key \(name) must be in \(key.describedRange); got \(literal.summary)")
    }
    return value
  }

  private func value(_ name: String) throws -> ConfigValue {
    if let value = values[name] { return value }
    guard let key = declared[name] else {
      throw PluginFailure.internal("the plugin read config key \(JSONText.quoted(name)) it never declared")
    }
    return key.defaultValue
  }

  /// A "number" key (integers are numbers too).
  public func number(_ name: String) throws -> Double {
    switch try value(name) {
    case let .number(value): return value
    case let .integer(value): return Double(value)
    default: throw PluginFailure.internal("config key \(JSONText.quoted(name)) is not a number")
    }
  }

  /// An "integer" key.
  public func integer(_ name: String) throws -> Int64 {
    guard case let .integer(value) = try value(name) else {
      throw PluginFailure.internal("config key \(JSONText.quoted(name)) is not an integer")
    }
    return value
  }

  /// A "boolean" key.
  public func boolean(_ name: String) throws -> Bool {
    guard case let .boolean(value) = try value(name) else {
      throw PluginFailure.internal("config key \(JSONText.quoted(name)) is not a boolean")
    }
    return value
  }

  /// A "string" key.
  public func string(_ name: String) throws -> String {
    guard case let .string(value) = try value(name) else {
      throw PluginFailure.internal("config key \(JSONText.quoted(name)) is not a string")
    }
    return value
  }
}

extension ConfigKey {
  var describedRange: String {
    guard let range else { return "any value" }
    return "[\(ConfigValue.number(range.lowerBound).jsonLiteral(as: type)), "
      + "\(ConfigValue.number(range.upperBound).jsonLiteral(as: type))]"
  }
}
