/// Which elements of a parameter vector a client trained (1) or did not (0): a width-scaled
/// sub-model covers only part of the global model. Shared by every client of the same width
/// rate, and handed to plugins as `fhp_update.coverage` without copying.
public final class CoverageMask: @unchecked Sendable {
  public let count: Int
  public let pointer: UnsafeMutablePointer<UInt8>
  /// Elements set to 1.
  public let coveredCount: Int

  public init(_ flags: [UInt8]) {
    count = flags.count
    let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: max(flags.count, 1))
    flags.withUnsafeBufferPointer { storage.initialize(from: $0.baseAddress!, count: flags.count) }
    pointer = storage
    coveredCount = flags.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
  }

  deinit { pointer.deallocate() }

  public subscript(index: Int) -> Bool { pointer[index] != 0 }
  public var flags: [UInt8] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}
