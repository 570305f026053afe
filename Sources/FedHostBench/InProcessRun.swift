import FedHostCore

/// One strategy through a protocol in this process (plugins in process, no report): what the
/// benchmarks time round by round, as `host` runs it.
func runInProcess(_ run: ProtocolRun, aggregator: String, settings: RunSettings, seed: UInt64) throws -> StrategyOutcome {
  let strategy = try StrategyLoader.load(aggregator: aggregator, initializer: .none, clientHook: nil,
                                         searchPath: .standard(), threads: settings.threads,
                                         config: { settings.pluginConfig(for: $0, seed: seed, extra: [:]) })
  return try run.run(strategy, startingModel: run.startingModel(progress: { _ in }), resume: nil, checkpoint: nil,
                     progress: { _ in })
}
