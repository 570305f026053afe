/// A parsed JSON value.
public enum JSONValue: Equatable, Sendable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  public var kind: String {
    switch self {
    case .null: "null"
    case .bool: "a boolean"
    case .number: "a number"
    case .string: "a string"
    case .array: "an array"
    case .object: "an object"
    }
  }
}

/// JSON text that is not strictly RFC 8259: the file, the 1-based line and column (in characters)
/// and what is wrong, e.g. `spec.json: line 4 column 7: duplicate key "label"`.
public struct JSONSyntaxError: InputError, Equatable, Sendable {
  public let file: String
  public let line: Int
  public let column: Int
  public let message: String

  public var description: String { "\(file): line \(line) column \(column): \(message)".escapingControlCharacters }
}

/// A strict JSON reader. Foundation's JSONSerialization accepts duplicate keys (the last one
/// silently wins) and, on Linux, trailing commas; a hand-written spec must not be read
/// differently from what its author sees, so this parser refuses both, as well as invalid UTF-8,
/// control characters in strings, lone surrogates, numbers outside Double's range and nesting
/// deeper than `maximumDepth` (which would otherwise exhaust the stack).
public struct StrictJSON {
  public static let maximumDepth = 256

  private let bytes: [UInt8]
  private let file: String
  private var position = 0
  private var line = 1
  private var lineStart = 0

  /// Parses one JSON document (any value at the top, surrounded only by whitespace).
  public static func parse(_ bytes: [UInt8], file: String) throws(JSONSyntaxError) -> JSONValue {
    var parser = StrictJSON(bytes: bytes, file: file)
    if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.position = 3 }
    parser.skipWhitespace()
    let value = try parser.value(depth: 0)
    parser.skipWhitespace()
    guard parser.position == bytes.count else { throw parser.failure("unexpected \(parser.describeNext()) after the JSON value") }
    return value
  }

  private init(bytes: [UInt8], file: String) {
    self.bytes = bytes
    self.file = file
  }

  private func failure(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
    let offset = offset ?? position
    // Columns count characters, not bytes: UTF-8 continuation bytes do not start one.
    let column = 1 + bytes[lineStart..<min(offset, bytes.count)].count { $0 & 0xC0 != 0x80 }
    return JSONSyntaxError(file: file, line: line, column: column, message: message)
  }

  private func describeNext() -> String {
    guard position < bytes.count else { return "end of file" }
    let byte = bytes[position]
    if byte >= 0x21 && byte < 0x7F { return "\"\(Character(Unicode.Scalar(byte)))\"" }
    return "byte 0x" + String(byte, radix: 16, uppercase: true)
  }

  private mutating func skipWhitespace() {
    while position < bytes.count {
      switch bytes[position] {
      case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"): position += 1
      case UInt8(ascii: "\n"):
        position += 1
        line += 1
        lineStart = position
      default: return
      }
    }
  }

  private mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
    guard position < bytes.count else { throw failure("unexpected end of file, expected a value") }
    switch bytes[position] {
    case UInt8(ascii: "{"): return try object(depth: depth + 1)
    case UInt8(ascii: "["): return try array(depth: depth + 1)
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): try literal("true"); return .bool(true)
    case UInt8(ascii: "f"): try literal("false"); return .bool(false)
    case UInt8(ascii: "n"): try literal("null"); return .null
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
    default: throw failure("unexpected \(describeNext()), expected a value")
    }
  }

  private mutating func literal(_ word: String) throws(JSONSyntaxError) {
    let expected = Array(word.utf8)
    guard bytes[position...].starts(with: expected) else { throw failure("unexpected \(describeNext()), expected a value") }
    position += expected.count
  }

  /// Consumes `byte` if it is next (after whitespace).
  private mutating func consume(_ byte: UInt8) -> Bool {
    skipWhitespace()
    guard position < bytes.count, bytes[position] == byte else { return false }
    position += 1
    return true
  }

  private mutating func enter(_ depth: Int) throws(JSONSyntaxError) {
    guard depth <= Self.maximumDepth else { throw failure("nested deeper than \(Self.maximumDepth) levels") }
    position += 1
  }

  private mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONValue {
    try enter(depth)
    var fields = [String: JSONValue]()
    if consume(UInt8(ascii: "}")) { return .object(fields) }
    while true {
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") { throw failure("trailing comma before \"}\"") }
        throw failure("unexpected \(describeNext()), expected a key in quotes")
      }
      let keyStart = position
      let (keyLine, keyLineStart) = (line, lineStart)
      let key = try string()
      guard fields[key] == nil else {
        // Point at the repeated key, which is where the reader's eye should go.
        let here = (line, lineStart)
        (line, lineStart) = (keyLine, keyLineStart)
        let error = failure("duplicate key \"\(key)\"", at: keyStart)
        (line, lineStart) = here
        throw error
      }
      guard consume(UInt8(ascii: ":")) else { throw failure("unexpected \(describeNext()), expected \":\" after key \"\(key)\"") }
      skipWhitespace()
      fields[key] = try value(depth: depth)
      if consume(UInt8(ascii: ",")) { continue }
      if consume(UInt8(ascii: "}")) { return .object(fields) }
      throw failure("unexpected \(describeNext()), expected \",\" or \"}\"")
    }
  }

  private mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONValue {
    try enter(depth)
    var items = [JSONValue]()
    if consume(UInt8(ascii: "]")) { return .array(items) }
    while true {
      skipWhitespace()
      if position < bytes.count, bytes[position] == UInt8(ascii: "]") { throw failure("trailing comma before \"]\"") }
      items.append(try value(depth: depth))
      if consume(UInt8(ascii: ",")) { continue }
      if consume(UInt8(ascii: "]")) { return .array(items) }
      throw failure("unexpected \(describeNext()), expected \",\" or \"]\"")
    }
  }

  private mutating func number() throws(JSONSyntaxError) -> Double {
    let start = position
    func digits() -> Int {
      let first = position
      while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
      return position - first
    }
    if bytes[position] == UInt8(ascii: "-") { position += 1 }
    let integerStart = position
    let integerDigits = digits()
    guard integerDigits > 0 else { throw failure("a number needs digits after \"-\"") }
    if integerDigits > 1 && bytes[integerStart] == UInt8(ascii: "0") {
      throw failure("a number must not start with 0", at: integerStart)
    }
    if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
      position += 1
      guard digits() > 0 else { throw failure("a number needs digits after \".\"") }
    }
    if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
      position += 1
      if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
      guard digits() > 0 else { throw failure("a number needs digits in its exponent") }
    }
    let text = String(decoding: bytes[start..<position], as: UTF8.self)
    guard let value = Double(text), value.isFinite else { throw failure("number \(text) is out of range", at: start) }
    return value
  }

  private mutating func string() throws(JSONSyntaxError) -> String {
    let opening = position
    position += 1
    var scalars = String.UnicodeScalarView()
    while true {
      guard position < bytes.count else { throw failure("string is never closed", at: opening) }
      let byte = bytes[position]
      switch byte {
      case UInt8(ascii: "\""):
        position += 1
        return String(scalars)
      case UInt8(ascii: "\\"):
        position += 1
        scalars.append(try escape())
      case 0..<0x20:
        throw failure("control character 0x\(String(byte, radix: 16, uppercase: true)) in a string (write it as an escape)")
      case 0..<0x80:
        scalars.append(Unicode.Scalar(byte))
        position += 1
      default:
        scalars.append(try multiByteScalar())
      }
    }
  }

  /// One UTF-8 sequence of two to four bytes, validated (no overlong forms, no surrogates).
  private mutating func multiByteScalar() throws(JSONSyntaxError) -> Unicode.Scalar {
    let lead = bytes[position]
    let (length, minimum): (Int, UInt32) = switch lead {
    case 0xC2...0xDF: (2, 0x80)
    case 0xE0...0xEF: (3, 0x800)
    case 0xF0...0xF4: (4, 0x10000)
    default: (0, 0)
    }
    let invalid = failure("invalid UTF-8 (byte 0x\(String(lead, radix: 16, uppercase: true)))")
    guard length > 0, position + length <= bytes.count else { throw invalid }
    var value = UInt32(lead) & (0xFF >> (length + 1))
    for offset in 1..<length {
      let next = bytes[position + offset]
      guard next & 0xC0 == 0x80 else { throw invalid }
      value = value << 6 | UInt32(next & 0x3F)
    }
    guard value >= minimum, let scalar = Unicode.Scalar(value) else { throw invalid }
    position += length
    return scalar
  }

  private mutating func escape() throws(JSONSyntaxError) -> Unicode.Scalar {
    guard position < bytes.count else { throw failure("string is never closed") }
    let byte = bytes[position]
    position += 1
    if let scalar = Self.simpleEscapes[byte] { return scalar }
    switch byte {
    case UInt8(ascii: "u"):
      let high = try hexQuad()
      if (0xDC00...0xDFFF).contains(high) { throw failure("lone low surrogate \\u\(String(high, radix: 16))") }
      guard (0xD800...0xDBFF).contains(high) else { return Unicode.Scalar(high)! }
      guard bytes[position...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) else {
        throw failure("high surrogate \\u\(String(high, radix: 16)) is not followed by a low one")
      }
      position += 2
      let low = try hexQuad()
      guard (0xDC00...0xDFFF).contains(low) else {
        throw failure("high surrogate \\u\(String(high, radix: 16)) is not followed by a low one")
      }
      return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))!
    default:
      position -= 1
      throw failure("unknown escape: \\ followed by \(describeNext()) in a string")
    }
  }

  /// RFC 8259's one-character escapes: the byte after the backslash and what it stands for.
  private static let simpleEscapes: [UInt8: Unicode.Scalar] = [
    UInt8(ascii: "\""): "\"", UInt8(ascii: "\\"): "\\", UInt8(ascii: "/"): "/", UInt8(ascii: "b"): "\u{08}",
    UInt8(ascii: "f"): "\u{0C}", UInt8(ascii: "n"): "\n", UInt8(ascii: "r"): "\r", UInt8(ascii: "t"): "\t",
  ]

  private mutating func hexQuad() throws(JSONSyntaxError) -> UInt32 {
    var value: UInt32 = 0
    for _ in 0..<4 {
      guard position < bytes.count, let digit = hexDigit(bytes[position]) else {
        throw failure("\\u needs four hexadecimal digits")
      }
      value = value << 4 | digit
      position += 1
    }
    return value
  }

  private func hexDigit(_ byte: UInt8) -> UInt32? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
    case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
    default: nil
    }
  }
}
