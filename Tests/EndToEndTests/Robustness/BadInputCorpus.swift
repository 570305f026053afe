import FedHostCore
import Foundation

/// One bad input to the real `host` binary: the files of a data directory (a spec, CSVs, a model
/// file), the command to run on it, and a fragment the one stderr line must contain.
struct BadInput: CustomStringConvertible, Sendable {
  enum Command: Sendable {
    /// `host run --federation DIR/spec.json --data-dir DIR --out DIR/out` plus these arguments.
    case run([String])
    /// `host export --model DIR/model.fhmodel --federation DIR/spec.json --data-dir DIR --out DIR/out.tflite`
    /// (or `--format c-array --out DIR/out.c` for a C array) plus these arguments.
    case export([String], cArray: Bool = false)
  }

  let name: String
  let files: [String: [UInt8]]
  let command: Command
  let expected: String

  var description: String { name }
}

/// The corpus: every case starts from a small valid federation (two devices, three features, a
/// binary label) and breaks one thing. `validFiles` itself runs to completion, which the suite
/// checks, so each refusal is caused by the one change.
enum BadInputCorpus {
  static let header = "a,b,c,y"

  /// A valid device file: 40 rows, both classes, features that separate them a little.
  static func deviceRows(offset: Int) -> [String] {
    (0..<40).map { row in
      let label = row % 2
      return "\(Double(row + offset) / 10),\(Double(label) + Double(row % 7) / 7),\(row % 5),\(label)"
    }
  }

  static func csv(_ lines: [String]) -> [UInt8] { Array((lines.joined(separator: "\n") + "\n").utf8) }

  static let deviceOne = csv([header] + deviceRows(offset: 0))
  static let deviceTwo = csv([header] + deviceRows(offset: 3))

  static let validSpec = #"{"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y"}, {"name": "d2", "dataset": "d2.csv", "label": "y"}]}"#

  static let validFiles: [String: [UInt8]] = [
    "spec.json": Array(validSpec.utf8), "d1.csv": deviceOne, "d2.csv": deviceTwo,
  ]

  /// The valid federation with device 1's CSV replaced.
  static func deviceOneCSV(_ bytes: [UInt8]) -> [String: [UInt8]] {
    validFiles.merging(["d1.csv": bytes]) { $1 }
  }

  /// Device 1's CSV with data line `row` (0-based, after the header) replaced by `line`.
  static func withRow(_ row: Int, _ line: [UInt8]) -> [String: [UInt8]] {
    var lines = ([header] + deviceRows(offset: 0)).map { Array($0.utf8) }
    lines[row + 1] = line
    return deviceOneCSV(lines.joined(separator: [UInt8(ascii: "\n")]) + [UInt8(ascii: "\n")])
  }

  static func withRow(_ row: Int, _ line: String) -> [String: [UInt8]] { withRow(row, Array(line.utf8)) }

  static func withHeader(_ line: [UInt8]) -> [String: [UInt8]] {
    deviceOneCSV(Array(line) + [UInt8(ascii: "\n")] + Array(deviceRows(offset: 0).joined(separator: "\n").utf8) + [UInt8(ascii: "\n")])
  }

  /// The valid CSVs with another spec.
  static func spec(_ text: String) -> [String: [UInt8]] { specBytes(Array(text.utf8)) }
  static func specBytes(_ bytes: [UInt8]) -> [String: [UInt8]] { validFiles.merging(["spec.json": bytes]) { $1 } }

  /// A spec with one device whose extra keys are `extra` (JSON members, e.g. `"pad_to": 0`).
  static func oneDevice(_ extra: String) -> [String: [UInt8]] {
    spec(#"{"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y", \#(extra)}]}"#)
  }

  /// A spec partitioning d1.csv; `members` are the partition's keys besides dataset and label.
  static func partition(_ members: String) -> [String: [UInt8]] {
    spec(#"{"partition": {"dataset": "d1.csv", "label": "y", \#(members)}}"#)
  }

  static func csvCase(_ name: String, _ files: [String: [UInt8]], _ expected: String, _ extra: [String] = []) -> BadInput {
    BadInput(name: "csv: " + name, files: files, command: .run(extra), expected: expected)
  }

  static func specCase(_ name: String, _ files: [String: [UInt8]], _ expected: String) -> BadInput {
    BadInput(name: "spec: " + name, files: files, command: .run([]), expected: expected)
  }

  static let csvCases: [BadInput] = [
    csvCase("empty file", deviceOneCSV([]), "d1.csv:1: file is empty"),
    csvCase("header only", deviceOneCSV(Array("a,b,c,y\n".utf8)), "d1.csv:2: no data rows after the header"),
    csvCase("blank lines only", deviceOneCSV(Array("\n\n\n".utf8)), "d1.csv:1: file is empty"),
    csvCase("a row with too many fields", withRow(3, "1,2,3,0,9"), "d1.csv:5: expected 4 fields, found 5"),
    csvCase("a row with too few fields", withRow(5, "1,2,0"), "d1.csv:7: expected 4 fields, found 3"),
    csvCase("an unclosed quote", withRow(2, "1,\"2,3,0"), "d1.csv:4: quoted field is never closed"),
    csvCase("text after a closing quote", withRow(2, "1,\"2\"x,3,0"), "text after the closing quote"),
    csvCase("an unnamed column holding data", withHeader(Array("a,b,,y".utf8)), "column 3 has no name but holds"),
    csvCase("a duplicate column", withHeader(Array("a,b,a,y".utf8)), "d1.csv:1: duplicate column \"a\""),
    csvCase("a header naming no columns", deviceOneCSV(Array(",,\n,,\n".utf8)), "header names no columns"),
    csvCase("a word in a numeric cell", withRow(0, "abc,1,2,0"), "column \"a\": \"abc\" is not a number"),
    csvCase("a decimal comma", withRow(1, "\"1,5\",1,2,1"), "\"1,5\" is not a number"),
    csvCase("an empty numeric cell", withRow(4, ",1,2,0"), "column \"a\": \"\" is not a number"),
    csvCase("NaN in a cell", withRow(6, "nan,1,2,0"), "\"nan\" is not a number"),
    csvCase("NaN spelt NaN", withRow(6, "1,NaN,2,0"), "\"NaN\" is not a number"),
    csvCase("infinity in a cell", withRow(7, "inf,1,2,1"), "\"inf\" is not a number"),
    csvCase("a negative infinity", withRow(7, "1,-infinity,2,1"), "\"-infinity\" is not a number"),
    csvCase("a number beyond Double", withRow(8, "1e999,1,2,0"), "\"1e999\" is not a number"),
    csvCase("two numbers in one cell", withRow(8, "1 2,1,2,0"), "\"1 2\" is not a number"),
    csvCase("a NUL byte after a number", withRow(9, Array("1".utf8) + [0] + Array("5,1,2,1".utf8)), "d1.csv:11: field 1 holds a NUL byte"),
    csvCase("a NUL byte alone", withRow(9, [0] + Array(",1,2,1".utf8)), "d1.csv:11: field 1 holds a NUL byte"),
    csvCase("a NUL byte in the label", withRow(3, Array("1,1,2,1".utf8) + [0]), "d1.csv:5: field 4 holds a NUL byte"),
    csvCase("a NUL byte in the header", withHeader(Array("a,b".utf8) + [0] + Array(",c,y".utf8)), "d1.csv:1: field 2 holds a NUL byte"),
    csvCase("a NUL byte in a quoted field", withRow(2, Array("\"1".utf8) + [0] + Array("\",1,2,0".utf8)), "field 1 holds a NUL byte"),
    csvCase("invalid UTF-8 in the header", withHeader([0x61, 0xFF] + Array(",b,c,y".utf8)), "d1.csv:1: field 1 is not valid UTF-8"),
    csvCase("invalid UTF-8 in a cell", withRow(0, Array("1,".utf8) + [0xC3, 0x28] + Array(",2,0".utf8)), "d1.csv:2: field 2 is not valid UTF-8"),
    csvCase("an overlong UTF-8 form", withRow(1, Array("1,2,".utf8) + [0xC0, 0xB1] + Array(",1".utf8)), "d1.csv:3: field 3 is not valid UTF-8"),
    csvCase("a lone continuation byte", withHeader(Array("a,b,c,".utf8) + [0x80]), "d1.csv:1: field 4 is not valid UTF-8"),
    csvCase("an encoded surrogate", withRow(2, [0xED, 0xA0, 0x80] + Array(",1,2,0".utf8)), "d1.csv:4: field 1 is not valid UTF-8"),
    csvCase("a Latin-1 header", withHeader(Array("a,b,c".utf8) + [0xB0] + Array(",y".utf8)), "d1.csv:1: field 3 is not valid UTF-8"),
    csvCase("a binary label of 2", withRow(5, "1,1,2,2"), "column \"y\": \"2\" is not 0 or 1"),
    csvCase("a binary label of yes", withRow(5, "1,1,2,yes"), "column \"y\": \"yes\" is not a number"),
    csvCase("a binary label of 0.5", withRow(5, "1,1,2,0.5"), "\"0.5\" is not 0 or 1"),
    csvCase("an empty label", withRow(5, "1,1,2,"), "column \"y\": \"\" is not a number"),
    csvCase("device 1 has only class 0", deviceOneCSV(csv([header] + (0..<20).map { "\($0),1,2,0" })),
            "device \"d1\" (d1.csv) has only class \"0\" in its 20 rows, no class \"1\""),
    csvCase("device 2 has only class 1", validFiles.merging(["d2.csv": csv([header] + (0..<20).map { "\($0),1,2,1" })]) { $1 },
            "device \"d2\" (d2.csv) has only class \"1\" in its 20 rows, no class \"0\""),
    csvCase("every device has only class 1",
            validFiles.merging(["d1.csv": csv([header] + (0..<9).map { "\($0),1,2,1" }),
                                "d2.csv": csv([header] + (0..<9).map { "\($0),3,2,1" })]) { $1 },
            "device \"d1\" (d1.csv) has only class \"1\""),
    csvCase("a single row", deviceOneCSV(csv([header, "1,2,3,1"])), "has only class \"1\" in its 1 rows"),
    csvCase("a missing data file", validFiles.filter { $0.key != "d2.csv" }, "d2.csv: no such file"),
    csvCase("a label column the file lacks", withHeader(Array("a,b,c,label".utf8)), "d1.csv:1: unknown column \"y\""),
    csvCase("a file whose rows differ in width from the other device", deviceOneCSV(csv(["a,b,y"] + (0..<20).map { "\($0),1,\($0 % 2)" })),
            "3 inputs but d1 has 2; set pad_to"),
  ]

  static let specCases: [BadInput] = [
    specCase("an empty file", specBytes([]), "spec.json: line 1 column 1: unexpected end of file, expected a value"),
    specCase("only whitespace", spec("  \n  "), "spec.json: line 2 column 3: unexpected end of file"),
    specCase("an unclosed object", spec(#"{"devices": []"#), "line 1 column 15: unexpected end of file, expected \",\" or \"}\""),
    specCase("a trailing comma in an object", spec(#"{"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y",}]}"#),
             "spec.json: line 1 column 63: trailing comma before \"}\""),
    specCase("a trailing comma in an array", spec("{\"devices\": [\n  {\"name\": \"d1\", \"dataset\": \"d1.csv\", \"label\": \"y\"},\n]}"),
             "spec.json: line 3 column 1: trailing comma before \"]\""),
    specCase("a duplicate key in a device", spec(#"{"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y", "label": "a"}]}"#),
             "spec.json: line 1 column 64: duplicate key \"label\""),
    specCase("a duplicate key at the top", spec("{\"devices\": [],\n \"devices\": []}"), "spec.json: line 2 column 2: duplicate key \"devices\""),
    specCase("a duplicate key in splits", spec(#"{"devices": [], "splits": {"test": 0.2, "test": 0.3}}"#), "duplicate key \"test\""),
    specCase("a comment", spec("{\"devices\": [] // none\n}"), "line 1 column 16: unexpected \"/\", expected \",\" or \"}\""),
    specCase("single quotes", spec("{'devices': []}"), "line 1 column 2: unexpected \"'\", expected a key in quotes"),
    specCase("an unquoted key", spec("{devices: []}"), "unexpected \"d\", expected a key in quotes"),
    specCase("a missing colon", spec(#"{"devices" []}"#), "expected \":\" after key \"devices\""),
    specCase("NaN", oneDevice(#""model_rate": NaN"#), "unexpected \"N\", expected a value"),
    specCase("Infinity", oneDevice(#""model_rate": Infinity"#), "unexpected \"I\", expected a value"),
    specCase("a number beyond Double", oneDevice(#""pad_to": 1e400"#), "number 1e400 is out of range"),
    specCase("a leading zero", oneDevice(#""pad_to": 09"#), "a number must not start with 0"),
    specCase("a plus sign", oneDevice(#""pad_to": +9"#), "unexpected \"+\", expected a value"),
    specCase("a bare decimal point", oneDevice(#""model_rate": .5"#), "unexpected \".\", expected a value"),
    specCase("a decimal point without digits", oneDevice(#""model_rate": 1."#), "a number needs digits after \".\""),
    specCase("an empty exponent", oneDevice(#""model_rate": 1e"#), "a number needs digits in its exponent"),
    specCase("a tab inside a string", oneDevice("\"drop\": [\"a\tb\"]"), "control character 0x9 in a string"),
    specCase("a line break inside a string", oneDevice("\"drop\": [\"a\nb\"]"), "control character 0xA in a string"),
    specCase("an unknown escape", oneDevice(#""drop": ["a\x"]"#), "unknown escape"),
    specCase("a short \\u escape", oneDevice(#""drop": ["\u12"]"#), "\\u needs four hexadecimal digits"),
    specCase("a lone high surrogate", oneDevice(#""drop": ["\ud800"]"#), "high surrogate \\ud800 is not followed by a low one"),
    specCase("a lone low surrogate", oneDevice(#""drop": ["\udc00"]"#), "lone low surrogate \\udc00"),
    specCase("invalid UTF-8 in a string", specBytes(Array(#"{"devices": [{"name": "d"#.utf8) + [0xFF] + Array(#"", "dataset": "d1.csv", "label": "y"}]}"#.utf8)),
             "line 1 column 25: invalid UTF-8 (byte 0xFF)"),
    specCase("an unclosed string", spec(#"{"devices": [{"name": "d1}]}"#), "line 1 column 23: string is never closed"),
    specCase("nesting 300 levels deep", spec(String(repeating: "[", count: 300) + String(repeating: "]", count: 300)),
             "nested deeper than 256 levels"),
    specCase("text after the document", spec(validSpec + " x"), "unexpected \"x\" after the JSON value"),
    specCase("two documents", spec(validSpec + validSpec), "unexpected \"{\" after the JSON value"),
    specCase("a top-level array", spec("[1]"), "spec.json: expected an object, found an array"),
    specCase("a top-level string", spec(#""devices""#), "spec.json: expected an object, found a string"),
    specCase("an unknown top-level key", spec(#"{"devices": [], "device": []}"#), "spec.json: device: unknown key (did you mean \"devices\"?)"),
    specCase("a misspelt device key", oneDevice(#""lable": "y""#), "devices[0].lable: unknown key (did you mean \"label\"?)"),
    specCase("no devices and no partition", spec(#"{"splits": {}}"#), "spec.json: devices: missing (or give \"partition\")"),
    specCase("both devices and partition", spec(#"{"devices": [], "partition": {}}"#), "give either \"devices\" or \"partition\", not both"),
    specCase("an empty device list", spec(#"{"devices": []}"#), "spec.json: devices: needs at least one device"),
    specCase("devices as an object", spec(#"{"devices": {}}"#), "devices: expected an array, found an object"),
    specCase("a device without a name", spec(#"{"devices": [{"dataset": "d1.csv", "label": "y"}]}"#), "devices[0].name: missing"),
    specCase("a device without a dataset", spec(#"{"devices": [{"name": "d1", "label": "y"}]}"#), "devices[0].dataset: missing"),
    specCase("a device without a label", spec(#"{"devices": [{"name": "d1", "dataset": "d1.csv"}]}"#), "devices[0].label: missing"),
    specCase("a name that is a number", spec(#"{"devices": [{"name": 7, "dataset": "d1.csv", "label": "y"}]}"#),
             "devices[0].name: expected a string, found a number"),
    specCase("two devices with one name", spec(#"{"devices": [{"name": "d", "dataset": "d1.csv", "label": "y"}, {"name": "d", "dataset": "d2.csv", "label": "y"}]}"#),
             "devices[1].name: \"d\" is used by another device"),
    specCase("label and label_bits", oneDevice(#""label_bits": ["a"]"#), "give either \"label\" or \"label_bits\", not both"),
    specCase("empty label_bits", spec(#"{"devices": [{"name": "d1", "dataset": "d1.csv", "label_bits": []}]}"#), "label_bits: needs at least one column"),
    specCase("an unknown task", oneDevice(#""task": "regression""#), "devices[0].task: \"regression\" is not one of \"binary\", \"multiclass\""),
    specCase("pad_to 0", oneDevice(#""pad_to": 0"#), "devices[0].pad_to: must be between 1 and 4096, not 0"),
    specCase("pad_to negative", oneDevice(#""pad_to": -3"#), "devices[0].pad_to: must be between 1 and 4096, not -3"),
    specCase("pad_to 100000000", oneDevice(#""pad_to": 100000000"#), "devices[0].pad_to: must be between 1 and 4096, not 100000000"),
    specCase("pad_to 4097", oneDevice(#""pad_to": 4097"#), "must be between 1 and 4096, not 4097"),
    specCase("pad_to 1e15", oneDevice(#""pad_to": 1e15"#), "must be between 1 and 4096, not 1000000000000000"),
    specCase("pad_to 1e300", oneDevice(#""pad_to": 1e300"#), "devices[0].pad_to: expected an integer"),
    specCase("pad_to 2.5", oneDevice(#""pad_to": 2.5"#), "devices[0].pad_to: expected an integer, found 2.5"),
    specCase("pad_to as a string", oneDevice(#""pad_to": "9""#), "devices[0].pad_to: expected a number, found a string"),
    specCase("pad_to below the feature count", oneDevice(#""pad_to": 2"#), "d1.csv: pad_to 2 is smaller than the 3 features"),
    specCase("model_rate 0", oneDevice(#""model_rate": 0"#), "devices[0].model_rate: must be in (0, 1], not 0.0"),
    specCase("model_rate 1.5", oneDevice(#""model_rate": 1.5"#), "devices[0].model_rate: must be in (0, 1], not 1.5"),
    specCase("model_rate negative", oneDevice(#""model_rate": -0.5"#), "must be in (0, 1], not -0.5"),
    specCase("model_rate 1e308", oneDevice(#""model_rate": 1e308"#), "must be in (0, 1]"),
    specCase("flash_bytes 0", oneDevice(#""memory": {"flash_bytes": 0, "ram_bytes": 1024}"#),
             "devices[0].memory.flash_bytes: must be between 1 and 1099511627776, not 0"),
    specCase("ram_bytes 1e15", oneDevice(#""memory": {"flash_bytes": 1024, "ram_bytes": 1e15}"#),
             "devices[0].memory.ram_bytes: must be between 1 and 1099511627776, not 1000000000000000"),
    specCase("ram_bytes missing", oneDevice(#""memory": {"flash_bytes": 1024}"#), "devices[0].memory.ram_bytes: missing"),
    specCase("an unknown memory key", oneDevice(#""memory": {"flash_bytes": 1, "ram_bytes": 1, "eeprom": 2}"#), "memory.eeprom: unknown key"),
    specCase("a feature that is the label", oneDevice(#""features": ["a", "y"]"#), "column \"y\" is both a label and a feature"),
    specCase("a feature that is dropped", oneDevice(#""features": ["a", "b"], "drop": ["b"]"#), "column \"b\" is both dropped and a feature"),
    specCase("a categorical column that is not a feature", oneDevice(#""features": ["a"], "categorical": ["b"]"#),
             "categorical column \"b\" is not a feature"),
    specCase("an unknown feature column", oneDevice(#""features": ["a", "q"]"#), "d1.csv:1: unknown column \"q\""),
    specCase("every column dropped", oneDevice(#""drop": ["a", "b", "c"]"#), "d1.csv: no feature columns left"),
    specCase("a categorical column wider than 4096 inputs",
             validFiles.merging(["spec.json": Array(#"{"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y", "categorical": ["a"]}]}"#.utf8),
                                 "d1.csv": csv([header] + (0..<5000).map { "v\($0),1,2,\($0 % 2)" })]) { $1 },
             "d1.csv: 5002 inputs per row (after one-hot encoding) exceed the limit of 4096"),
    specCase("split test 0", spec(#"{"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y"}], "splits": {"test": 0}}"#),
             "splits: test must be between 0 and 1 (exclusive)"),
    specCase("split test 1.5", spec(#"{"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y"}], "splits": {"test": 1.5}}"#),
             "splits.test: must be between 0 and 1, not 1.5"),
    specCase("phases not summing to 1", spec(#"{"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y"}], "splits": {"phase1": 0.5, "phase2": 0.5, "phase3": 0.5}}"#),
             "splits: phase1 + phase2 + phase3 must be 1, not 1.5"),
    specCase("split mode blocks:1", spec(#"{"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y"}], "splits": {"mode": "blocks:1"}}"#),
             "splits.mode: \"blocks:1\" is not \"stratified\" or \"blocks:N\" with N ≥ 2"),
    specCase("an unknown split key", spec(#"{"devices": [{"name": "d1", "dataset": "d1.csv", "label": "y"}], "splits": {"train": 0.8}}"#),
             "splits.train: unknown key"),
    specCase("an unknown partition method", partition(#""method": "random", "clients": 2"#),
             "partition.method: \"random\" is not one of \"iid\", \"dirichlet\", \"pathological\""),
    specCase("a partition without clients", partition(#""method": "iid""#), "partition.clients: missing"),
    specCase("clients 0", partition(#""method": "iid", "clients": 0"#), "partition.clients: must be between 1 and 100000, not 0"),
    specCase("clients 10^12", partition(#""method": "iid", "clients": 1000000000000"#),
             "partition.clients: must be between 1 and 100000, not 1000000000000"),
    specCase("more clients than rows", partition(#""method": "iid", "clients": 41"#), "spec.json: partition: 41 clients but only 40 rows"),
    specCase("dirichlet without alpha", partition(#""method": "dirichlet", "clients": 2"#), "partition.alpha: missing (method \"dirichlet\" needs it)"),
    specCase("a negative alpha", partition(#""method": "dirichlet", "clients": 2, "alpha": -1"#), "partition.alpha: must be a positive number, not -1.0"),
    specCase("alpha with iid", partition(#""method": "iid", "clients": 2, "alpha": 1"#), "partition.alpha: only used with method \"dirichlet\""),
    specCase("a column partition with the wrong client count", partition(#""method": "column", "column": "c", "clients": 3"#),
             "column \"c\" has 5 distinct values, not 3 clients"),
    specCase("profiles for the wrong client count", partition(#""method": "iid", "clients": 2, "profiles": [{"name": "x"}]"#),
             "partition.profiles: has 1 entries for 2 clients"),
    specCase("a column partition whose clients have one class each", partition(#""method": "column", "column": "y""#),
             "spec.json: partition: device \"y=0\" has only class \"0\" in its 20 rows"),
    specCase("an unknown pretraining key", spec(validSpec.dropLast() + #", "pretraining": {"dataset": "d1.csv", "label": "y", "epochs": 3}}"#),
             "pretraining.epochs: unknown key"),
    specCase("a missing spec file", validFiles.filter { $0.key != "spec.json" }, "spec.json: no such file in"),
  ]
}
