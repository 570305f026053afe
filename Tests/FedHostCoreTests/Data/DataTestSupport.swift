import Foundation

/// Paths and helpers shared by the data-layer tests.
enum DataTestSupport {
  /// The package root: this file is Tests/FedHostCoreTests/Data/DataTestSupport.swift.
  static let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  /// The real datasets, kept outside the project (see ../shared/data/README.md).
  static let dataDirectory = packageRoot.appendingPathComponent("../shared/data").standardizedFileURL

  static let examplesDirectory = packageRoot.appendingPathComponent("Examples")

  /// This process's test files live under one root that is removed when the tests exit.
  private static let root: URL = {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("fedhost-data-tests-\(UUID().uuidString)")
    atexit { _ = try? FileManager.default.removeItem(at: DataTestSupport.root) }
    return root
  }()

  /// A fresh directory for one test's files.
  static func temporaryDirectory() throws -> URL {
    let directory = root.appendingPathComponent(UUID().uuidString)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
  }

  /// Writes `text` (as UTF-8, byte for byte) to `name` in a fresh temporary directory.
  static func write(_ text: String, to name: String) throws -> URL {
    let url = try temporaryDirectory().appendingPathComponent(name)
    try Data(text.utf8).write(to: url)
    return url
  }

  /// The one-line description of the error `body` throws, or nil if it does not throw.
  static func errorMessage(_ body: () throws -> Void) -> String? {
    do {
      try body()
      return nil
    } catch {
      return "\(error)"
    }
  }
}
