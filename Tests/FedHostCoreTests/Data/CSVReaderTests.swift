import FedHostCore
import Foundation
import Testing

@Suite("Data: CSV reader")
struct DataCSVReaderTests {
  @Test func readsEveryQuirkOfTheRealFiles() throws {
    // BOM, CRLF, a quoted field with a comma, an escaped quote and a line break, E-notation,
    // trailing unnamed empty columns, a blank line, and no final newline.
    let text = "\u{FEFF}id,\"name\",value,,\r\n1,\"a, \"\"b\"\"\nc\",1.02E-01,,\r\n\r\n2,plain,-3e2,,"
    let table = try CSVTable(bytes: Array(text.utf8), fileName: "quirks.csv")
    #expect(table.columnNames == ["id", "name", "value"])
    #expect(table.rowCount == 2)
    #expect(try table.textColumn("name") == ["a, \"b\"\nc", "plain"])
    #expect(try table.numericColumn("value") == [0.102, -300])
    #expect(table.lineNumbers == [2, 5])
  }

  @Test func acceptsLFAndBareCR() throws {
    let lf = try CSVTable(bytes: Array("a,b\n1,2\n".utf8), fileName: "lf.csv")
    let cr = try CSVTable(bytes: Array("a,b\r1,2".utf8), fileName: "cr.csv")
    #expect(try lf.numericColumn("b") == [2])
    #expect(try cr.numericColumn("b") == [2])
  }

  @Test(arguments: [
    ("ragged.csv", "a,b\n1,2\n3\n", "ragged.csv:3: expected 2 fields, found 1"),
    ("empty.csv", "", "empty.csv:1: file is empty"),
    ("bom-only.csv", "\u{FEFF}", "bom-only.csv:1: file is empty"),
    ("header.csv", "a,b\n", "header.csv:2: no data rows after the header"),
    ("open-quote.csv", "a,b\n1,\"2\n3,4\n", "open-quote.csv:2: quoted field is never closed"),
    ("after-quote.csv", "a,b\n1,\"2\"x\n", "after-quote.csv:2: field 2: text after the closing quote"),
    ("duplicate.csv", "a,b,a\n1,2,3\n", "duplicate.csv:1: duplicate column \"a\""),
    ("unnamed.csv", "a,b,\n1,2,\n3,4,7\n", "unnamed.csv:3: column 3 has no name but holds \"7\""),
  ])
  func malformedFilesNameFileAndLine(name: String, text: String, expected: String) throws {
    let url = try DataTestSupport.write(text, to: name)
    #expect(DataTestSupport.errorMessage { _ = try CSVTable(contentsOf: url) } == expected)
  }

  @Test func nonNumericCellNamesLineAndColumn() throws {
    var lines = ["footfall,AQ,fail"] + (0..<14).map { "\($0),3,0" }
    lines.append("190,x7,1")
    let url = try DataTestSupport.write(lines.joined(separator: "\n"), to: "machine_failure.csv")
    let table = try CSVTable(contentsOf: url)
    let spec = DatasetSpec(label: .column("fail"))
    #expect(DataTestSupport.errorMessage { _ = try spec.makeDataset(from: table) }
      == "machine_failure.csv:16: column \"AQ\": \"x7\" is not a number")
  }

  @Test func emptyAndNonFiniteCellsAreNotNumbers() throws {
    let table = try CSVTable(bytes: Array("a,b\n1,\n2,nan\n".utf8), fileName: "holes.csv")
    #expect(DataTestSupport.errorMessage { _ = try table.numericColumn("b") }
      == "holes.csv:2: column \"b\": \"\" is not a number")
    let nan = try CSVTable(bytes: Array("a\nnan\n".utf8), fileName: "nan.csv")
    #expect(DataTestSupport.errorMessage { _ = try nan.numericColumn("a") } == "nan.csv:2: column \"a\": \"nan\" is not a number")
  }

  @Test func unknownColumnSuggestsTheClosestName() throws {
    let table = try CSVTable(bytes: Array("footfall,fail\n1,0\n".utf8), fileName: "m.csv")
    #expect(DataTestSupport.errorMessage { _ = try DatasetSpec(label: .column("fial")).makeDataset(from: table) }
      == "m.csv:1: unknown column \"fial\" (did you mean \"fail\"?)")
    #expect(DataTestSupport.errorMessage { _ = try table.numericColumn("zzzzzzzz") } == "m.csv:1: unknown column \"zzzzzzzz\"")
  }

  @Test func missingFileIsAnErrorNotACrash() throws {
    let directory = try DataTestSupport.temporaryDirectory()
    let message = DataTestSupport.errorMessage { _ = try CSVTable(contentsOf: directory.appendingPathComponent("gone.csv")) }
    #expect(message == "gone.csv: no such file in \(directory.path)")
  }
}
