/// One client's result for a round, as the host hands it to an aggregator.
public struct ClientUpdate: Sendable {
  public var clientID: UInt32
  /// w_client − w_global over the whole global vector (0 where not covered).
  public var delta: ParameterVector
  public var sampleCount: UInt64
  /// nil: the client trained every element.
  public var coverage: CoverageMask?
  /// Named scalars such as "query_loss"; passed to the plugin sorted by key.
  public var metrics: [String: Double]
  /// The aux_up vectors its client hook sent (ABI 1.2; nil when the strategy declares none).
  public var auxUp: ParameterVector?

  public init(clientID: UInt32, delta: ParameterVector, sampleCount: UInt64,
              coverage: CoverageMask? = nil, metrics: [String: Double] = [:], auxUp: ParameterVector? = nil) {
    self.clientID = clientID
    self.delta = delta
    self.sampleCount = sampleCount
    self.coverage = coverage
    self.metrics = metrics
    self.auxUp = auxUp
  }
}
