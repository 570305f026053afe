import FedHostCore
import Foundation
import Glibc
import PluginAPI
import Testing

/// Shared helpers for the plugin math tests: locating the built plugins, building updates,
/// deterministic random data, and calling a plugin's vtable directly where the host's
/// loader would refuse the input before the plugin sees it.
enum PluginFixture {
  /// <package root>, from this file's path (Tests/FedHostCoreTests/PluginMath/…).
  static let packageRoot: String = {
    var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(4)
    return parts.joined(separator: "/")
  }()

  /// Where `swift build -c release` puts the plugin libraries.
  static let releaseDirectory = packageRoot + "/.build/release"

  /// Opens lib<name>.so from the release build.
  static func library(_ name: String) throws -> PluginLibrary {
    try PluginLibrary.open("\(releaseDirectory)/lib\(name).so")
  }

  static func instance(_ name: String, _ config: String = "{}") throws -> PluginInstance {
    try library(name).makeInstance(configJSON: config)
  }

  static func update(_ clientID: UInt32, _ delta: [Float], samples: UInt64 = 1, coverage: [UInt8]? = nil,
                     metrics: [String: Double] = [:]) -> ClientUpdate {
    ClientUpdate(clientID: clientID, delta: ParameterVector(delta), sampleCount: samples,
                 coverage: coverage.map(CoverageMask.init), metrics: metrics)
  }

  /// Runs `aggregate` and returns (new global, weights).
  static func aggregate(_ instance: PluginInstance, global: [Float], _ updates: [ClientUpdate], round: Int = 0)
    throws -> (global: [Float], weights: [Double])
  {
    let output = ParameterVector(count: global.count)
    let weights = try instance.aggregate(round: round, global: ParameterVector(global), updates: updates,
                                         into: output)
    return (output.array, weights)
  }

  /// Compiles the C plugin at `source` (relative to the package root, or absolute) with the system C
  /// compiler, as C `standard`, into a temporary directory and opens it through the host's loader.
  static func compileCPlugin(_ source: String, name: String, standard: String,
                             extraArguments: [String] = []) throws -> PluginLibrary {
    let output = try DataTestSupport.temporaryDirectory().appendingPathComponent("lib\(name).so").path
    let compiler = Process()
    compiler.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    compiler.arguments = ["cc", "-std=\(standard)", "-O2", "-Wall", "-Werror", "-fPIC", "-shared", "-fvisibility=hidden",
                          "-I", packageRoot + "/Sources/PluginAPI/include", "-o", output,
                          source.hasPrefix("/") ? source : packageRoot + "/" + source]
      + extraArguments
    try compiler.run()
    compiler.waitUntilExit()
    guard compiler.terminationStatus == 0 else {
      throw PluginError.notLoadable(path: output, reason: "cc exited with \(compiler.terminationStatus)")
    }
    return try PluginLibrary.open(output)
  }

  /// The error text of `body`, or nil if it did not throw.
  static func errorText(_ body: () throws -> Void) -> String? {
    do {
      try body()
      return nil
    } catch {
      return String(describing: error)
    }
  }
}

/// A reproducible source of test data: the project's generator with a few test helpers.
typealias TestRandom = SeededGenerator

extension SeededGenerator {
  /// Uniform in [-1, 1).
  mutating func signedUnit() -> Float { Float(nextUnit() * 2 - 1) }
  mutating func below(_ bound: Int) -> Int { nextIndex(below: bound) }
  mutating func vector(_ count: Int, scale: Float = 1) -> [Float] { (0..<count).map { _ in signedUnit() * scale } }
  mutating func mask(_ count: Int, coverage: Double) -> [UInt8] {
    (0..<count).map { _ in nextUnit() < coverage ? 1 : 0 }
  }
}

/// Straightforward Double reference math, independent of PluginKit's kernels.
enum Reference {
  /// global + step · Σ_k w_k d_k[e] / Σ_{k covers e} w_k; global where nobody covers e.
  static func weightedUpdate(global: [Float], updates: [ClientUpdate], weights: [Double], step: Double = 1)
    -> [Double]
  {
    (0..<global.count).map { element in
      var sum = 0.0, weightSum = 0.0
      for (update, weight) in zip(updates, weights) where covers(update, element) {
        sum += weight * Double(update.delta[element])
        weightSum += weight
      }
      return weightSum > 0 ? Double(global[element]) + step * sum / weightSum : Double(global[element])
    }
  }

  static func covers(_ update: ClientUpdate, _ element: Int) -> Bool {
    update.coverage.map { $0.pointer[element] != 0 } ?? true
  }

  static func sampleWeights(_ updates: [ClientUpdate]) -> [Double] {
    let total = updates.reduce(0.0) { $0 + Double($1.sampleCount) }
    return updates.map { Double($0.sampleCount) / total }
  }

  /// cos(a, b) over the elements where `included` holds; 0 if either is zero there.
  static func cosine(_ a: [Double], _ b: [Double], included: (Int) -> Bool = { _ in true }) -> Double {
    var dot = 0.0, aa = 0.0, bb = 0.0
    for index in a.indices where included(index) {
      dot += a[index] * b[index]
      aa += a[index] * a[index]
      bb += b[index] * b[index]
    }
    return aa > 0 && bb > 0 ? dot / (aa * bb).squareRoot() : 0
  }

  static func delta(_ update: ClientUpdate) -> [Double] { update.delta.array.map(Double.init) }
}

/// Expects |actual − expected| ≤ tolerance · max(1, |expected|) element-wise.
func expectClose(_ actual: [Float], _ expected: [Double], tolerance: Double = 1e-6,
                 sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(actual.count == expected.count, sourceLocation: sourceLocation)
  let worst = zip(actual, expected).map { abs(Double($0) - $1) / max(1, abs($1)) }.max() ?? 0
  #expect(worst <= tolerance, "worst relative error \(worst)", sourceLocation: sourceLocation)
}

func expectClose(_ actual: [Double], _ expected: [Double], tolerance: Double = 1e-9,
                 sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(actual.count == expected.count, sourceLocation: sourceLocation)
  let worst = zip(actual, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
  #expect(worst <= tolerance, "worst relative error \(worst)", sourceLocation: sourceLocation)
}

/// Calls a plugin's C vtable directly, bypassing the host's own argument checks, to test the
/// plugin's validation of raw inputs.
struct RawPlugin {
  let vtable: UnsafePointer<fhp_vtable>

  init(path: String) throws {
    guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL), let symbol = dlsym(handle, FHP_ENTRY_SYMBOL) else {
      throw PluginError.notLoadable(path: path, reason: "dlopen/dlsym failed")
    }
    let entry = unsafeBitCast(symbol, to: fhp_entry_fn.self)
    var descriptor: UnsafePointer<fhp_descriptor>?
    var table: UnsafePointer<fhp_vtable>?
    guard entry(FHP_ABI_MAJOR, FHP_ABI_MINOR, &descriptor, &table) == 0, let table else {
      throw PluginError.malformed(path: path, reason: "entry failed")
    }
    vtable = table
  }

  /// aggregate(global, updates) with the raw updates as given; returns (status, last_error).
  func aggregate(global: [Float], updates: [fhp_update]) -> (status: fhp_status, message: String) {
    var instance: OpaquePointer?
    guard vtable.pointee.create?(nil, "{}", &instance) == 0, let instance else { return (-99, "create failed") }
    defer { vtable.pointee.destroy?(instance) }
    var output = [Float](repeating: 0, count: global.count)
    let status = updates.withUnsafeBufferPointer { raw in
      vtable.pointee.aggregate?(instance, 0, global, UInt64(global.count), raw.baseAddress, UInt32(raw.count),
                                &output, nil) ?? -2
    }
    return (status, vtable.pointee.last_error?(instance).map { String(cString: $0) } ?? "")
  }
}
