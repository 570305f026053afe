/// A problem with an input file: a CSV that cannot be read, or a dataset description that does
/// not fit the file. The description is one line, `file:line: message` (or `file: message`
/// when no single line is at fault), so a user can jump straight to the offending cell.
public struct DataError: InputError, Equatable, Sendable {
  /// The file name (without directories) the problem was found in.
  public let file: String
  /// The 1-based line of the file, header included; nil for whole-file problems.
  public let line: Int?
  /// What is wrong, without the `file:line:` prefix.
  public let message: String

  public init(file: String, line: Int? = nil, _ message: String) {
    self.file = file
    self.line = line
    self.message = message
  }

  public var description: String {
    (line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)").escapingControlCharacters
  }
}

/// A problem with a federation spec file. The description names the file and the key path,
/// e.g. `spec.json: devices[1].label: missing`.
public struct SpecError: InputError, Equatable, Sendable {
  public let file: String
  /// The JSON key path, such as `devices[1].label`; empty for the document as a whole.
  public let path: String
  public let message: String

  public init(file: String, path: String, _ message: String) {
    self.file = file
    self.path = path
    self.message = message
  }

  public var description: String {
    (path.isEmpty ? "\(file): \(message)" : "\(file): \(path): \(message)").escapingControlCharacters
  }
}

/// The closest name in `candidates` to a misspelt `name`, if one is close enough to be a likely typo.
func closestName(to name: String, in candidates: [String]) -> String? {
  let target = Array(name.lowercased())
  var best: (name: String, distance: Int)?
  for candidate in candidates {
    let distance = editDistance(target, Array(candidate.lowercased()))
    if distance < (best?.distance ?? Int.max) { best = (candidate, distance) }
  }
  guard let best, best.distance <= max(2, target.count / 3) else { return nil }
  return best.name
}

/// Levenshtein distance, two-row dynamic programming.
private func editDistance(_ a: [Character], _ b: [Character]) -> Int {
  if a.isEmpty { return b.count }
  var previous = Array(0...b.count)
  var current = [Int](repeating: 0, count: b.count + 1)
  for i in 1...a.count {
    current[0] = i
    for j in stride(from: 1, through: b.count, by: 1) {
      let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
      current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
    }
    swap(&previous, &current)
  }
  return previous[b.count]
}
