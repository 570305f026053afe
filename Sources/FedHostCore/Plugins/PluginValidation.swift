import Foundation

/// Runs `PluginConformance` in a child process and turns what happens to the child — clean
/// results, a crash, a hang — into report lines, so that `host plugins validate` survives
/// any plugin.
///
/// Protocol: the child (`host plugins validate --in-process LIB`) prints `begin <check>` before
/// a check and `pass <check>` or `fail <check>: <reason>` after it, one line each, flushed.
public enum PluginValidation {
  public struct Report: Sendable {
    public var lines: [String]
    public var failures: Int
    public var passed: Int
    public var succeeded: Bool { failures == 0 }
  }

  /// Child side: runs the checks and prints the protocol lines to stdout.
  public static func runChild(library: PluginLibrary) -> Bool {
    let conformance = PluginConformance(
      library: library,
      willRun: { emit("begin \($0)") },
      didRun: { outcome in
        emit(outcome.failure.map { "fail \(outcome.check): \(oneLine($0))" } ?? "pass \(outcome.check)")
      })
    return conformance.run().allSatisfy { $0.failure == nil }
  }

  private static func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
  }

  /// Parent side: runs `executable arguments…` and reads the protocol. A check that makes no
  /// progress for `timeout` seconds is reported as a hang and the child is killed.
  public static func runParent(executable: String, arguments: [String], timeout: TimeInterval) throws -> Report {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    let reader = LineCollector()
    output.fileHandleForReading.readabilityHandler = { handle in
      let data = handle.availableData
      if data.isEmpty { handle.readabilityHandler = nil; reader.finish() } else { reader.append(data) }
    }
    try process.run()

    var lastProgress = Date()
    var seenLines = 0
    var timedOut = false
    while process.isRunning {
      Thread.sleep(forTimeInterval: 0.02)
      let count = reader.lineCount
      if count != seenLines { seenLines = count; lastProgress = Date() }
      if Date().timeIntervalSince(lastProgress) > timeout {
        timedOut = true
        kill(process.processIdentifier, SIGKILL)
        break
      }
    }
    process.waitUntilExit()
    reader.waitUntilFinished(timeout: 2)

    var report = Report(lines: [], failures: 0, passed: 0)
    var pending: String?
    for line in reader.lines {
      if line.hasPrefix("begin ") {
        pending = String(line.dropFirst(6))
      } else if line.hasPrefix("pass ") {
        report.passed += 1
        report.lines.append("ok    \(line.dropFirst(5))")
        pending = nil
      } else if line.hasPrefix("fail ") {
        report.failures += 1
        report.lines.append("FAIL  \(line.dropFirst(5))")
        pending = nil
      }
    }
    let during = pending.map { " during \"\($0)\"" } ?? ""
    if timedOut {
      report.failures += 1
      report.lines.append("FAIL  plugin hung\(during): no progress for \(Int(timeout)) s; killed")
    } else if process.terminationReason == .uncaughtSignal {
      report.failures += 1
      let signal = process.terminationStatus
      report.lines.append("FAIL  plugin crashed\(during): signal \(signal) (\(signalName(signal)))")
    } else if process.terminationStatus != 0 && report.failures == 0 {
      report.failures += 1
      report.lines.append("FAIL  validator child exited with status \(process.terminationStatus)\(during)")
    }
    return report
  }

  private static func oneLine(_ text: String) -> String {
    text.split(whereSeparator: \.isNewline).joined(separator: " ")
  }
}

/// Collects a child's stdout as lines from a reader thread.
private final class LineCollector: @unchecked Sendable {
  private let lock = NSLock()
  private var buffer = Data()
  private var collected: [String] = []
  private let done = DispatchSemaphore(value: 0)

  func append(_ data: Data) {
    lock.withLock {
      buffer.append(data)
      while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
        collected.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
        buffer.removeSubrange(buffer.startIndex...newline)
      }
    }
  }

  func finish() { done.signal() }
  func waitUntilFinished(timeout: TimeInterval) { _ = done.wait(timeout: .now() + timeout) }
  var lineCount: Int { lock.withLock { collected.count } }
  var lines: [String] { lock.withLock { collected } }
}
