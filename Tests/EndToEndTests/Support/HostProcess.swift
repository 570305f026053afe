import Foundation

/// The package root, found from this file's location.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// Where `swift build -c release` put `host` and the plugins (tests run after that build).
let productsDirectory = URL(fileURLWithPath: packageRoot + "/.build/release").resolvingSymlinksInPath().path
let hostExecutable = productsDirectory + "/host"

struct HostRun {
  let status: Int32
  let stdout: String
  let stderr: String
}

/// Runs the real `host` binary with `arguments` and an environment without
/// FEDHOST_PLUGIN_PATH unless given.
func runHost(_ arguments: [String], environment: [String: String] = [:]) throws -> HostRun {
  try runProcess(hostExecutable, arguments, environment: environment)
}

func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                currentDirectory: String? = nil) throws -> HostRun {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  var base = ProcessInfo.processInfo.environment
  base.removeValue(forKey: "FEDHOST_PLUGIN_PATH")
  process.environment = base.merging(environment) { _, new in new }
  if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  // Read both pipes concurrently so a chatty child cannot block on a full pipe.
  let group = DispatchGroup()
  nonisolated(unsafe) var errData = Data()
  group.enter()
  DispatchQueue.global().async {
    errData = err.fileHandleForReading.readDataToEndOfFile()
    group.leave()
  }
  let outData = out.fileHandleForReading.readDataToEndOfFile()
  group.wait()
  process.waitUntilExit()
  return HostRun(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                 stderr: String(decoding: errData, as: UTF8.self))
}

/// This process's test directories live under one root that is removed when the tests exit.
private let testRoot = NSTemporaryDirectory() + "fedhost-tests-\(UUID().uuidString)"
private let removeTestRootAtExit: Void = { atexit { _ = try? FileManager.default.removeItem(atPath: testRoot) } }()

/// A fresh temporary directory for one test.
func temporaryDirectory(_ name: String) throws -> String {
  _ = removeTestRootAtExit
  let path = testRoot + "/\(name)-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// Compiles a C plugin source into `directory/libNAME.so` with `cc`, with extra flags.
@discardableResult
/// `header` is the directory of the fedhost_plugin.h it builds against (default: this ABI's).
func compilePlugin(_ source: String, name: String, in directory: String, flags: [String] = [],
                   header: String = packageRoot + "/Sources/PluginAPI/include") throws -> String {
  let output = "\(directory)/lib\(name).so"
  let result = try runProcess("/usr/bin/env", ["cc", "-std=c11", "-O1", "-fPIC", "-shared", "-fvisibility=hidden",
                                               "-I", header]
                              + flags + ["-o", output, source, "-lm"])
  guard result.status == 0 else { throw CompileFailure(message: result.stderr) }
  return output
}

struct CompileFailure: Error { let message: String }

let testPluginSource = packageRoot + "/Tests/Fixtures/plugins/test_plugin.c"
let contextProbeSource = packageRoot + "/Tests/Fixtures/plugins/context_probe.c"
/// The ABI 1.1 header as it shipped, for plugins built before 1.2.
let abi11HeaderDirectory = packageRoot + "/Tests/Fixtures/plugins/abi-1.1"
