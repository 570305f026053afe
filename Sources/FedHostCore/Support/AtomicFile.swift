import Foundation

/// Writes files so that a reader never sees a half-written one: the bytes go to a temporary
/// file in the same directory, are flushed to disk, and replace the target with rename(2),
/// which is atomic on POSIX file systems. A crash or Ctrl-C leaves the old file or none.
public enum AtomicFile {
  public static func write(_ data: Data, to path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(atPath: directory.isEmpty ? "." : directory,
                                            withIntermediateDirectories: true)
    let temporary = path + ".tmp-\(getpid())"
    guard let file = fopen(temporary, "wb") else { throw AtomicWriteError(path: path, reason: errnoText()) }
    let written = data.withUnsafeBytes { fwrite($0.baseAddress, 1, data.count, file) }
    let flushed = fflush(file) == 0 && fsync(fileno(file)) == 0
    fclose(file)
    guard written == data.count, flushed else {
      unlink(temporary)
      throw AtomicWriteError(path: path, reason: "short write: \(errnoText())")
    }
    guard rename(temporary, path) == 0 else {
      let reason = errnoText()
      unlink(temporary)
      throw AtomicWriteError(path: path, reason: reason)
    }
  }

  public static func write(_ text: String, to path: String) throws {
    try write(Data(text.utf8), to: path)
  }

  private static func errnoText() -> String { String(cString: strerror(errno)) }
}

public struct AtomicWriteError: Error, CustomStringConvertible {
  public let path: String
  public let reason: String
  public var description: String { "\(path): cannot write: \(reason)" }
}

/// A device name made safe as a file name (letters, digits and "-" kept, the rest "_"): the
/// report's model files and a split dump's device directories.
public func fileName(forDevice name: String) -> String {
  String(name.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
}
