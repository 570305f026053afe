/// A small strict JSON reader for flat config objects, and JSON string quoting.
///
/// Accepts exactly one JSON object whose values are numbers, strings, booleans or null
/// (nested arrays and objects are reported as such so the caller can name the key).
/// No Foundation: plugins should load and parse fast.
enum JSONText {
  /// One value of the object, before it is checked against a key's type.
  enum Literal {
    case number(Double, text: String)
    case string(String)
    case boolean(Bool)
    case null
    case array
    case object

    /// How the value is shown in error messages.
    var summary: String {
      switch self {
      case let .number(_, text): return text
      case let .string(text): return JSONText.quoted(text)
      case let .boolean(flag): return flag ? "true" : "false"
      case .null: return "null"
      case .array: return "an array"
      case .object: return "an object"
      }
    }
  }

  /// The members of a flat JSON object, in order (duplicates kept for the caller to reject).
  static func parseFlatObject(_ text: String) throws -> [(String, Literal)] {
    var reader = Reader(bytes: Array(text.utf8))
    var members: [(String, Literal)] = []
    reader.skipWhitespace()
    try reader.expect(UInt8(ascii: "{"), "the config must be a JSON object")
    reader.skipWhitespace()
    if !reader.consume(UInt8(ascii: "}")) {
      repeat {
        reader.skipWhitespace()
        let key = try reader.string()
        reader.skipWhitespace()
        try reader.expect(UInt8(ascii: ":"), "expected ':' after key \(quoted(key))")
        reader.skipWhitespace()
        members.append((key, try reader.value(for: key)))
        reader.skipWhitespace()
      } while reader.consume(UInt8(ascii: ","))
      try reader.expect(UInt8(ascii: "}"), "expected ',' or '}'")
    }
    reader.skipWhitespace()
    guard reader.atEnd else { throw reader.failure("unexpected text after the config object") }
    return members
  }

  /// `text` as a JSON string literal.
  static func quoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": result += "\\\""
      case "\\": result += "\\\\"
      case "\n": result += "\\n"
      case "\r": result += "\\r"
      case "\t": result += "\\t"
      case _ where scalar.value < 0x20:
        let hex = String(scalar.value, radix: 16)
        result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: result.unicodeScalars.append(scalar)
      }
    }
    return result + "\""
  }

  private struct Reader {
    let bytes: [UInt8]
    var offset = 0

    var atEnd: Bool { offset >= bytes.count }
    private var current: UInt8? { atEnd ? nil : bytes[offset] }

    func failure(_ message: String) -> PluginFailure {
      .invalid("config is not a valid JSON object: \(message) at byte \(offset)")
    }

    mutating func skipWhitespace() {
      while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { offset += 1 }
    }

    mutating func consume(_ byte: UInt8) -> Bool {
      guard current == byte else { return false }
      offset += 1
      return true
    }

    mutating func expect(_ byte: UInt8, _ message: String) throws {
      guard consume(byte) else { throw failure(message) }
    }

    private mutating func consumeWord(_ word: String) -> Bool {
      let wordBytes = Array(word.utf8)
      guard bytes.count - offset >= wordBytes.count,
            Array(bytes[offset..<offset + wordBytes.count]) == wordBytes else { return false }
      offset += wordBytes.count
      return true
    }

    mutating func value(for key: String) throws -> Literal {
      switch current {
      case UInt8(ascii: "\""): return .string(try string())
      case UInt8(ascii: "["): try skipNested(); return .array
      case UInt8(ascii: "{"): try skipNested(); return .object
      case UInt8(ascii: "t") where consumeWord("true"): return .boolean(true)
      case UInt8(ascii: "f") where consumeWord("false"): return .boolean(false)
      case UInt8(ascii: "n") where consumeWord("null"): return .null
      case .some(UInt8(ascii: "-")), .some(UInt8(ascii: "0")...UInt8(ascii: "9")): return try number()
      default: throw failure("expected a value for key \(quoted(key))")
      }
    }

    /// Skips a nested array or object, strings included, so its key can be reported.
    private mutating func skipNested() throws {
      var depth = 0
      repeat {
        guard let byte = current else { throw failure("unterminated array or object") }
        switch byte {
        case UInt8(ascii: "\""): _ = try string(); continue
        case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1
        case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
        default: break
        }
        offset += 1
      } while depth > 0
    }

    private mutating func digits() -> Int {
      let start = offset
      while let byte = current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { offset += 1 }
      return offset - start
    }

    /// A number in strict JSON grammar (no leading '+', no leading zeros, no "1." or ".5").
    private mutating func number() throws -> Literal {
      let start = offset
      _ = consume(UInt8(ascii: "-"))
      if consume(UInt8(ascii: "0")) {
        if let byte = current, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
          throw failure("leading zeros are not allowed in numbers")
        }
      } else if digits() == 0 {
        throw failure("malformed number")
      }
      if consume(UInt8(ascii: ".")), digits() == 0 { throw failure("malformed number") }
      if consume(UInt8(ascii: "e")) || consume(UInt8(ascii: "E")) {
        if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
        if digits() == 0 { throw failure("malformed number") }
      }
      let text = String(decoding: bytes[start..<offset], as: UTF8.self)
      guard let value = Double(text), value.isFinite else { throw failure("number \(text) is out of range") }
      return .number(value, text: text)
    }

    mutating func string() throws -> String {
      try expect(UInt8(ascii: "\""), "expected a string")
      var scalars = String.UnicodeScalarView()
      var utf8Run: [UInt8] = []
      func flush() {
        scalars.append(contentsOf: String(decoding: utf8Run, as: UTF8.self).unicodeScalars)
        utf8Run.removeAll(keepingCapacity: true)
      }
      while true {
        guard let byte = current else { throw failure("unterminated string") }
        offset += 1
        switch byte {
        case UInt8(ascii: "\""):
          flush()
          return String(scalars)
        case UInt8(ascii: "\\"):
          flush()
          scalars.append(try escape())
        case 0..<0x20:
          throw failure("control character in string")
        default:
          utf8Run.append(byte)
        }
      }
    }

    private mutating func escape() throws -> Unicode.Scalar {
      guard let byte = current else { throw failure("unterminated escape") }
      offset += 1
      switch byte {
      case UInt8(ascii: "\""): return "\""
      case UInt8(ascii: "\\"): return "\\"
      case UInt8(ascii: "/"): return "/"
      case UInt8(ascii: "b"): return "\u{08}"
      case UInt8(ascii: "f"): return "\u{0C}"
      case UInt8(ascii: "n"): return "\n"
      case UInt8(ascii: "r"): return "\r"
      case UInt8(ascii: "t"): return "\t"
      case UInt8(ascii: "u"):
        let unit = try hexUnit()
        if (0xD800..<0xDC00).contains(unit) {
          guard consume(UInt8(ascii: "\\")), consume(UInt8(ascii: "u")) else { throw failure("lone surrogate") }
          let low = try hexUnit()
          guard (0xDC00..<0xE000).contains(low),
                let scalar = Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)) else {
            throw failure("bad surrogate pair")
          }
          return scalar
        }
        guard let scalar = Unicode.Scalar(unit) else { throw failure("lone surrogate") }
        return scalar
      default:
        throw failure("unknown escape")
      }
    }

    private mutating func hexUnit() throws -> UInt32 {
      guard bytes.count - offset >= 4,
            let unit = UInt32(String(decoding: bytes[offset..<offset + 4], as: UTF8.self), radix: 16) else {
        throw failure("bad \\u escape")
      }
      offset += 4
      return unit
    }
  }
}
