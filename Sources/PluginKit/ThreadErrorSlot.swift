import Glibc

/// The `last_error` text of the calling thread.
///
/// The header makes `last_error` per thread: [concurrent] calls may fail on several threads
/// at once and the host reads each message on the thread of the failed call. Every thread
/// therefore owns one slot holding the message of its last failed call and the instance it
/// failed on (nil for `create`). `last_error(x)` returns the message only if the slot's
/// owner is `x`. The slot is cleared at the start of every call, which is exactly the
/// lifetime the header grants ("valid until the next call ... from that thread").
enum ThreadErrorSlot {
  /// Heap block per thread. `message` is nil after a failure only if strdup failed.
  private struct Slot {
    var failed = false
    var owner: UnsafeRawPointer?
    var message: UnsafeMutablePointer<CChar>?
  }

  private static let key: pthread_key_t = {
    var key = pthread_key_t()
    // On failure every thread falls back to the static messages below; never trap.
    _ = pthread_key_create(&key) { raw in
      guard let slot = raw?.assumingMemoryBound(to: Slot.self) else { return }
      free(slot.pointee.message)
      free(slot)
    }
    return key
  }()

  /// Static strings in the library's read-only data.
  private static var empty: UnsafePointer<CChar> { cString("") }
  private static var unrecorded: UnsafePointer<CChar> { cString("out of memory while recording the error message") }

  private static func cString(_ text: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
  }

  private static func slot(creating: Bool) -> UnsafeMutablePointer<Slot>? {
    if let raw = pthread_getspecific(key) { return raw.assumingMemoryBound(to: Slot.self) }
    guard creating, let raw = malloc(MemoryLayout<Slot>.stride) else { return nil }
    let slot = raw.assumingMemoryBound(to: Slot.self)
    slot.initialize(to: Slot())
    guard pthread_setspecific(key, raw) == 0 else {
      free(raw)
      return nil
    }
    return slot
  }

  /// Forgets this thread's message (called when a new call starts).
  static func clear() {
    guard let slot = slot(creating: false), slot.pointee.failed else { return }
    free(slot.pointee.message)
    slot.pointee = Slot()
  }

  /// Stores `message` (made one line) as this thread's last failure on `owner`.
  static func record(_ message: String, owner: UnsafeRawPointer?) {
    guard let slot = slot(creating: true) else { return }
    free(slot.pointee.message)
    let oneLine = String(message.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    slot.pointee = Slot(failed: true, owner: owner, message: strdup(oneLine))
  }

  /// This thread's message for `owner`, "" if its last failure was elsewhere or none.
  static func message(for owner: UnsafeRawPointer?) -> UnsafePointer<CChar> {
    guard let slot = slot(creating: false), slot.pointee.failed, slot.pointee.owner == owner else {
      return empty
    }
    return slot.pointee.message.map { UnsafePointer($0) } ?? unrecorded
  }
}
