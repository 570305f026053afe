import FedHostCore
import Foundation
import Testing

/// Every bad CSV, spec and model file of the corpus through the real `host` binary: exit code 2,
/// exactly one stderr line naming the problem, and nothing written.
@Suite("Bad inputs get one clear line")
struct BadInputTests {
  /// Writes `files` to a fresh directory and runs `command` on it.
  static func run(_ command: BadInput.Command, files: [String: [UInt8]], name: String) throws -> (HostRun, String) {
    let directory = try temporaryDirectory("bad-input-" + name.filter { $0.isLetter || $0.isNumber })
    for (file, bytes) in files { try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + file)) }
    let data = ["--federation", directory + "/spec.json", "--data-dir", directory]
    let arguments: [String] = switch command {
    case .run(let extra):
      ["run", "--aggregator", "libFedAvg.so"] + data + ["--out", directory + "/out"] + extra
    case .export(let extra, let cArray):
      ["export", "--model", directory + "/model.fhmodel"] + data
        + (cArray ? ["--format", "c-array", "--out", directory + "/out.c"] : ["--out", directory + "/out.tflite"]) + extra
    }
    return (try runHost(arguments), directory)
  }

  static let corpus = BadInputCorpus.csvCases + BadInputCorpus.specCases + BadModelCorpus.cases

  @Test(arguments: corpus)
  func isRefusedWithOneLine(_ input: BadInput) throws {
    let (run, directory) = try Self.run(input.command, files: input.files, name: input.name)
    #expect(run.status == 2, "exit code \(run.status): \(run.stderr)")
    let lines = run.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
    #expect(lines.count == 1 && run.stderr.hasSuffix("\n"), "stderr is not one line: \(run.stderr)")
    #expect(run.stderr.hasPrefix("host: ") && run.stderr.contains(input.expected), "stderr: \(run.stderr)")
    #expect(run.stdout.isEmpty, "stdout: \(run.stdout)")
    let left = try FileManager.default.contentsOfDirectory(atPath: directory)
    #expect(Set(left) == Set(input.files.keys), "files written: \(Set(left).subtracting(input.files.keys).sorted())")
  }

  @Test func theCorpusIsLargeAndItsNamesAreDistinct() {
    #expect(Self.corpus.count >= 100)
    #expect(Set(Self.corpus.map(\.name)).count == Self.corpus.count)
  }

  /// The unbroken federation runs, and the unbroken model exports, in the same setup: the
  /// refusals above come from each case's one change, not from the harness.
  @Test func theValidInputsAreAccepted() throws {
    let quick = ["--baselines", "none", "--no-local-only", "--initializer", "none", "--rounds", "1",
                 "--personalization-epochs", "1", "--quiet"]
    let (run, directory) = try Self.run(.run(quick), files: BadInputCorpus.validFiles, name: "valid-run")
    #expect(run.status == 0, "\(run.stderr)")
    #expect(FileManager.default.fileExists(atPath: directory + "/out/report.json"))

    for cArray in [false, true] {
      let (export, exportDirectory) = try Self.run(.export([], cArray: cArray), files: BadModelCorpus.withModel(BadModelCorpus.validModel),
                                                   name: "valid-export")
      #expect(export.status == 0, "\(export.stderr)")
      #expect(FileManager.default.fileExists(atPath: exportDirectory + (cArray ? "/out.h" : "/out.tflite")))
    }
  }
}
