/// The plugins one strategy runs with: an aggregator, optionally an initializer (Phase 1) and
/// a client hook (local objective/procedure).
public struct Strategy: @unchecked Sendable {
  /// Display name, e.g. "Fed-Meta-Align" or the plugin's name.
  public var name: String
  public var aggregator: PluginInstance
  public var initializer: PluginInstance?
  public var clientHook: PluginInstance?

  public init(name: String, aggregator: PluginInstance, initializer: PluginInstance? = nil,
              clientHook: PluginInstance? = nil) {
    self.name = name
    self.aggregator = aggregator
    self.initializer = initializer
    self.clientHook = clientHook
  }
}

/// Which Phase 1 initializer a strategy gets.
public enum InitializerChoice: Sendable, Equatable {
  /// No Phase 1.
  case none
  /// The aggregator itself when it is also an initializer, otherwise none.
  case automatic
  /// A plugin by path or file name.
  case plugin(String)
}

/// Loads a strategy's plugins with the kinds checked; `config` gives each plugin its config JSON.
public enum StrategyLoader {
  public static func load(aggregator: String, initializer: InitializerChoice, clientHook: String?,
                          searchPath: PluginSearchPath, threads: Int, isolation: PluginIsolation = .none,
                          config: (PluginDescriptor) -> String,
                          log: (@Sendable (PluginLogLevel, String) -> Void)? = nil) throws -> Strategy {
    func instance(_ library: PluginLibrary) throws -> PluginInstance {
      try library.makeInstance(configJSON: config(library.descriptor), threads: threads, isolation: isolation, log: log)
    }
    let aggregatorLibrary = try PluginLibrary.open(aggregator, searchPath: searchPath)
    try aggregatorLibrary.require(.aggregator)
    let aggregatorInstance = try instance(aggregatorLibrary)

    var initializerInstance: PluginInstance?
    switch initializer {
    case .none: break
    case .automatic:
      if aggregatorLibrary.descriptor.kinds.contains(.initializer) { initializerInstance = aggregatorInstance }
    case .plugin(let name):
      let library = try PluginLibrary.open(name, searchPath: searchPath)
      try library.require(.initializer)
      initializerInstance = library.path == aggregatorLibrary.path ? aggregatorInstance : try instance(library)
    }

    var hookInstance: PluginInstance?
    if let clientHook {
      let library = try PluginLibrary.open(clientHook, searchPath: searchPath)
      try library.require(.clientHook)
      hookInstance = library.path == aggregatorLibrary.path ? aggregatorInstance : try instance(library)
    } else if aggregatorLibrary.descriptor.kinds.contains(.clientHook) {
      // FedProx's proximal term and MEFL's Meta-GDP come with their aggregator.
      hookInstance = aggregatorInstance
    }
    // Auxiliary vectors pass between a strategy's aggregator and its client hook (ABI 1.2): both
    // must speak the same ones, which in practice means the same plugin.
    let aggregatorAux = (aggregatorLibrary.descriptor.auxDownVectors, aggregatorLibrary.descriptor.auxUpVectors)
    let hookAux = hookInstance.map { ($0.library.descriptor.auxDownVectors, $0.library.descriptor.auxUpVectors) } ?? (0, 0)
    guard hookAux == aggregatorAux else {
      throw FederationError.strategy(
        "\(aggregatorLibrary.descriptor.name) sends \(aggregatorAux.0) and expects \(aggregatorAux.1) auxiliary vectors per "
          + "client, but its client hook \(hookInstance?.library.descriptor.name ?? "(none)") takes \(hookAux.0) and sends "
          + "\(hookAux.1): use the aggregator's own client hook")
    }
    let name = initializerInstance != nil && aggregatorLibrary.descriptor.id == "org.fedhost.similarity-aware"
      ? "Fed-Meta-Align" : aggregatorLibrary.descriptor.name
    return Strategy(name: name, aggregator: aggregatorInstance, initializer: initializerInstance,
                    clientHook: hookInstance)
  }
}
