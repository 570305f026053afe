import Glibc

/// A 64-byte aligned heap buffer of trivial elements whose allocation failure is an
/// `FHP_E_NOMEM` instead of a trap (Swift's own allocator traps on failure, which would
/// kill the host).
public final class ScratchBuffer<Element: BitwiseCopyable> {
  public let pointer: UnsafeMutablePointer<Element>
  public let count: Int

  /// Inlinable so that it is specialized in the plugin that uses it: the generic
  /// `initialize(repeating:count:)` went through a value-witness call per element.
  @inlinable
  public init(repeating value: Element, count: Int) throws {
    guard count >= 0, count <= Int.max / (2 * MemoryLayout<Element>.stride) else {
      throw PluginFailure.noMemory("cannot allocate \(count) scratch elements")
    }
    let byteCount = max(count, 1) * MemoryLayout<Element>.stride
    var raw: UnsafeMutableRawPointer?
    guard posix_memalign(&raw, 64, byteCount) == 0, let raw else {
      throw PluginFailure.noMemory("cannot allocate \(byteCount) bytes of scratch memory")
    }
    pointer = raw.bindMemory(to: Element.self, capacity: max(count, 1))
    pointer.initialize(repeating: value, count: max(count, 1))
    self.count = count
  }

  deinit { free(pointer) }

  public var buffer: UnsafeMutableBufferPointer<Element> { .init(start: pointer, count: count) }
}
