import Foundation

/// A comma-separated table as text cells, column by column, with the file line each row came from.
///
/// Reads the real files' quirks: a UTF-8 byte-order mark, CRLF or LF (or CR) line ends, quoted
/// fields (with `""` escapes and embedded line breaks), a missing final newline, blank lines, and
/// trailing unnamed columns that are empty in every row (`Ia,…,Vc,,`), which are dropped.
/// Every problem is a `DataError` naming the file and line; reading never traps. Text must be
/// UTF-8 without NUL bytes: a NUL would end the number early in `strtod` (`1\0junk` read as 1),
/// and invalid UTF-8 would turn into U+FFFD and silently rename a column.
public struct CSVTable: Sendable, Equatable {
  /// The file name used in error messages.
  public let fileName: String
  /// Header names, surrounding spaces removed, in file order.
  public let columnNames: [String]
  /// `columns[c][r]` is the text of row `r` in column `c`.
  public let columns: [[String]]
  /// `lineNumbers[r]` is the 1-based file line on which data row `r` starts (the header is line 1).
  public let lineNumbers: [Int]

  public var rowCount: Int { lineNumbers.count }

  /// A table built in memory (generators use this to share the dataset-description code path).
  public init(fileName: String, columnNames: [String], columns: [[String]]) {
    precondition(columnNames.count == columns.count, "one column of cells per name")
    let rows = columns.first?.count ?? 0
    precondition(columns.allSatisfy { $0.count == rows }, "columns must have equal length")
    self.fileName = fileName
    self.columnNames = columnNames
    self.columns = columns
    lineNumbers = Array(2..<(2 + rows))
  }

  /// Reads and parses the file at `url`; errors name the file by its last path component.
  public init(contentsOf url: URL) throws {
    let name = url.lastPathComponent
    guard FileManager.default.fileExists(atPath: url.path) else {
      throw DataError(file: name, "no such file in \(url.deletingLastPathComponent().path)")
    }
    let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
    guard size <= InputLimits.csvBytes else {
      throw DataError(file: name, "\(size) bytes exceed the limit of \(InputLimits.csvBytes) bytes for one CSV file")
    }
    let bytes: Data
    do {
      bytes = try Data(contentsOf: url)
    } catch {
      throw DataError(file: name, "cannot read file (\(Self.oneLine(error.localizedDescription)))")
    }
    try self.init(bytes: [UInt8](bytes), fileName: name)
  }

  /// Parses CSV text held in memory.
  public init(bytes: [UInt8], fileName: String) throws {
    var records = try Self.records(of: bytes, fileName: fileName)
    guard !records.isEmpty else { throw DataError(file: fileName, line: 1, "file is empty") }
    let header = records.removeFirst()
    let names = header.fields.map { $0.trimmingCharacters(in: .whitespaces) }
    guard !records.isEmpty else {
      throw DataError(file: fileName, line: header.line + 1, "no data rows after the header")
    }

    var cells = [[String]](repeating: [], count: names.count)
    for column in cells.indices { cells[column].reserveCapacity(records.count) }
    for record in records {
      guard record.fields.count == names.count else {
        throw DataError(file: fileName, line: record.line,
                        "expected \(names.count) fields, found \(record.fields.count)")
      }
      for (column, field) in record.fields.enumerated() { cells[column].append(field) }
    }
    let lines = records.map(\.line)

    // Unnamed columns are padding from trailing commas if every cell is empty; otherwise the
    // file has data nobody can refer to, which is an error rather than something to guess about.
    var keptNames = [String]()
    var keptColumns = [[String]]()
    for (column, name) in names.enumerated() {
      if name.isEmpty {
        if let row = cells[column].firstIndex(where: { !$0.isEmpty }) {
          throw DataError(file: fileName, line: lines[row],
                          "column \(column + 1) has no name but holds \"\(cells[column][row])\"")
        }
        continue
      }
      if keptNames.contains(name) {
        throw DataError(file: fileName, line: header.line, "duplicate column \"\(name)\"")
      }
      keptNames.append(name)
      keptColumns.append(cells[column])
    }
    guard !keptNames.isEmpty else {
      throw DataError(file: fileName, line: header.line, "header names no columns")
    }
    self.fileName = fileName
    columnNames = keptNames
    columns = keptColumns
    lineNumbers = lines
  }

  /// The index of column `name`; an unknown name is an error pointing at the header.
  public func columnIndex(_ name: String) throws -> Int {
    if let index = columnNames.firstIndex(of: name) { return index }
    var message = "unknown column \"\(name)\""
    if let guess = closestName(to: name, in: columnNames) { message += " (did you mean \"\(guess)\"?)" }
    throw DataError(file: fileName, line: 1, message)
  }

  /// The text cells of column `name`.
  public func textColumn(_ name: String) throws -> [String] { columns[try columnIndex(name)] }

  /// Column `name` parsed as finite numbers (E-notation and surrounding spaces allowed).
  public func numericColumn(_ name: String) throws -> [Double] {
    let cells = columns[try columnIndex(name)]
    var values = [Double]()
    values.reserveCapacity(cells.count)
    for (row, cell) in cells.enumerated() {
      guard let value = Self.number(cell) else {
        throw DataError(file: fileName, line: lineNumbers[row],
                        "column \"\(name)\": \"\(cell)\" is not a number")
      }
      values.append(value)
    }
    return values
  }

  /// A finite number, or nil. `Double(_:)` already rejects "", "1,5" and "x7"; NaN and infinities
  /// are rejected as well because no sensor column may hold them.
  static func number(_ cell: String) -> Double? {
    var value = Double(cell)
    if value == nil {
      let trimmed = cell.trimmingCharacters(in: .whitespaces)
      if trimmed.count != cell.count { value = Double(trimmed) }
    }
    guard let value, value.isFinite else { return nil }
    return value
  }

  private static func oneLine(_ text: String) -> String {
    text.split(whereSeparator: \.isNewline).joined(separator: " ")
  }

  /// One parsed record and the line it starts on.
  private struct Record {
    var fields: [String]
    var line: Int
  }

  private static let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","),
    newline = UInt8(ascii: "\n"), carriageReturn = UInt8(ascii: "\r")

  /// Splits the bytes into records (RFC 4180 plus CR/LF/CRLF line ends and a leading BOM).
  /// Lines that are entirely empty are skipped.
  private static func records(of bytes: [UInt8], fileName: String) throws -> [Record] {
    try bytes.withUnsafeBufferPointer { buffer -> [Record] in
      var position = 0
      let end = buffer.count
      if end >= 3, buffer[0] == 0xEF, buffer[1] == 0xBB, buffer[2] == 0xBF { position = 3 }
      var records = [Record]()
      var fields = [String]()
      var line = 1
      var recordLine = 1

      // The field's text, or a DataError if it holds a NUL byte or is not valid UTF-8.
      func text<Bytes: Collection<UInt8>>(_ field: Bytes) throws -> String {
        if field.contains(0) {
          throw DataError(file: fileName, line: line, "field \(fields.count + 1) holds a NUL byte")
        }
        guard let text = String(validating: field, as: UTF8.self) else {
          throw DataError(file: fileName, line: line, "field \(fields.count + 1) is not valid UTF-8")
        }
        return text
      }
      // Consumes a line end at `position` if there is one; returns whether it did.
      func consumeLineEnd() -> Bool {
        guard position < end else { return false }
        if buffer[position] == carriageReturn {
          position += 1
          if position < end, buffer[position] == newline { position += 1 }
        } else if buffer[position] == newline {
          position += 1
        } else {
          return false
        }
        line += 1
        return true
      }

      while position < end {
        recordLine = line
        fields.removeAll(keepingCapacity: true)
        var atRecordEnd = false
        while !atRecordEnd {
          if position < end, buffer[position] == quote {
            let openedOn = line
            position += 1
            var value = [UInt8]()
            var closed = false
            while position < end {
              let byte = buffer[position]
              if byte == quote {
                if position + 1 < end, buffer[position + 1] == quote {
                  value.append(quote)
                  position += 2
                  continue
                }
                position += 1
                closed = true
                break
              }
              if byte == newline || (byte == carriageReturn && !(position + 1 < end && buffer[position + 1] == newline)) {
                line += 1
              }
              value.append(byte)
              position += 1
            }
            guard closed else {
              throw DataError(file: fileName, line: openedOn, "quoted field is never closed")
            }
            fields.append(try text(value))
            guard position >= end || buffer[position] == comma || buffer[position] == newline
              || buffer[position] == carriageReturn
            else {
              throw DataError(file: fileName, line: line,
                              "field \(fields.count): text after the closing quote")
            }
          } else {
            let start = position
            while position < end, buffer[position] != comma, buffer[position] != newline,
              buffer[position] != carriageReturn
            {
              position += 1
            }
            fields.append(try text(UnsafeBufferPointer(rebasing: buffer[start..<position])))
          }
          if position < end, buffer[position] == comma {
            position += 1  // a comma as the very last byte opens one more, empty, field
          } else {
            _ = consumeLineEnd()
            atRecordEnd = true
          }
        }
        let isBlankLine = fields.count == 1 && fields[0].isEmpty
        if !isBlankLine { records.append(Record(fields: fields, line: recordLine)) }
      }
      return records
    }
  }
}
