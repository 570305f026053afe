/// A deliberately small command-line parser: `--name value`, `--name=value`, `--flag`,
/// positionals; unknown options are errors. (No package dependencies, by design.)
struct OptionSpec {
  let name: String
  let valueName: String?  // nil: a flag
  let help: String
  /// May be given more than once (every value is kept); other options may appear once.
  var repeatable = false

  static func flag(_ name: String, _ help: String) -> OptionSpec { OptionSpec(name: name, valueName: nil, help: help) }
  static func value(_ name: String, _ valueName: String, _ help: String, repeatable: Bool = false) -> OptionSpec {
    OptionSpec(name: name, valueName: valueName, help: help, repeatable: repeatable)
  }
}

struct ParsedOptions {
  private(set) var values: [String: [String]] = [:]
  private(set) var flags: Set<String> = []
  private(set) var positionals: [String] = []

  init(_ arguments: ArraySlice<String>, specs: [OptionSpec], command: String) throws {
    let byName = Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0) })
    var cursor = arguments.makeIterator()
    while let argument = cursor.next() {
      guard argument.hasPrefix("--"), argument != "--" else {
        positionals.append(argument)
        continue
      }
      let body = argument.dropFirst(2)
      let name = String(body.prefix { $0 != "=" })
      let inlineValue = body.contains("=") ? String(body.drop { $0 != "=" }.dropFirst()) : nil
      guard let spec = byName[name] else {
        throw UsageError("unknown option --\(name) (see `host \(command) --help`)")
      }
      if spec.valueName == nil {
        guard inlineValue == nil else { throw UsageError("--\(name) takes no value") }
        guard flags.insert(name).inserted else { throw UsageError("--\(name) is given twice") }
      } else {
        guard let value = inlineValue ?? cursor.next() else {
          throw UsageError("--\(name) needs a value \(spec.valueName!)")
        }
        guard spec.repeatable || values[name] == nil else {
          throw UsageError("--\(name) is given twice (\"\(values[name]![0])\" and \"\(value)\")")
        }
        values[name, default: []].append(value)
      }
    }
  }

  func value(_ name: String) -> String? { values[name]?.last }
  func all(_ name: String) -> [String] { values[name] ?? [] }
  func has(_ name: String) -> Bool { flags.contains(name) }

  func integer(_ name: String, default fallback: Int, atLeast minimum: Int = 0) throws -> Int {
    guard let text = value(name) else { return fallback }
    guard let number = Int(text) else { throw UsageError("--\(name) expects an integer, got \"\(text)\"") }
    guard number >= minimum else { throw UsageError("--\(name) must be at least \(minimum), not \(number)") }
    return number
  }

  /// A seed: a non-negative integer below 2^64.
  func seed(_ name: String) throws -> UInt64? {
    guard let text = value(name) else { return nil }
    guard let seed = UInt64(text) else {
      throw UsageError("--\(name) expects a non-negative integer, got \"\(text)\"")
    }
    return seed
  }

  func number(_ name: String) throws -> Double? {
    guard let text = value(name) else { return nil }
    guard let number = Double(text), number.isFinite else {
      throw UsageError("--\(name) expects a number, got \"\(text)\"")
    }
    return number
  }
}

/// A mistake on the command line: printed as one line, exit status 2.
struct UsageError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// Renders `--help` text for a command.
func helpText(usage: String, summary: String, specs: [OptionSpec], footer: String = "") -> String {
  let rows = specs.map { spec -> (String, String) in
    ("--\(spec.name)" + (spec.valueName.map { " \($0)" } ?? ""), spec.help)
  }
  let width = (rows.map(\.0.count).max() ?? 0) + 2
  let options = rows.map { "  " + $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + $0.1 }
  return (["usage: \(usage)", "", summary, "", "options:"] + options + (footer.isEmpty ? [] : ["", footer]))
    .joined(separator: "\n")
}
