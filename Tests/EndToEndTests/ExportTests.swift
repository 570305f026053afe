import FedHostCore
import Foundation
import Testing

/// The Python that runs Tests/Fixtures/export/check_tflite.py: FEDHOST_PYTHON, default `python3`.
/// With FEDHOST_REQUIRE_LITERT=1 (CI) a missing ai_edge_litert fails the tests instead of skipping them.
enum RealInterpreters {
  static let environment = ProcessInfo.processInfo.environment
  static let python = environment["FEDHOST_PYTHON"] ?? "python3"
  static let required = environment["FEDHOST_REQUIRE_LITERT"] == "1"
  static let checker = packageRoot + "/Tests/Fixtures/export/check_tflite.py"
  static let installHint = "install it with: \(python) -m pip install ai-edge-litert tflite-micro numpy"
  static let litertImportable: Bool = {
    (try? runProcess("/usr/bin/env", [python, "-c", "import numpy, ai_edge_litert.interpreter"]).status) == 0
  }()
  /// Run the checks when LiteRT is there, or when it must be (then a missing LiteRT fails).
  static let shouldRun = litertImportable || required

  /// Outputs of every runtime the checker found, for `inputs` (int8 rows).
  struct Outputs {
    var byRuntime: [String: [[Int]]]
    var tflmMissing: String?
    var tflmArenaBytes: Int?
  }

  static func run(model bytes: [UInt8], inputs: [Int8], in directory: String) throws -> Outputs {
    try #require(litertImportable, "ai_edge_litert cannot be imported by \(python); \(installHint)")
    let modelPath = directory + "/model.tflite"
    let inputPath = directory + "/inputs.bin"
    let outputPath = directory + "/outputs.json"
    try Data(bytes).write(to: URL(fileURLWithPath: modelPath))
    try Data(inputs.map { UInt8(bitPattern: $0) }).write(to: URL(fileURLWithPath: inputPath))
    let result = try runProcess("/usr/bin/env", [python, checker, modelPath, inputPath, outputPath])
    try #require(result.status == 0, "checker failed: \(result.stderr)")
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: outputPath))) as! [String: Any]
    var byRuntime = [String: [[Int]]]()
    for (key, value) in json { if let rows = value as? [[Int]] { byRuntime[key] = rows } }
    let arena = (result.stdout + result.stderr).split(separator: "\n").first { $0.contains("Arena allocation total") }
      .flatMap { line in line.split(separator: " ").compactMap { Int($0) }.first }
    return Outputs(byRuntime: byRuntime, tflmMissing: json["tflm_missing"] as? String, tflmArenaBytes: arena)
  }
}

/// Exported models run in LiteRT (and TFLite Micro when installed) and must give exactly the int8
/// outputs of FedHost's own integer path.
@Suite("TFLite export checked by real interpreters")
struct ExportInterpreterTests {
  let directory: String
  init() throws { directory = try temporaryDirectory("export") }

  /// A paper-shaped model briefly trained on the embedded line-fault device, quantized on its
  /// Phase 3 training rows; the test rows plus saturating rows as inputs.
  static func trainedLineFaultModel(granularity: WeightGranularity) throws -> (QuantizedMLP, [Int8]) {
    let device = EmbeddedFederation.make(seed: EmbeddedFederation.defaultSeed).prepare(seed: 0).devices[0]
    let architecture = MLPArchitecture.paper
    let parameters = architecture.initialParameters(seed: 3)
    _ = try MLPTrainer(architecture: architecture).train(
      parameters, on: device.train, options: TrainingOptions(optimizer: .adam(learningRate: 1e-3), epochs: 2, batchSize: 16))
    let model = try Quantizer.quantize(parameters, architecture: architecture, calibration: device.phase3Train,
                                       granularity: granularity)
    let inputs = try Int8Inference(model).quantizedInputs(device.test) + extremeRows(width: architecture.inputWidth)
    return (model, inputs)
  }

  /// Rows at the int8 limits and alternating signs: they drive accumulators and clamps to extremes.
  static func extremeRows(width: Int) -> [Int8] {
    [Int8.min, .max, 0, -1].flatMap { [Int8](repeating: $0, count: width) }
      + (0..<width).map { $0 % 2 == 0 ? Int8.max : .min }
  }

  /// Which of FedHost's roundings each runtime was built with (measured, see docs/tinyml-export.md).
  static let runtimes: [(runtime: String, rounding: FixedPoint.Rounding)] = [
    ("litert-builtin", .double), ("tflm", .double), ("litert-reference", .single),
  ]

  /// Expects every runtime in `runtimes` to reproduce FedHost's integer path (with that runtime's
  /// rounding) bit for bit, or, with `oneLSBShare` > 0, within 1 LSB on at most that share of rows;
  /// and LiteRT's default XNNPACK delegate (float requantization, not bit-exact by design) to stay
  /// within `xnnpackLSB` and predict the same class on at least 99 % of rows.
  func expectAgreement(_ model: QuantizedMLP, inputs: [Int8], oneLSBShare: Double = 0,
                       xnnpackLSB: Int) throws -> RealInterpreters.Outputs {
    let width = model.architecture.outputWidth
    let outputs = try RealInterpreters.run(model: TFLiteWriter.flatbuffer(for: model, description: "test"),
                                           inputs: inputs, in: directory)
    if outputs.tflmMissing != nil && RealInterpreters.required {
      Issue.record("TFLite Micro is not available: \(outputs.tflmMissing!)")
    }
    let rowCount = inputs.count / model.architecture.inputWidth
    for (runtime, rounding) in Self.runtimes where runtime != "tflm" || outputs.tflmMissing == nil {
      let expected = Int8Inference(model, rounding: rounding).outputs(forQuantizedInputs: inputs).map(Int.init)
      let actual = try #require(outputs.byRuntime[runtime], "no outputs from \(runtime)").flatMap { $0 }
      let differingRows = (0..<rowCount).filter { row in
        (row * width..<(row + 1) * width).contains { actual[$0] != expected[$0] }
      }
      #expect(Double(differingRows.count) <= oneLSBShare * Double(rowCount),
              "\(runtime) vs \(rounding) rounding: \(differingRows.count) of \(rowCount) rows differ, first \(differingRows.prefix(5))")
      #expect(zip(actual, expected).allSatisfy { abs($0 - $1) <= 1 }, "\(runtime): more than 1 LSB off")
    }
    let expected = Int8Inference(model).outputs(forQuantizedInputs: inputs).map(Int.init)
    let xnnpack = try #require(outputs.byRuntime["litert-default"]).flatMap { $0 }
    let largest = zip(xnnpack, expected).map { abs($0 - $1) }.max() ?? 0
    #expect(largest <= xnnpackLSB, "XNNPACK is \(largest) LSB off")
    let sameClass = (0..<rowCount).filter { row in
      let range = row * width..<(row + 1) * width
      func predicted(_ values: [Int]) -> Int {
        width == 1 ? (values[row] >= 0 ? 1 : 0) : range.max { values[$0] < values[$1] }!
      }
      return predicted(xnnpack) == predicted(expected)
    }.count
    #expect(sameClass * 100 >= rowCount * 99, "XNNPACK predicts the same class on only \(sameClass) of \(rowCount) rows")
    return outputs
  }

  @Test(.enabled(if: RealInterpreters.shouldRun, "ai_edge_litert not importable by FEDHOST_PYTHON; \(RealInterpreters.installHint)"),
        arguments: WeightGranularity.allCases)
  func trainedSigmoidModelIsBitExact(granularity: WeightGranularity) throws {
    let (model, inputs) = try Self.trainedLineFaultModel(granularity: granularity)
    let outputs = try expectAgreement(model, inputs: inputs, xnnpackLSB: 32)
    if outputs.tflmMissing == nil {
      let arena = try #require(outputs.tflmArenaBytes, "TFLite Micro did not print its arena size")
      let footprint = DeviceFootprint(model: model, flatbufferSize: 0)
      #expect(arena <= footprint.arenaBytes, "TFLite Micro used \(arena) B, suggested \(footprint.arenaBytes) B")
      #expect(footprint.arenaBytes <= arena + 2 * DeviceFootprint.allocatorMargin, "arena estimate far too large")
    }
  }

  /// LiteRT finds the SignatureDef (key, input and output names) and its runner gives the
  /// interpreter's output; the operators LiteRT reads from the file are the ones the C header
  /// tells TFLite Micro to register.
  @Test(.enabled(if: RealInterpreters.shouldRun, "ai_edge_litert not importable by FEDHOST_PYTHON; \(RealInterpreters.installHint)"),
        arguments: [[9, 16, 1], [5, 8, 3]])
  func signatureAndOperatorsAreWhatTheHeaderSays(widths: [Int]) throws {
    try #require(RealInterpreters.litertImportable, "ai_edge_litert cannot be imported; \(RealInterpreters.installHint)")
    let architecture = try MLPArchitecture(widths: widths)
    let samples = Samples(features: (0..<(40 * widths[0])).map { Float($0 % 13) / 4 - 1.5 },
                          labels: [Int32](repeating: 0, count: 40), width: widths[0])
    let model = try Quantizer.quantize(architecture.initialParameters(seed: 2), architecture: architecture, calibration: samples)
    let path = directory + "/signature.tflite"
    try Data(TFLiteWriter.flatbuffer(for: model, description: "test")).write(to: URL(fileURLWithPath: path))
    let script = """
      import json, sys, numpy as np
      from ai_edge_litert.interpreter import Interpreter, OpResolverType
      # Without the XNNPACK delegate, which would replace the file's operators by one delegate node.
      interpreter = Interpreter(model_path=sys.argv[1],
                                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
      interpreter.allocate_tensors()
      row = np.arange(\(widths[0]), dtype=np.int8).reshape(1, -1)
      interpreter.set_tensor(interpreter.get_input_details()[0]["index"], row)
      interpreter.invoke()
      plain = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).tolist()
      runner = interpreter.get_signature_runner("\(TFLiteWriter.signatureKey)")
      signed = runner(\(TFLiteWriter.signatureInput)=row)["\(TFLiteWriter.signatureOutput)"].tolist()
      ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
      print(json.dumps({"signatures": interpreter.get_signature_list(), "same": plain == signed, "ops": ops}))
      """
    let run = try runProcess("/usr/bin/env", [RealInterpreters.python, "-c", script, path])
    try #require(run.status == 0, "\(run.stderr)")
    let line = try #require(run.stdout.split(separator: "\n").last)
    let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    let signatures = try #require(json["signatures"] as? [String: [String: [String]]])
    #expect(signatures == ["serving_default": ["inputs": ["input"], "outputs": ["probabilities"]]])
    #expect(json["same"] as? Bool == true)
    let registered = TFLiteWriter.resolverCalls(for: model)
    let fromFile = (json["ops"] as? [String] ?? []).map { name in
      "Add" + name.split(separator: "_").map { $0.prefix(1) + $0.dropFirst().lowercased() }.joined() + "()"
    }
    #expect(registered.sorted() == fromFile.sorted(), "header registers \(registered), the file uses \(fromFile)")
    let header = CArrayWriter.header(name: "m", byteCount: 0, interface: .init(
      model: model, footprint: DeviceFootprint(model: model, flatbufferSize: 0), standardizer: nil))
    #expect(header.contains("MicroMutableOpResolver<\(registered.count)> resolver;"))
    for call in registered { #expect(header.contains(" *   resolver.\(call);"), "header lacks \(call)") }
  }

  @Test(.enabled(if: RealInterpreters.shouldRun, "ai_edge_litert not importable by FEDHOST_PYTHON; \(RealInterpreters.installHint)"))
  func softmaxModelMatchesLiteRT() throws {
    let architecture = try MLPArchitecture(widths: [5, 24, 16, 3])
    let parameters = architecture.initialParameters(seed: 11)
    var generator = SeededGenerator(seed: 5)
    let features = (0..<(400 * 5)).map { _ in Float(generator.nextUnit() * 6 - 3) }
    let samples = Samples(features: features, labels: [Int32](repeating: 0, count: 400), width: 5)
    let model = try Quantizer.quantize(parameters, architecture: architecture, calibration: samples)
    let inputs = try Int8Inference(model).quantizedInputs(samples) + Self.extremeRows(width: 5)
    // Softmax: LiteRT's exp table does not come from glibc's correctly rounded expf, and TFLite
    // Micro's softmax is fixed-point, so a few probabilities land 1 LSB apart.
    _ = try expectAgreement(model, inputs: inputs, oneLSBShare: 0.05, xnnpackLSB: 32)
  }
}

/// `host export` through the real binary: files, report, errors.
@Suite("host export")
struct ExportCommandTests {
  let directory: String
  let modelPath: String

  init() throws {
    directory = try temporaryDirectory("export-cli")
    modelPath = directory + "/line-fault.fhmodel"
    let architecture = MLPArchitecture.paper
    try ModelFile.write(architecture.initialParameters(seed: 1), architecture: architecture, to: modelPath)
  }

  @Test func writesATFLiteFileAndTheReport() throws {
    let out = directory + "/model.tflite"
    let run = try runHost(["export", "--model", modelPath, "--format", "tflite", "--out", out, "--device", "line-fault"])
    #expect(run.status == 0, "\(run.stderr)")
    let bytes = try #require(FileManager.default.contents(atPath: out))
    #expect(String(decoding: bytes[4..<8], as: UTF8.self) == "TFL3")
    for needle in ["FP32 (host)", "INT8 (TFLite", "accuracy", "F1", "host latency", "tensor arena", "\(bytes.count) B"] {
      #expect(run.stdout.contains(needle), "missing \(needle) in \(run.stdout)")
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory).allSatisfy { !$0.contains(".tmp-") })
  }

  @Test func cArrayCompilesAndHoldsTheSameBytes() throws {
    let tflite = directory + "/model.tflite"
    let source = directory + "/line_fault_model.c"
    for (format, out) in [("tflite", tflite), ("c-array", source)] {
      let run = try runHost(["export", "--model", modelPath, "--format", format, "--out", out, "--weights", "per-tensor"])
      #expect(run.status == 0, "\(run.stderr)")
    }
    let expected = try #require(FileManager.default.contents(atPath: tflite))
    let header = try String(contentsOfFile: directory + "/line_fault_model.h", encoding: .utf8)
    for needle in ["LINE_FAULT_MODEL_INPUT_SCALE", "LINE_FAULT_MODEL_INPUT_ZERO_POINT", "LINE_FAULT_MODEL_OUTPUT_SCALE",
                   "LINE_FAULT_MODEL_OUTPUT_ZERO_POINT (-128)", "LINE_FAULT_MODEL_TENSOR_ARENA_BYTES", "line_fault_model_feature_mean",
                   "tflite::MicroMutableOpResolver<2> resolver;", "resolver.AddFullyConnected();", "resolver.AddLogistic();",
                   "tensor_arena[LINE_FAULT_MODEL_TENSOR_ARENA_BYTES]", "#define LINE_FAULT_MODEL_OPERATOR_COUNT 2"] {
      #expect(header.contains(needle), "header lacks \(needle)")
    }
    // A C program that includes the header, links the array and prints its length and checksum.
    let program = directory + "/main.c"
    try """
      #include <stdio.h>
      #include "line_fault_model.h"
      int main(void) {
        unsigned long sum = 0;
        for (unsigned int i = 0; i < line_fault_model_len; ++i) sum = sum * 31 + line_fault_model[i];
        printf("%u %lu %d\\n", line_fault_model_len, sum, (int)((unsigned long)line_fault_model % 16));
        return 0;
      }
      """.write(toFile: program, atomically: true, encoding: .utf8)
    let binary = directory + "/main"
    let compile = try runProcess("/usr/bin/env", ["cc", "-std=c11", "-Wall", "-Werror", "-o", binary, program, source])
    try #require(compile.status == 0, "cc: \(compile.stderr)")
    let checksum = expected.reduce(UInt(0)) { $0 &* 31 &+ UInt($1) }
    #expect(try runProcess(binary, []).stdout == "\(expected.count) \(checksum) 0\n")
  }

  @Test func unknownDeviceAndMissingModelAreOneLineErrors() throws {
    let unknown = try runHost(["export", "--model", modelPath, "--out", directory + "/x.tflite", "--device", "toaster"])
    #expect(unknown.status == 2)
    #expect(unknown.stderr.contains("no device \"toaster\"") && unknown.stderr.split(separator: "\n").count == 1)
    let missing = try runHost(["export", "--model", directory + "/none.fhmodel", "--out", directory + "/y.tflite"])
    #expect(missing.status == 2 && missing.stderr.contains("none.fhmodel: no such file"))
    #expect(!FileManager.default.fileExists(atPath: directory + "/x.tflite"))
    #expect(!FileManager.default.fileExists(atPath: directory + "/y.tflite"))
  }

  @Test(arguments: [(["--preset", "fast"], "--preset must be one of"),
                     (["--phases", "0.5,0.5"], "--phases must be three shares in 0...1 that sum to 1, not [0.5, 0.5]"),
                     (["--phases", "0.5,0.4,0.4"], "--phases must be three shares in 0...1 that sum to 1")])
  func badPresetOrPhasesAreOneLineErrors(options: [String], message: String) throws {
    let out = directory + "/bad.tflite"
    let run = try runHost(["export", "--model", modelPath, "--out", out] + options)
    #expect(run.status == 2)
    #expect(run.stderr.contains(message) && run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
    #expect(!FileManager.default.fileExists(atPath: out))
  }

  @Test func nanWeightsAreRefusedWithoutWritingAFile() throws {
    let architecture = MLPArchitecture.paper
    let parameters = architecture.initialParameters(seed: 1)
    parameters[100] = .nan
    let broken = directory + "/broken.fhmodel"
    try ModelFile.write(parameters, architecture: architecture, to: broken)
    let out = directory + "/broken.tflite"
    let run = try runHost(["export", "--model", broken, "--out", out])
    #expect(run.status == 2)
    #expect(run.stderr.contains("parameter 100 is nan"), "\(run.stderr)")
    #expect(!FileManager.default.fileExists(atPath: out))
  }
}
