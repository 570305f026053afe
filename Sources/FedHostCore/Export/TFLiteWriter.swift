/// Serializes a `QuantizedMLP` as a TFLite flatbuffer (schema version 3,
/// tensorflow/lite/schema/schema.fbs) that LiteRT and TFLite Micro load as is.
///
/// The graph is the one TFLite's converter makes for a full-integer Keras MLP: an int8 input, one
/// FULLY_CONNECTED per layer (int8 weights `[units, inputs]`, int32 bias, ReLU fused into hidden
/// layers), then LOGISTIC (one output) or SOFTMAX, with an int8 output at scale 1/256, zero point
/// −128. Buffer 0 is the empty sentinel; activations use it. The builder shares identical vectors,
/// so the all-zero int64 zero-point vectors the schema demands cost bytes once per channel count.
public enum TFLiteWriter {
  /// Field ids and enum values from schema.fbs.
  enum Schema {
    static let version: UInt32 = 3
    static let fileIdentifier = "TFL3"
    enum TensorType { static let int32: Int8 = 2, int8: Int8 = 9 }
    enum BuiltinOperator { static let fullyConnected: Int32 = 9, logistic: Int32 = 14, softmax: Int32 = 25 }
    enum BuiltinOptions { static let fullyConnected: UInt8 = 8, softmax: UInt8 = 9 }
    enum Activation { static let none: Int8 = 0, relu: Int8 = 1 }
  }

  /// The SignatureDef's key and tensor names (the converter's default key).
  public static let signatureKey = "serving_default", signatureInput = "input", signatureOutput = "probabilities"

  /// The TFLite Micro `MicroMutableOpResolver` calls a model needs, one per distinct operator, in
  /// the file's operator-code order.
  public static func resolverCalls(for model: QuantizedMLP) -> [String] {
    var writer = GraphWriter(model: model)
    writer.plan()
    return writer.operatorCodes.map { code in
      switch code.builtin {
      case Schema.BuiltinOperator.fullyConnected: "AddFullyConnected()"
      case Schema.BuiltinOperator.logistic: "AddLogistic()"
      default: "AddSoftmax()"
      }
    }
  }

  /// The flatbuffer's bytes. `description` goes into the model's description string.
  public static func flatbuffer(for model: QuantizedMLP, description: String) -> [UInt8] {
    var builder = FlatBufferBuilder()
    var writer = GraphWriter(model: model)
    writer.plan()

    // Buffers first: the bulk of the file, placed at its end, each 16-byte aligned.
    let buffers = writer.bufferContents.map { contents -> FlatBufferBuilder.Offset in
      let data = contents.map { builder.vector($0, alignment: 16) }
      builder.startTable()
      if let data { builder.add(0, data) }
      return builder.endTable()
    }
    let tensors = writer.tensors.map { tensor -> FlatBufferBuilder.Offset in
      let shape = builder.vector(tensor.shape.map(Int32.init))
      let name = builder.string(tensor.name)
      let scales = builder.vector(tensor.scales)
      let zeroPoints = builder.vector(tensor.zeroPoints)
      // quantized_dimension stays at its default 0: the output units, dimension 0 of the weights.
      builder.startTable()  // QuantizationParameters
      builder.add(2, scales)
      builder.add(3, zeroPoints)
      let quantization = builder.endTable()
      builder.startTable()  // Tensor
      builder.add(0, shape)
      builder.add(2, UInt32(tensor.buffer))
      builder.add(3, name)
      builder.add(4, quantization)
      builder.add(1, tensor.type)
      return builder.endTable()
    }
    let operators = writer.operators.map { op -> FlatBufferBuilder.Offset in
      let inputs = builder.vector(op.inputs.map(Int32.init))
      let outputs = builder.vector(op.outputs.map(Int32.init))
      var options: (type: UInt8, table: FlatBufferBuilder.Offset)?
      switch op.kind {
      case .fullyConnected(let relu):
        builder.startTable()  // FullyConnectedOptions
        builder.add(0, relu ? Schema.Activation.relu : Schema.Activation.none)
        options = (Schema.BuiltinOptions.fullyConnected, builder.endTable())
      case .softmax:
        builder.startTable()  // SoftmaxOptions
        builder.add(0, Float(1))  // beta
        options = (Schema.BuiltinOptions.softmax, builder.endTable())
      case .logistic:
        options = nil
      }
      builder.startTable()  // Operator
      builder.add(1, inputs)
      builder.add(2, outputs)
      if let options { builder.add(4, options.table) }
      builder.add(0, UInt32(op.opcodeIndex))
      if let options { builder.add(3, options.type) }
      return builder.endTable()
    }
    let operatorCodes = writer.operatorCodes.map { code -> FlatBufferBuilder.Offset in
      builder.startTable()  // OperatorCode: builtin_code, version, deprecated_builtin_code
      builder.add(3, code.builtin)
      builder.add(2, code.version, default: 1)
      builder.add(0, Int8(code.builtin))
      return builder.endTable()
    }

    let tensorVector = builder.vector(tensors)
    let inputs = builder.vector([Int32(writer.inputTensor)])
    let outputs = builder.vector([Int32(writer.outputTensor)])
    let operatorVector = builder.vector(operators)
    let subgraphName = builder.string("main")
    builder.startTable()  // SubGraph
    builder.add(0, tensorVector)
    builder.add(1, inputs)
    builder.add(2, outputs)
    builder.add(3, operatorVector)
    builder.add(4, subgraphName)
    let subgraph = builder.endTable()

    let operatorCodeVector = builder.vector(operatorCodes)
    let subgraphs = builder.vector([subgraph])
    let descriptionString = builder.string(description)
    let bufferVector = builder.vector(buffers)
    // One SignatureDef, as TFLite's converter writes for a Keras model, so that
    // `get_signature_runner()` and signature-based loaders find the input and output by name.
    let signatureMaps = [(TFLiteWriter.signatureInput, writer.inputTensor), (TFLiteWriter.signatureOutput, writer.outputTensor)]
      .map { name, tensor -> FlatBufferBuilder.Offset in
        let nameString = builder.string(name)
        builder.startTable()  // TensorMap
        builder.add(0, nameString)
        builder.add(1, UInt32(tensor))
        return builder.endTable()
      }
    let signatureInputs = builder.vector([signatureMaps[0]])
    let signatureOutputs = builder.vector([signatureMaps[1]])
    let signatureKey = builder.string(TFLiteWriter.signatureKey)
    builder.startTable()  // SignatureDef; subgraph_index stays at its default 0
    builder.add(0, signatureInputs)
    builder.add(1, signatureOutputs)
    builder.add(2, signatureKey)
    let signature = builder.endTable()
    let signatures = builder.vector([signature])
    builder.startTable()  // Model
    builder.add(0, Schema.version)
    builder.add(1, operatorCodeVector)
    builder.add(2, subgraphs)
    builder.add(3, descriptionString)
    builder.add(4, bufferVector)
    builder.add(7, signatures)
    let root = builder.endTable()
    return builder.finish(root: root, fileIdentifier: Schema.fileIdentifier)
  }
}

/// The graph as plain values, in the order the flatbuffer lists them.
private struct GraphWriter {
  struct Tensor {
    var name: String
    var shape: [Int]
    var type: Int8
    var buffer: Int
    var scales: [Float]
    var zeroPoints: [Int64]
  }

  enum OperatorKind {
    case fullyConnected(relu: Bool)
    case logistic
    case softmax
  }

  struct Operator {
    var kind: OperatorKind
    var opcodeIndex: Int
    var inputs: [Int]
    var outputs: [Int]
  }

  struct OperatorCode {
    var builtin: Int32
    var version: Int32
  }

  let model: QuantizedMLP
  var tensors: [Tensor] = []
  var operators: [Operator] = []
  var operatorCodes: [OperatorCode] = []
  /// Buffer contents by index; nil is an empty buffer (index 0, the sentinel).
  var bufferContents: [[UInt8]?] = [nil]
  var inputTensor = 0
  var outputTensor = 0

  init(model: QuantizedMLP) { self.model = model }

  mutating func plan() {
    let head: OperatorCode = model.head == .logistic
      ? OperatorCode(builtin: TFLiteWriter.Schema.BuiltinOperator.logistic, version: 2)
      : OperatorCode(builtin: TFLiteWriter.Schema.BuiltinOperator.softmax, version: 2)
    // Version 4: int8 FULLY_CONNECTED, as TFLite's converter marks it.
    operatorCodes = [OperatorCode(builtin: TFLiteWriter.Schema.BuiltinOperator.fullyConnected, version: 4), head]

    let int8 = TFLiteWriter.Schema.TensorType.int8
    inputTensor = add(Tensor(name: "input", shape: [1, model.architecture.inputWidth], type: int8, buffer: 0,
                             scales: [model.input.scale], zeroPoints: [Int64(model.input.zeroPoint)]))
    var current = inputTensor
    for (index, layer) in model.layers.enumerated() {
      let name = "fc\(index + 1)"
      let channelCount = layer.weightScales.count
      let weights = add(Tensor(
        name: name + ".w", shape: [layer.outputWidth, layer.inputWidth], type: int8,
        buffer: addBuffer(layer.weights.map { UInt8(bitPattern: $0) }), scales: layer.weightScales,
        zeroPoints: [Int64](repeating: 0, count: channelCount)))
      let biasBytes = layer.biases.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
      let biases = add(Tensor(
        name: name + ".b", shape: [layer.outputWidth], type: TFLiteWriter.Schema.TensorType.int32,
        buffer: addBuffer(biasBytes), scales: layer.weightScales.map { layer.input.scale * $0 },
        zeroPoints: [Int64](repeating: 0, count: channelCount)))
      let isLast = index == model.layers.count - 1
      let output = add(Tensor(
        name: isLast ? "logits" : name, shape: [1, layer.outputWidth], type: int8, buffer: 0,
        scales: [layer.output.scale], zeroPoints: [Int64(layer.output.zeroPoint)]))
      operators.append(Operator(kind: .fullyConnected(relu: layer.fusedRelu), opcodeIndex: 0,
                                inputs: [current, weights, biases], outputs: [output]))
      current = output
    }
    outputTensor = add(Tensor(name: "probabilities", shape: [1, model.architecture.outputWidth], type: int8,
                              buffer: 0, scales: [model.output.scale], zeroPoints: [Int64(model.output.zeroPoint)]))
    operators.append(Operator(kind: model.head == .logistic ? .logistic : .softmax, opcodeIndex: 1,
                              inputs: [current], outputs: [outputTensor]))
  }

  private mutating func add(_ tensor: Tensor) -> Int {
    tensors.append(tensor)
    return tensors.count - 1
  }

  private mutating func addBuffer(_ bytes: [UInt8]) -> Int {
    bufferContents.append(bytes)
    return bufferContents.count - 1
  }
}
