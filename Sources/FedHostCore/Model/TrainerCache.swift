/// One trainer per architecture, for a worker that trains clients of several shapes (sub-models
/// differ): trainers hold the working buffers, so they are reused rather than rebuilt per client.
struct TrainerCache {
  private var trainers: [MLPArchitecture: MLPTrainer] = [:]

  mutating func trainer(for architecture: MLPArchitecture) -> MLPTrainer {
    if let trainer = trainers[architecture] { return trainer }
    let trainer = MLPTrainer(architecture: architecture)
    trainers[architecture] = trainer
    return trainer
  }
}
