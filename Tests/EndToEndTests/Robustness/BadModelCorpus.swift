import FedHostCore
import Foundation

/// Bad model files and mismatched exports, run through `host export` against the corpus's valid
/// federation (three inputs, a binary label).
enum BadModelCorpus {
  /// The model file format written out by hand (see ModelFile): magic, u32 width count, u32
  /// widths, u64 parameter count, float32 parameters, all little-endian.
  static func modelFile(widths: [UInt32], parameterCount: UInt64? = nil, parameters: [Float]) -> [UInt8] {
    var bytes = Array("FHMODEL1".utf8)
    func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    append(UInt32(widths.count))
    widths.forEach(append)
    append(parameterCount ?? UInt64(parameters.count))
    parameters.forEach { append($0.bitPattern) }
    return bytes
  }

  /// The second version: the first's bytes under "FHMODEL2", then the input names (count, then
  /// per name a u32 length and its bytes).
  static func namedModelFile(names: [[UInt8]], count: UInt32? = nil, widths: [UInt32] = widths,
                             parameters: [Float] = parameters) -> [UInt8] {
    var bytes = Array("FHMODEL2".utf8) + modelFile(widths: widths, parameters: parameters).dropFirst(8)
    func append(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    append(count ?? UInt32(names.count))
    for name in names {
      append(UInt32(name.count))
      bytes += name
    }
    return bytes
  }

  /// 3 → 8 → 1: 3·8 + 8 + 8·1 + 1 = 41 parameters; fits the corpus federation.
  static let widths: [UInt32] = [3, 8, 1]
  static let parameters: [Float] = (0..<41).map { Float($0 % 9 - 4) / 8 }
  static let validModel = modelFile(widths: widths, parameters: parameters)
  /// Where the parameters start: magic, count, three widths, the parameter count.
  static let header = 8 + 4 + 3 * 4 + 8

  static func withModel(_ bytes: [UInt8]) -> [String: [UInt8]] {
    BadInputCorpus.validFiles.merging(["model.fhmodel": bytes]) { $1 }
  }

  static func modelCase(_ name: String, _ bytes: [UInt8], _ expected: String, cArray: Bool = false) -> BadInput {
    BadInput(name: "model: " + name, files: withModel(bytes), command: .export([], cArray: cArray), expected: expected)
  }

  static func exportCase(_ name: String, _ files: [String: [UInt8]], _ arguments: [String], _ expected: String) -> BadInput {
    BadInput(name: "export: " + name, files: files, command: .export(arguments), expected: expected)
  }

  static func withParameter(_ index: Int, _ value: Float) -> [UInt8] {
    var changed = parameters
    changed[index] = value
    return modelFile(widths: widths, parameters: changed)
  }

  static let cases: [BadInput] = [
    modelCase("an empty file", [], "model.fhmodel: not a FedHost model file"),
    modelCase("a text file", Array("hello, model\n".utf8), "not a FedHost model file (it does not start with \"FHMODEL2\" or \"FHMODEL1\")"),
    modelCase("a TFLite file", [0x1C, 0, 0, 0] + Array("TFL3".utf8) + [UInt8](repeating: 0, count: 40), "not a FedHost model file"),
    modelCase("the magic alone", Array("FHMODEL1".utf8), "truncated: the header ends at byte 8, inside the layer-width count"),
    modelCase("cut inside the widths", Array(validModel.prefix(18)), "truncated: the header ends at byte 18, inside the width of layer 1"),
    modelCase("cut inside the parameter count", Array(validModel.prefix(28)), "inside the parameter count"),
    modelCase("no parameters", Array(validModel.prefix(header)), "truncated: 41 parameters need 164 bytes after the header, the file has 0"),
    modelCase("cut inside the parameters", Array(validModel.prefix(header + 30)),
              "model.fhmodel: truncated: 41 parameters need 164 bytes after the header, the file has 30"),
    modelCase("one byte short", Array(validModel.dropLast()), "truncated: 41 parameters need 164 bytes after the header, the file has 163"),
    modelCase("one byte short, as a C array", Array(validModel.dropLast()), "the file has 163", cArray: true),
    modelCase("bytes after the parameters", validModel + [1, 2, 3, 4], "4 bytes too many: 41 parameters need 164 bytes after the header, the file has 168"),
    modelCase("a width count of 0", modelFile(widths: [], parameters: []), "implausible layer-width count 0 (2 to 64)"),
    modelCase("a width count of 1", modelFile(widths: [3], parameters: []), "implausible layer-width count 1 (2 to 64)"),
    modelCase("a width count of 65", modelFile(widths: [UInt32](repeating: 2, count: 65), parameters: []), "implausible layer-width count 65"),
    modelCase("a width count of 2^32 - 1", Array("FHMODEL1".utf8) + [0xFF, 0xFF, 0xFF, 0xFF], "implausible layer-width count 4294967295"),
    modelCase("a width of 0", modelFile(widths: [3, 0, 1], parameters: []), "implausible width 0 at position 1 of [3, 0, 1] (1 to 65536)"),
    modelCase("a width of 10^6", modelFile(widths: [3, 1_000_000, 1], parameters: []), "implausible width 1000000 at position 1"),
    modelCase("a width of 2^32 - 1", modelFile(widths: [3, 8, .max], parameters: []), "implausible width 4294967295 at position 2"),
    modelCase("a parameter count that disagrees", modelFile(widths: widths, parameterCount: 40, parameters: parameters),
              "the header says 40 parameters, but"),
    modelCase("a parameter count of 2^64 - 1", modelFile(widths: widths, parameterCount: .max, parameters: parameters),
              "the header says 18446744073709551615 parameters"),
    modelCase("a NaN parameter", withParameter(7, .nan), "model.fhmodel: parameter 7 is nan; a trained model holds only finite numbers"),
    modelCase("an infinite parameter", withParameter(40, .infinity), "parameter 40 is inf"),
    modelCase("a negative infinite parameter", withParameter(0, -.infinity), "parameter 0 is -inf"),
    modelCase("a signalling NaN parameter", withParameter(12, .signalingNaN), "parameter 12 is"),
    modelCase("input names for 2 of 3 inputs", namedModelFile(names: [Array("a".utf8), Array("b".utf8)]),
              "model.fhmodel: 2 input names for a model of 3 inputs"),
    modelCase("an input name cut short", Array(namedModelFile(names: ["a", "b", "c"].map { Array($0.utf8) }).dropLast()),
              "truncated or implausible input name 2 (1 bytes)"),
    modelCase("an input name of 2^32 - 1 bytes", namedModelFile(names: [Array("a".utf8), Array("b".utf8)], count: 3)
                + [0xFF, 0xFF, 0xFF, 0xFF], "truncated or implausible input name 2 (4294967295 bytes)"),
    modelCase("an input name that is not UTF-8", namedModelFile(names: [Array("a".utf8), [0xFF, 0xFE], Array("c".utf8)]),
              "input name 1 is not UTF-8"),
    modelCase("bytes after the input names", namedModelFile(names: ["a", "b", "c"].map { Array($0.utf8) }) + [0],
              "1 bytes too many after the input names"),
    exportCase("a model trained on other inputs",
               withModel(namedModelFile(names: ["a", "current", "c"].map { Array($0.utf8) })), [],
               "input 1 of the model is \"current\", of the device \"b\" (was it trained on another federation?)"),
    exportCase("a missing model file", BadInputCorpus.validFiles, [], "model.fhmodel: no such file"),
    exportCase("a model with 9 inputs for 3-input devices",
               withModel(modelFile(widths: [9, 4, 1], parameters: [Float](repeating: 0.1, count: 9 * 4 + 4 + 4 + 1))), [],
               "model.fhmodel (9→4→1) does not fit device \"d1\" of the "),
    exportCase("the input widths named on both sides",
               withModel(modelFile(widths: [9, 4, 1], parameters: [Float](repeating: 0.1, count: 45))), ["--device", "d2"],
               "the model takes 9 inputs, the device's rows have 3"),
    exportCase("a 4-class model for a binary device",
               withModel(modelFile(widths: [3, 4, 4], parameters: [Float](repeating: 0.1, count: 12 + 4 + 16 + 4))), [],
               "the model has 4 classes, the device 2"),
    exportCase("both widths and classes differ",
               withModel(modelFile(widths: [5, 4, 3], parameters: [Float](repeating: 0.1, count: 20 + 4 + 12 + 3))), [],
               "the model takes 5 inputs, the device's rows have 3; the model has 3 classes, the device 2"),
    exportCase("a device the federation does not have", withModel(validModel), ["--device", "line-fault"],
               "no device \"line-fault\" in the "),
    exportCase("a device name differing in case", withModel(validModel), ["--device", "D1"], "no device \"D1\""),
    exportCase("a bad CSV behind a good model", withModel(validModel).merging(["d2.csv": Array("a,b,c,y\n1,2,3\n".utf8)]) { $1 }, [],
               "d2.csv:2: expected 4 fields, found 3"),
    exportCase("a bad spec behind a good model", withModel(validModel).merging(["spec.json": Array("{\"devices\": [],}".utf8)]) { $1 }, [],
               "spec.json: line 1 column 16: trailing comma before \"}\""),
  ]
}
