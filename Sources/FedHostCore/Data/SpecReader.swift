import Foundation

/// One value of a spec file and its key path, with typed accessors whose errors name that path.
struct SpecNode: Equatable, Sendable {
  let value: JSONValue
  let path: String
  let file: String

  /// The whole document, read strictly (see `StrictJSON`): a duplicate key or a trailing comma
  /// is an error naming its line and column, not a silent choice.
  static func parse(_ data: Data, file: String) throws -> SpecNode {
    SpecNode(value: try StrictJSON.parse([UInt8](data), file: file), path: "", file: file)
  }

  func error(_ message: String) -> SpecError { SpecError(file: file, path: path, message) }

  func child(_ key: String, _ value: JSONValue) -> SpecNode {
    SpecNode(value: value, path: path.isEmpty ? key : "\(path).\(key)", file: file)
  }

  /// The last component of the key path (`batch_size` for `training.batch_size`).
  var key: String { String(path.split(separator: ".").last ?? "") }

  /// This value as an object whose keys must all be in `allowed` (nil: any key).
  func object(allowed: [String]?) throws -> SpecObject {
    guard case .object(let fields) = value else { throw error("expected an object, found \(value.kind)") }
    for key in fields.keys.sorted() where allowed.map({ !$0.contains(key) }) ?? false {
      let allowed = allowed!
      var message = "unknown key"
      if let guess = closestName(to: key, in: allowed) { message += " (did you mean \"\(guess)\"?)" }
      throw child(key, .null).error(message)
    }
    return SpecObject(node: self, fields: fields)
  }

  func array() throws -> [SpecNode] {
    guard case .array(let items) = value else { throw error("expected an array, found \(value.kind)") }
    return items.enumerated().map { SpecNode(value: $1, path: "\(path)[\($0)]", file: file) }
  }

  func string() throws -> String {
    guard case .string(let text) = value else { throw error("expected a string, found \(value.kind)") }
    return text
  }

  func number() throws -> Double {
    guard case .number(let number) = value else { throw error("expected a number, found \(value.kind)") }
    return number
  }

  func integer() throws -> Int {
    let number = try number()
    guard number == number.rounded(), abs(number) < 0x1p53 else {
      throw error("expected an integer, found \(number)")
    }
    return Int(number)
  }

  /// An integer in `range`; absurd sizes are refused here, before anything is allocated for them.
  func integer(in range: ClosedRange<Int>) throws -> Int {
    let value = try integer()
    guard range.contains(value) else {
      throw error("must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
    }
    return value
  }

  func stringArray() throws -> [String] { try array().map { try $0.string() } }

  /// This value written back as compact JSON text (a plugin config entry's value).
  func jsonText() throws -> String {
    switch value {
    case .null: return "null"
    case .bool(let flag): return flag ? "true" : "false"
    case .number(let number):
      guard number.isFinite else { throw error("expected a finite number") }
      return number == number.rounded() && abs(number) < 0x1p53 ? String(Int(number)) : String(number)
    case .string(let text):
      let data = try JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed])
      return String(decoding: data, as: UTF8.self)
    case .array(let items):
      return "[" + (try items.indices.map { try child("[\($0)]", items[$0]).jsonText() }).joined(separator: ",") + "]"
    case .object(let fields):
      let parts = try fields.keys.sorted().map { key -> String in
        let name = try JSONSerialization.data(withJSONObject: key, options: [.fragmentsAllowed])
        return String(decoding: name, as: UTF8.self) + ":" + (try child(key, fields[key]!).jsonText())
      }
      return "{" + parts.joined(separator: ",") + "}"
    }
  }

  /// A string that must be one of `choices`.
  func choice(_ choices: [String]) throws -> String {
    let text = try string()
    guard choices.contains(text) else {
      throw error("\"\(text)\" is not one of \(choices.map { "\"\($0)\"" }.joined(separator: ", "))")
    }
    return text
  }
}

/// An object's fields, looked up with key-path-aware errors.
struct SpecObject {
  let node: SpecNode
  let fields: [String: JSONValue]

  func has(_ key: String) -> Bool { fields[key] != nil }

  func optional(_ key: String) -> SpecNode? {
    fields[key].map { node.child(key, $0) }
  }

  func required(_ key: String) throws -> SpecNode {
    guard let child = optional(key) else { throw node.child(key, .null).error("missing") }
    return child
  }

  /// An optional number that must satisfy `valid` (described by `rule` in the error).
  func number(_ key: String, _ rule: String, _ valid: (Double) -> Bool) throws -> Double? {
    guard let child = optional(key) else { return nil }
    let value = try child.number()
    guard valid(value) else { throw child.error("must be \(rule), not \(value)") }
    return value
  }

  func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
    try optional(key)?.integer(in: range)
  }

  func integer(_ key: String, atLeast minimum: Int) throws -> Int? {
    guard let child = optional(key) else { return nil }
    let value = try child.integer()
    guard value >= minimum else { throw child.error("must be at least \(minimum), not \(value)") }
    return value
  }
}
