import PluginAPI

public let hostABIMajor = UInt32(FHP_ABI_MAJOR)
public let hostABIMinor = UInt32(FHP_ABI_MINOR)
public let entrySymbolName = FHP_ENTRY_SYMBOL

/// The roles a plugin can play (`FHP_KIND_*`).
public struct PluginKinds: OptionSet, Sendable, CustomStringConvertible, Codable {
  public let rawValue: UInt32
  public init(rawValue: UInt32) { self.rawValue = rawValue }

  public static let aggregator = PluginKinds(rawValue: UInt32(FHP_KIND_AGGREGATOR))
  public static let initializer = PluginKinds(rawValue: UInt32(FHP_KIND_INITIALIZER))
  public static let clientHook = PluginKinds(rawValue: UInt32(FHP_KIND_CLIENT_HOOK))

  private static let names: [(PluginKinds, String)] = [
    (.aggregator, "aggregator"), (.initializer, "initializer"), (.clientHook, "client-hook"),
  ]

  public var description: String {
    let known = Self.names.filter { contains($0.0) }.map(\.1)
    let unknown = rawValue & ~Self.names.reduce(0) { $0 | $1.0.rawValue }
    let parts = known + (unknown == 0 ? [] : ["0x" + String(unknown, radix: 16)])
    return parts.isEmpty ? "none" : parts.joined(separator: ",")
  }

  var articleName: String {
    self == .initializer ? "an initializer" : self == .aggregator ? "an aggregator" : "a \(self)"
  }
}

/// One config key a plugin accepts.
public struct PluginConfigKey: Sendable, Equatable {
  public let key: String
  public let type: String
  public let defaultJSON: String
  public let summary: String
}

/// A Swift copy of a plugin's `fhp_descriptor`, taken once at load.
public struct PluginDescriptor: Sendable {
  public let abiMajor: UInt32
  public let abiMinor: UInt32
  public let kinds: PluginKinds
  public let id: String
  public let name: String
  public let version: String
  public let summary: String
  public let configKeys: [PluginConfigKey]
  /// Auxiliary vectors (each the global model's length) per client and round: from the
  /// aggregator down to the client hook, and back up (ABI 1.2; 0 for older plugins).
  public let auxDownVectors: Int
  public let auxUpVectors: Int

  init(_ raw: UnsafePointer<fhp_descriptor>) {
    let d = raw.pointee
    func text(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
    abiMajor = d.abi_major
    abiMinor = d.abi_minor
    kinds = PluginKinds(rawValue: d.kinds)
    id = text(d.id)
    name = text(d.name)
    version = text(d.version)
    summary = text(d.description)
    let hasKeys = Int(d.struct_size) >= MemoryLayout<fhp_descriptor>.offset(of: \.n_config_keys)!
      + MemoryLayout<UInt32>.size
    var keys: [PluginConfigKey] = []
    if hasKeys, let table = d.config_keys, d.n_config_keys > 0,
       Int(table.pointee.struct_size) >= MemoryLayout<fhp_config_key>.size {
      // ABI rule 2: the array's stride is its first element's struct_size.
      let stride = Int(table.pointee.struct_size)
      let base = UnsafeRawPointer(table)
      for index in 0..<Int(d.n_config_keys) {
        let entry = base.advanced(by: index * stride).assumingMemoryBound(to: fhp_config_key.self).pointee
        keys.append(PluginConfigKey(key: text(entry.key), type: text(entry.type),
                                    defaultJSON: text(entry.default_json), summary: text(entry.description)))
      }
    }
    configKeys = keys
    let hasAux = Int(d.struct_size) >= MemoryLayout<fhp_descriptor>.offset(of: \.n_aux_up)! + MemoryLayout<UInt32>.size
    auxDownVectors = hasAux ? Int(d.n_aux_down) : 0
    auxUpVectors = hasAux ? Int(d.n_aux_up) : 0
  }
}
