import FedHostCore
import FedHostEngineAPI
import Foundation

/// What an `fhe_engine*` points to: one federation prepared for one seed under one protocol,
/// and the client-hook plugin its clients train with.
final class OpenEngine {
  let settings: RunSettings
  let seed: UInt64
  let run: ProtocolRun
  let searchPath: PluginSearchPath
  /// The spec's plugin_config with the caller's plugin_config.KEY entries over it.
  let pluginConfig: [String: String]
  var hook: PluginInstance?

  init(specPath: String?, dataDirectory: String, settingsText: String, seed: UInt64) throws {
    let data: FederationData
    if let specPath {
      let spec = try FederationSpec.load(contentsOf: URL(fileURLWithPath: specPath))
      data = try spec.loadData(dataDirectory: URL(fileURLWithPath: dataDirectory))
    } else {
      data = EmbeddedFederation.make(seed: EmbeddedFederation.defaultSeed)
    }
    let text = try EngineSettingsText(settingsText)
    settings = try RunSettings.resolve(preset: text.preset, protocol: text.protocolName, training: data.training,
                                       flags: text.flags, threads: text.threads)
    pluginConfig = data.training.pluginConfig.merging(text.pluginConfig) { _, caller in caller }
    searchPath = .standard(explicit: text.pluginPath, executableDirectory: nil)
    self.seed = seed
    run = try settings.prepare(data, seed: seed)
  }

  var engine: FederationEngine { run.engine }

  func client(_ index: UInt32) throws -> Int {
    guard Int(index) < engine.clients.count else {
      throw EngineError("client \(index) does not exist (the federation has \(engine.clients.count))")
    }
    return Int(index)
  }

  /// `count` floats at `pointer` as a global model, after checking the size.
  func globalModel(_ pointer: UnsafePointer<Float>?, count: Int, name: String = "global") throws -> ParameterVector {
    try model(pointer, count: count, expected: engine.architecture.parameterCount, name: name)
  }

  func model(_ pointer: UnsafePointer<Float>?, count: Int, expected: Int, name: String) throws -> ParameterVector {
    guard let pointer else { throw EngineError("\(name) model is NULL") }
    guard count == expected else { throw EngineError("\(name) model has \(count) parameters, the model has \(expected)") }
    let vector = ParameterVector(count: count)
    vector.pointer.update(from: pointer, count: count)
    return vector
  }

  func pluginConfig(for library: PluginLibrary) -> String {
    settings.pluginConfig(for: library.descriptor, seed: seed, extra: pluginConfig)
  }
}

/// The settings text of `fhe_open`: KEY=VALUE lines.
struct EngineSettingsText {
  var preset: String?
  var protocolName: String?
  var threads = 1
  var pluginPath: [String] = []
  var pluginConfig: [String: String] = [:]
  var flags: [String: String] = [:]

  init(_ text: String) throws {
    var seen = Set<String>()
    for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = rawLine.trimmingCharacters(in: .whitespaces)
      if line.isEmpty { continue }
      let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2, !parts[0].isEmpty else {
        throw EngineError("settings line \(number + 1): expected KEY=VALUE, got \"\(line)\"")
      }
      let (key, value) = (parts[0], parts[1])
      guard key == "plugin_path" || seen.insert(key).inserted else {
        throw EngineError("settings line \(number + 1): \(key) is given twice")
      }
      switch key {
      case "preset": preset = value
      case "protocol": protocolName = value
      case "plugin_path": pluginPath.append(value)
      case "threads":
        guard let count = Int(value), count >= 1 else { throw EngineError("settings line \(number + 1): threads must be an integer ≥ 1, not \"\(value)\"") }
        threads = count
      default:
        if key.hasPrefix("plugin_config.") {
          let name = String(key.dropFirst("plugin_config.".count))
          guard !name.isEmpty,
                (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: [.fragmentsAllowed])) != nil else {
            throw EngineError("settings line \(number + 1): plugin_config.KEY expects JSON, got \"\(value)\"")
          }
          pluginConfig[name] = value
        } else {
          flags[key] = value
        }
      }
    }
  }
}

struct EngineError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
