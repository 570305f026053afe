/// Independent, reproducible seeds for every random choice of a run, derived from the run's
/// seed and the choice's coordinates (phase, round, client): results never depend on the order
/// in which threads happen to run, and a resumed run sees the same seeds.
public enum RunPhase: UInt64, Sendable {
  case initialization = 1, pretraining, serial, parallel, personalization, localOnly
}

public func deriveSeed(_ base: UInt64, _ phase: RunPhase, _ parts: UInt64...) -> UInt64 {
  var state = splitMix(base ^ (phase.rawValue &* 0xA24B_AED4_963E_E407))
  for part in parts { state = splitMix(state ^ (part &+ 0x9E37_79B9_7F4A_7C15)) }
  return state
}

private func splitMix(_ value: UInt64) -> UInt64 {
  var z = value &+ 0x9E37_79B9_7F4A_7C15
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  return z ^ (z >> 31)
}
