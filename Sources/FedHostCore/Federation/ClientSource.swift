/// What the engine knows of a client without loading its data: a name and what it can train.
public struct ClientProfile: Sendable, Equatable {
  public var name: String
  /// Width of its sub-model relative to the global model, in (0, 1].
  public var modelRate: Double
  public var memory: MemoryBudget?
  /// Its inputs' names in order (empty: unnamed), recorded in the model files made for it.
  public var featureNames: [String]

  public init(name: String, modelRate: Double = 1, memory: MemoryBudget? = nil, featureNames: [String] = []) {
    self.name = name
    self.modelRate = modelRate
    self.memory = memory
    self.featureNames = featureNames
  }
}

/// A client's data as the engine uses it in rounds: the rows it trains on, the rows that score
/// its update (query loss, sent to the aggregator), a validation slice and its test rows.
public struct ClientData: Sendable {
  public var train: Samples
  /// Empty: the update is scored on `train`.
  public var query: Samples
  public var validation: Samples
  public var test: Samples

  public init(train: Samples, query: Samples, validation: Samples, test: Samples) {
    self.train = train
    self.query = query
    self.validation = validation
    self.test = test
  }
}

/// The federation's clients. Profiles are held for every client; data is loaded on demand, so a
/// protocol that samples a few clients per round holds only theirs (a partition may have
/// thousands). Loading must be deterministic: the same index gives the same rows every time.
public final class ClientSource: @unchecked Sendable {
  public let profiles: [ClientProfile]
  private let load: @Sendable (Int) throws -> ClientData

  public init(profiles: [ClientProfile], load: @escaping @Sendable (Int) throws -> ClientData) {
    self.profiles = profiles
    self.load = load
  }

  /// Clients whose data is already in memory.
  public convenience init(_ clients: [(profile: ClientProfile, data: ClientData)]) {
    let data = clients.map(\.data)
    self.init(profiles: clients.map(\.profile), load: { data[$0] })
  }

  public var count: Int { profiles.count }

  public func data(_ index: Int) throws -> ClientData { try load(index) }
}
