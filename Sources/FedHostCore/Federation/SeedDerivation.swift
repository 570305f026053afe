/// Independent, reproducible seeds for every random choice of a run, derived from the run's
/// seed and the choice's coordinates (phase, round, client): results never depend on the order
/// in which threads happen to run, and a resumed run sees the same seeds.
public enum RunPhase: UInt64, Sendable {
  case initialization = 1, pretraining, serial, parallel, personalization, localOnly, sampling, centralized
}

public func deriveSeed(_ base: UInt64, _ phase: RunPhase, _ parts: UInt64...) -> UInt64 {
  parts.reduce(SeededGenerator.seed(base, stream: phase.rawValue)) { SeededGenerator.seed($0, stream: $1) }
}
