#if canImport(Glibc)
import Glibc
#endif

/// Flush-to-zero for subnormal floats, the mode every FedHost training kernel runs in.
///
/// Adam's moments drift into subnormals, which x86 CPUs handle ~100× slower; flushing them is
/// worth 12–25 % of training speed. It also changes results (a subnormal becomes 0), so it must
/// be on *wherever* training runs for results to be identical across thread counts: the trainer's
/// entry points and every `WorkerPool` worker enter this mode themselves. MXCSR is per thread,
/// so a caller's thread mode is restored on exit.
public enum FloatEnvironment {
  #if arch(x86_64) && canImport(Glibc)
  /// MXCSR bits: FTZ (15, results flushed) and DAZ (6, subnormal inputs read as zero).
  private static let flushBits: UInt32 = 0x8040

  /// Whether the calling thread currently flushes subnormals (FTZ and DAZ both set).
  public static var flushesSubnormals: Bool {
    var environment = fenv_t()
    fegetenv(&environment)
    return environment.__mxcsr & flushBits == flushBits
  }

  /// Runs `body` with FTZ/DAZ set on the calling thread, then restores the previous mode.
  @inline(__always)
  public static func withSubnormalsFlushed<Result>(_ body: () throws -> Result) rethrows -> Result {
    var saved = fenv_t()
    fegetenv(&saved)
    if saved.__mxcsr & flushBits == flushBits { return try body() }
    var flushing = saved
    flushing.__mxcsr |= flushBits
    fesetenv(&flushing)
    defer { fesetenv(&saved) }
    return try body()
  }
  #else
  /// Subnormal flushing is only implemented for x86-64 glibc; elsewhere results are still
  /// deterministic, just computed with gradual underflow.
  public static var flushesSubnormals: Bool { false }

  @inline(__always)
  public static func withSubnormalsFlushed<Result>(_ body: () throws -> Result) rethrows -> Result {
    try body()
  }
  #endif
}
