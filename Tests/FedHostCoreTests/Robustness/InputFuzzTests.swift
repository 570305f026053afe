import FedHostCore
import Foundation
import Testing

/// Bounded, seeded fuzzing of the three input readers: valid CSV, spec and model files are
/// mutated byte-wise and each result must be a value or an `InputError` with a one-line
/// description, never a trap. A trap cannot be caught, so a signal handler prints the case's
/// seed first (the suite is serialized so that the armed seed is the running case's);
/// `FEDHOST_FUZZ_CASES` raises the count (the default keeps CI within seconds).
@Suite("Seeded fuzzing of the input readers", .serialized)
struct InputFuzzTests {
  static let cases = Int(ProcessInfo.processInfo.environment["FEDHOST_FUZZ_CASES"] ?? "") ?? 5000

  static let csvSeed = Array([
    #"a,b,"c d",y"#, #"1.5,-2e3,"x, ""quoted""",1"#, "0, 7 ,3,0\r", "4,5,6,1", "-0.25,1e-3,,0", "",
  ].joined(separator: "\n").utf8)

  static let specSeed = Array(#"""
    {"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y", "pad_to": 4, "drop": ["c d"],
                  "memory": {"flash_bytes": 65536, "ram_bytes": 8192}, "model_rate": 0.5},
                 {"name": "d\u00e9", "dataset": "d2.csv", "label_bits": ["y"], "task": "binary"}],
     "splits": {"test": 0.2, "phase1": 0.2, "phase2": 0.5, "phase3": 0.3, "mode": "blocks:4"}}
    """#.utf8)

  static let modelSeed: [UInt8] = {
    var bytes = Array("FHMODEL1".utf8)
    func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    let widths: [UInt32] = [3, 4, 2]
    append(UInt32(widths.count))
    widths.forEach(append)
    let parameterCount = 3 * 4 + 4 + 4 * 2 + 2
    append(UInt64(parameterCount))
    for index in 0..<parameterCount { append((Float(index - 13) / 8).bitPattern) }
    return bytes
  }()

  /// Bytes that matter to the readers: separators, quotes, brackets, digits, NUL, invalid UTF-8.
  static let interesting: [UInt8] = {
    let text: [UInt8] = Array(",\"\n\r{}[]:\\0-.e9 ".utf8)
    let raw: [UInt8] = [0, 0x7F, 0x80, 0xC0, 0xED, 0xFF]
    return text + raw
  }()

  /// One to four edits of `seed`: flip a bit, overwrite, insert or delete a byte, duplicate or
  /// drop a run, or truncate.
  static func mutate(_ seed: [UInt8], _ random: inout SeededGenerator) -> [UInt8] {
    var bytes = seed
    for _ in 0...random.nextIndex(below: 4) {
      let position = bytes.isEmpty ? 0 : random.nextIndex(below: bytes.count)
      let pick = interesting[random.nextIndex(below: interesting.count)]
      switch random.nextIndex(below: 7) {
      case 0 where !bytes.isEmpty: bytes[position] ^= 1 << UInt8(random.nextIndex(below: 8))
      case 1 where !bytes.isEmpty: bytes[position] = pick
      case 2: bytes.insert(pick, at: position)
      case 3 where !bytes.isEmpty: bytes.remove(at: position)
      case 4 where !bytes.isEmpty:
        let end = min(bytes.count, position + 1 + random.nextIndex(below: 16))
        bytes.insert(contentsOf: bytes[position..<end], at: position)
      case 5 where !bytes.isEmpty: bytes.removeSubrange(position..<min(bytes.count, position + 1 + random.nextIndex(below: 16)))
      default: bytes = Array(bytes.prefix(position))
      }
    }
    return bytes
  }

  /// Runs `cases` mutations of `seed` through `read`; a thrown error must be an InputError with
  /// a non-empty one-line description. Returns how many inputs were accepted.
  static func fuzz(_ label: String, seed: [UInt8], stream: UInt64, read: ([UInt8]) throws -> Void) -> Int {
    var accepted = 0
    for index in 0..<cases {
      let caseSeed = SeededGenerator.seed(UInt64(index), stream: stream)
      CrashReport.arm("\(label) fuzz case seed \(caseSeed) (index \(index), stream \(stream))")
      var random = SeededGenerator(seed: caseSeed)
      let input = mutate(seed, &random)
      do {
        try read(input)
        accepted += 1
      } catch let error as InputError {
        let text = error.description
        #expect(!text.isEmpty && !text.contains("\n"), "\(label) case seed \(caseSeed): \(text)")
      } catch {
        Issue.record("\(label) case seed \(caseSeed): \(type(of: error)) is not an InputError: \(error)")
      }
    }
    CrashReport.disarm()
    return accepted
  }

  @Test func csvReaderAndDatasetLayout() throws {
    let spec = DatasetSpec(label: .column("y"), drop: ["c d"])
    _ = try spec.makeDataset(from: CSVTable(bytes: Self.csvSeed, fileName: "seed.csv"))
    let accepted = Self.fuzz("CSV", seed: Self.csvSeed, stream: 1) { bytes in
      _ = try spec.makeDataset(from: CSVTable(bytes: bytes, fileName: "fuzz.csv"))
    }
    // Both outcomes must occur, or the mutations are not exercising the reader.
    #expect(accepted > 0 && accepted < Self.cases, "\(accepted) of \(Self.cases) accepted")
  }

  @Test func specReader() throws {
    _ = try FederationSpec.parse(Data(Self.specSeed), fileName: "seed.json")
    let accepted = Self.fuzz("spec", seed: Self.specSeed, stream: 2) { bytes in
      _ = try FederationSpec.parse(Data(bytes), fileName: "fuzz.json")
    }
    #expect(accepted > 0 && accepted < Self.cases, "\(accepted) of \(Self.cases) accepted")
  }

  /// Whatever the strict parser accepts, Foundation's parser accepts too, with the same values:
  /// strictness only removes documents, it never reads one differently.
  @Test func strictJSONAgreesWithFoundationOnWhatItAccepts() {
    var compared = 0
    _ = Self.fuzz("JSON", seed: Self.specSeed, stream: 3) { bytes in
      let value = try StrictJSON.parse(bytes, file: "fuzz.json")
      let foundation = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
      #expect(foundation.map { StrictJSONTests.sameValue(value, $0) } == true,
              "accepted by StrictJSON only: \(String(decoding: bytes, as: UTF8.self))")
      compared += 1
    }
    #expect(compared > 0)
  }

  @Test func modelReader() throws {
    _ = try ModelFile.decode(Self.modelSeed, path: "seed.fhmodel")
    let accepted = Self.fuzz("model", seed: Self.modelSeed, stream: 4) { bytes in
      _ = try ModelFile.decode(bytes, path: "fuzz.fhmodel")
    }
    #expect(accepted > 0 && accepted < Self.cases, "\(accepted) of \(Self.cases) accepted")
    // The second version, with the input names after the parameters.
    var named = Array("FHMODEL2".utf8) + Self.modelSeed.dropFirst(8)
    for name in ["", "a", "current"] {
      withUnsafeBytes(of: UInt32(name.utf8.count).littleEndian) { named += $0 }
      named += name.utf8
    }
    named.insert(contentsOf: withUnsafeBytes(of: UInt32(3).littleEndian, Array.init), at: Self.modelSeed.count)
    #expect(try ModelFile.decode(named, path: "named.fhmodel").featureNames == ["", "a", "current"])
    let acceptedNamed = Self.fuzz("named model", seed: named, stream: 5) { bytes in
      _ = try ModelFile.decode(bytes, path: "fuzz.fhmodel")
    }
    #expect(acceptedNamed > 0 && acceptedNamed < Self.cases, "\(acceptedNamed) of \(Self.cases) accepted")
  }
}

/// Prints the armed message if the process dies of a trap or a memory fault while a fuzz case
/// runs. The message is formatted before the case, so the handler only calls write(2).
enum CrashReport {
  nonisolated(unsafe) private static var message = [UInt8](repeating: 0, count: 256)
  nonisolated(unsafe) private static var length = 0
  private static let installed: Void = {
    for signal in [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT] {
      var action = sigaction()
      action.__sigaction_handler.sa_handler = { number in
        CrashReport.message.withUnsafeBufferPointer { _ = write(2, $0.baseAddress, CrashReport.length) }
        Glibc.signal(number, SIG_DFL)
        raise(number)
      }
      sigaction(signal, &action, nil)
    }
  }()

  static func arm(_ text: String) {
    _ = installed
    let bytes = Array("\nfatal signal during \(text)\n".utf8.prefix(message.count))
    message.replaceSubrange(0..<bytes.count, with: bytes)
    length = bytes.count
  }

  static func disarm() { length = 0 }
}
