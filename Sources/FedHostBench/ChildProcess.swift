import Foundation

/// Peers run as child processes, so each one has its own runtime, threads and allocator.
enum ChildProcess {
  struct Result {
    var status: Int32
    var output: String  // stdout and stderr together, as a person would see them

    /// The last non-empty line: usually the reason when a child failed.
    var lastLine: String {
      output.split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init) ?? ""
    }
  }

  static func run(_ path: String, _ arguments: [String], environment: [String: String]? = nil,
                  directory: URL? = nil) throws -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let directory { process.currentDirectoryURL = directory }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Result(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self))
  }
}
