import FedHostCore
import Foundation
import Testing

/// The strict JSON reader: what it reads, and where it points when it refuses.
@Suite("Strict JSON")
struct StrictJSONTests {
  static func parse(_ text: String) throws -> JSONValue { try StrictJSON.parse(Array(text.utf8), file: "t.json") }

  static func failure(_ text: String) -> String? {
    do { _ = try parse(text); return nil } catch { return "\(error)" }
  }

  /// Whether Foundation's reading `other` holds the same value as `value`.
  static func sameValue(_ value: JSONValue, _ other: Any) -> Bool {
    switch value {
    case .null: return other is NSNull
    case .bool(let flag): return (other as? Bool) == flag
    case .number(let number): return (other as? NSNumber)?.doubleValue == number
    case .string(let text): return (other as? String) == text
    case .array(let items):
      guard let others = other as? [Any], others.count == items.count else { return false }
      return zip(items, others).allSatisfy { sameValue($0, $1) }
    case .object(let fields):
      guard let others = other as? [String: Any], Set(others.keys) == Set(fields.keys) else { return false }
      return fields.allSatisfy { key, field in sameValue(field, others[key]!) }
    }
  }

  @Test func readsEveryKindOfValue() throws {
    let value = try Self.parse(#" {"a": [1, -2.5e3, 0.125, true, false, null], "b": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "": {}} "#)
    #expect(value == .object([
      "a": .array([.number(1), .number(-2500), .number(0.125), .bool(true), .bool(false), .null]),
      "b": .string("x\"\\/\u{08}\u{0C}\n\r\té😀"),
      "": .object([:]),
    ]))
    #expect(try Self.parse("\u{FEFF}[]") == .array([]))
    #expect(try Self.parse("\"é\"") == .string("é"))
  }

  @Test(arguments: [
    ("{\"a\": 1, \"a\": 2}", "t.json: line 1 column 10: duplicate key \"a\""),
    ("{\n  \"a\": 1,\n  \"b\": {\"c\": 1,\n        \"c\": 2}}", "t.json: line 4 column 9: duplicate key \"c\""),
    ("[1, 2,]", "t.json: line 1 column 7: trailing comma before \"]\""),
    ("{\"a\": 1,\n}", "t.json: line 2 column 1: trailing comma before \"}\""),
    ("{\"é\": 1, \"é\": 2}", "t.json: line 1 column 10: duplicate key \"é\""),
    ("\"é\u{01}\"", "t.json: line 1 column 3: control character 0x1 in a string (write it as an escape)"),
    ("[1] [2]", "t.json: line 1 column 5: unexpected \"[\" after the JSON value"),
    ("-", "t.json: line 1 column 2: a number needs digits after \"-\""),
    ("tru", "t.json: line 1 column 1: unexpected \"t\", expected a value"),
    ("", "t.json: line 1 column 1: unexpected end of file, expected a value"),
  ])
  func refusalsNameLineAndColumn(text: String, expected: String) {
    #expect(Self.failure(text) == expected)
  }

  @Test func nestingIsBoundedInsteadOfExhaustingTheStack() {
    let deepest = StrictJSON.maximumDepth
    #expect(Self.failure(String(repeating: "[", count: deepest) + String(repeating: "]", count: deepest)) == nil)
    #expect(Self.failure(String(repeating: "[", count: 100_000))?.contains("nested deeper than \(deepest) levels") == true)
  }
}
