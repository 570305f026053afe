/// How to turn a table into labelled samples: which column(s) hold the label, which are
/// features, which to drop, which to one-hot encode, and how wide the input must be.
public struct DatasetSpec: Sendable, Equatable {
  /// Where the class comes from.
  public enum Label: Sendable, Equatable {
    /// One column. Binary tasks need 0/1 values; multi-class tasks use each distinct value (number or
    /// text) as a class, numbers first in numeric order, then text in sorted order.
    case column(String)
    /// Several 0/1 columns read together as one bit pattern (e.g. `G,C,B,A` → "1001"). A binary
    /// task maps the all-zero pattern to 0 and any other to 1.
    case bits([String])
  }

  /// Binary (one sigmoid output) or multi-class (softmax over the classes present).
  public enum Task: String, Sendable, Equatable {
    case binary, multiclass
  }

  public var label: Label
  public var task: Task
  /// Feature columns in input order; nil means every column that is not a label or dropped, in file order.
  public var features: [String]?
  /// Columns to ignore (identifiers such as `UDI`, or leaky flags such as AI4I's failure modes).
  public var drop: [String]
  /// Text columns to one-hot encode, one input per category in sorted order (`Type=H`, `Type=L`, `Type=M`).
  public var categorical: [String]
  /// Zero-pad the input to this width (the paper pads the electrical device's 6 features to 9).
  public var padTo: Int?
  /// The full class list of a multi-class task, in class-index order: a device whose file misses
  /// some class still numbers the others as every other device does. nil: the classes found.
  public var classes: [String]?

  /// `task` defaults to binary for a label column and multi-class for label bits.
  public init(label: Label, task: Task? = nil, features: [String]? = nil, drop: [String] = [],
              categorical: [String] = [], padTo: Int? = nil, classes: [String]? = nil) {
    self.label = label
    self.classes = classes
    if let task {
      self.task = task
    } else if case .bits = label {
      self.task = .multiclass
    } else {
      self.task = .binary
    }
    self.features = features
    self.drop = drop
    self.categorical = categorical
    self.padTo = padTo
  }

  /// The label, feature and padding layout applied to `table`. Row `r` of the result is row `r`
  /// of the table: nothing is reordered or de-duplicated.
  public func makeDataset(from table: CSVTable) throws -> LabelledDataset {
    let file = table.fileName
    let labelColumns: [String]
    switch label {
    case .column(let name): labelColumns = [name]
    case .bits(let names): labelColumns = names
    }
    for name in labelColumns + drop + categorical + (features ?? []) { _ = try table.columnIndex(name) }

    let featureColumns = features ?? table.columnNames.filter { !labelColumns.contains($0) && !drop.contains($0) }
    for name in featureColumns {
      if labelColumns.contains(name) { throw DataError(file: file, "column \"\(name)\" is both a label and a feature") }
      if drop.contains(name) { throw DataError(file: file, "column \"\(name)\" is both dropped and a feature") }
    }
    for name in categorical where !featureColumns.contains(name) {
      throw DataError(file: file, "categorical column \"\(name)\" is not a feature")
    }
    guard !featureColumns.isEmpty else { throw DataError(file: file, "no feature columns left") }

    let (labels, classNames) = try makeLabels(table, labelColumns)

    // Each feature column becomes one input, or one input per category.
    var inputs = [(name: String, values: [Double])]()
    for name in featureColumns {
      if categorical.contains(name) {
        let cells = try table.textColumn(name)
        for category in Set(cells).sorted() {
          inputs.append(("\(name)=\(category)", cells.map { $0 == category ? 1 : 0 }))
        }
      } else {
        inputs.append((name, try table.numericColumn(name)))
      }
    }
    let width = padTo ?? inputs.count
    guard width >= inputs.count else {
      throw DataError(file: file, "pad_to \(width) is smaller than the \(inputs.count) features")
    }

    guard width <= InputLimits.inputWidth else {
      throw DataError(file: file, "\(width) inputs per row (after one-hot encoding) exceed the limit of \(InputLimits.inputWidth)")
    }
    let rows = table.rowCount
    guard rows <= InputLimits.featureValues / width else {
      throw DataError(file: file, "\(rows) rows × \(width) inputs exceed the limit of \(InputLimits.featureValues) feature values")
    }
    var features = [Float](repeating: 0, count: rows * width)
    for (column, input) in inputs.enumerated() {
      for row in 0..<rows { features[row * width + column] = Float(input.values[row]) }
    }
    let padding = width - inputs.count
    let names = inputs.map(\.name) + (0..<padding).map { "pad\($0 + 1)" }
    return LabelledDataset(name: file, samples: Samples(features: features, labels: labels, width: width),
                           featureNames: names, classNames: classNames, task: task, paddingWidth: padding)
  }

  private func makeLabels(_ table: CSVTable, _ columns: [String]) throws -> ([Int32], [String]) {
    let isBits: Bool
    if case .bits = label { isBits = true } else { isBits = false }
    if !isBits && task == .multiclass {
      // Any values name classes here, numbers or text ("LG", "LLL"); numbers are canonicalized.
      let keys = try table.textColumn(columns[0]).map { cell in CSVTable.number(cell).map(Self.canonical) ?? cell }
      return try numbered(keys, table) { a, b in
        switch (Double(a), Double(b)) {
        case let (x?, y?): x < y
        case (.some, nil): true
        case (nil, .some): false
        case (nil, nil): a < b
        }
      }
    }
    // 0/1 columns: each row's key is its bit pattern (one bit for a binary label column).
    var keys = [String](repeating: "", count: table.rowCount)
    for name in columns {
      for (row, value) in try table.numericColumn(name).enumerated() {
        guard value == 0 || value == 1 else {
          throw DataError(file: table.fileName, line: table.lineNumbers[row],
                          "column \"\(name)\": \"\(try table.textColumn(name)[row])\" is not 0 or 1")
        }
        keys[row] += value == 1 ? "1" : "0"
      }
    }
    if task == .binary {
      return (keys.map { $0.contains("1") ? 1 : 0 }, isBits ? ["none", "any"] : ["0", "1"])
    }
    return try numbered(keys, table, by: <)
  }

  /// Class indices for `keys`, the classes sorted by `areInIncreasingOrder` so that the numbering
  /// never depends on row order.
  private func numbered(_ keys: [String], _ table: CSVTable,
                        by areInIncreasingOrder: (String, String) -> Bool) throws -> ([Int32], [String]) {
    let classNames = classes ?? Set(keys).sorted(by: areInIncreasingOrder)
    let index = Dictionary(classNames.enumerated().map { ($1, Int32($0)) }, uniquingKeysWith: { first, _ in first })
    return (try keys.enumerated().map { row, key in
      guard let label = index[key] else {
        throw DataError(file: table.fileName, line: table.lineNumbers[row],
                        "class \"\(key)\" is not in the spec's classes \(classNames)")
      }
      return label
    }, classNames)
  }

  /// "2" for 2.0, so that "2" and "2.0" in one column are the same class.
  private static func canonical(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
  }
}

/// Labelled samples with the names that explain them.
public struct LabelledDataset: Sendable, Equatable {
  /// Where the samples came from (a file name, or a generator's name).
  public var name: String
  public var samples: Samples
  /// One name per input column; one-hot inputs read `Type=L`, padding columns `pad1`, `pad2`, ….
  public var featureNames: [String]
  /// One name per class index: "0"/"1" for a binary column, "none"/"any" for binary label bits,
  /// the bit patterns ("0000", "0110", …) or column values for multi-class tasks.
  public var classNames: [String]
  public var task: DatasetSpec.Task
  /// How many trailing input columns are zero padding.
  public var paddingWidth: Int

  public init(name: String, samples: Samples, featureNames: [String], classNames: [String],
              task: DatasetSpec.Task, paddingWidth: Int) {
    precondition(featureNames.count == samples.width, "one feature name per input column")
    self.name = name
    self.samples = samples
    self.featureNames = featureNames
    self.classNames = classNames
    self.task = task
    self.paddingWidth = paddingWidth
  }

  /// Rows per class index.
  public var classCounts: [Int] { samples.classCounts(classCount: classNames.count) }

  /// The same description restricted to `rows` (used by partitioners).
  public func subset(_ rows: [Int], name: String) -> LabelledDataset {
    LabelledDataset(name: name, samples: samples.subset(rows), featureNames: featureNames,
                    classNames: classNames, task: task, paddingWidth: paddingWidth)
  }
}
