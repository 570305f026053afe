import Foundation
import Testing

/// The library's folders are layers and depend one way only. This reads the sources: every
/// type declared at the top of a file belongs to its folder, and a file may name types of its
/// own folder and of the folders below it, never above.
@Suite("Architecture: the library's folders depend one way")
struct LayeringTests {
  /// Lowest first.
  static let layers = ["Support", "Data", "Model", "Evaluation", "Export", "Plugins", "Federation", "Pipelines", "Reports"]
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources/FedHostCore")

  static func sources() throws -> [(layer: String, path: String, text: String)] {
    var files: [(String, String, String)] = []
    for layer in layers {
      let directory = root.appendingPathComponent(layer)
      guard let walker = FileManager.default.enumerator(atPath: directory.path) else { continue }
      for case let file as String in walker where file.hasSuffix(".swift") {
        let path = directory.appendingPathComponent(file).path
        files.append((layer, path, try String(contentsOfFile: path, encoding: .utf8)))
      }
    }
    return files
  }

  /// Names of the types a file declares at top level (struct, class, enum, protocol, typealias).
  static func declaredTypes(in text: String) -> [String] {
    let pattern = try! NSRegularExpression(
      pattern: #"^(?:public |internal |private |fileprivate )?(?:final )?(?:struct|class|enum|protocol|typealias|actor)\s+([A-Z][A-Za-z0-9_]*)"#,
      options: [.anchorsMatchLines])
    return pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
      String(text[Range($0.range(at: 1), in: text)!])
    }
  }

  @Test func everyFolderDependsOnlyOnTheFoldersBelowIt() throws {
    let files = try Self.sources()
    #expect(Set(files.map(\.layer)).count == Self.layers.count, "a layer folder is missing")
    var owner: [String: String] = [:]
    for file in files {
      for name in Self.declaredTypes(in: file.text) { owner[name] = owner[name] ?? file.layer }
    }
    let rank = Dictionary(uniqueKeysWithValues: Self.layers.enumerated().map { ($1, $0) })
    let word = try NSRegularExpression(pattern: #"\b[A-Z][A-Za-z0-9_]*\b"#)
    var upward: [String] = []
    for file in files {
      // Comments may mention anything.
      let code = file.text.split(separator: "\n").map { line in line.components(separatedBy: "//")[0] }.joined(separator: "\n")
      let names = Set(word.matches(in: code, range: NSRange(code.startIndex..., in: code)).map {
        String(code[Range($0.range, in: code)!])
      })
      for name in names.sorted() {
        if let layer = owner[name], rank[layer]! > rank[file.layer]! {
          upward.append("\(file.path.replacingOccurrences(of: Self.root.path + "/", with: "")) uses \(name) from \(layer)")
        }
      }
    }
    #expect(upward.isEmpty, "\(upward.joined(separator: "\n"))")
  }

  @Test func theCheckSeesAnUpwardReference() {
    // The checker itself: a Data file naming a Pipelines type is caught.
    let owner = ["RunSettings": "Pipelines"]
    let names = Self.declaredTypes(in: "public struct RunSettings {}\nstruct Other {}")
    #expect(names == ["RunSettings", "Other"])
    let rank = Dictionary(uniqueKeysWithValues: Self.layers.enumerated().map { ($1, $0) })
    #expect(rank[owner["RunSettings"]!]! > rank["Data"]!)
  }
}
