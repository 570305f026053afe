/// What an int8 model costs on a microcontroller running TFLite Micro: flash for the flatbuffer,
/// RAM for the tensor arena.
///
/// TFLite Micro's arena holds the activations at its head and the interpreter's bookkeeping at its
/// tail. For a chain of layers the planner needs, at the busiest op, that op's input and output at
/// once, so the head is the largest such pair (each buffer 16-byte aligned, the model's input and
/// output included). The tail is estimated from the allocations TFLite Micro records (24 bytes per
/// eval tensor, 64 per node, the two persistent I/O tensors, op data and, with per-channel weights,
/// a multiplier and a shift per output unit), plus a margin for allocator alignment; the end-to-end
/// test checks the estimate against TFLite Micro's own count (paper model: 7,328 B per-channel,
/// 3,200 B per-tensor).
public struct DeviceFootprint: Sendable, Equatable, CustomStringConvertible {
  /// The flatbuffer's size: what a device stores in flash.
  public let flashBytes: Int
  /// The largest pair of simultaneously live activation buffers (the arena's head).
  public let activationBytes: Int
  /// A tensor arena size that fits the model with TFLite Micro: activations plus bookkeeping.
  public let arenaBytes: Int

  public init(model: QuantizedMLP, flatbufferSize: Int) {
    flashBytes = flatbufferSize
    let widths = model.architecture.widths
    let alignedWidths = widths.map(Self.aligned)
    // The FC ops pair each width with the next; the head op maps the logits to the probabilities.
    let pairs = zip(alignedWidths, alignedWidths.dropFirst()).map(+) + [2 * alignedWidths.last!]
    activationBytes = pairs.max()!
    let layerCount = model.layers.count
    let tensorCount = 1 + 3 * layerCount + 1
    let operatorCount = layerCount + 1
    // Per-channel weights make TFLite Micro keep a multiplier and a shift per output unit.
    let channelCount = model.granularity == .perChannel ? widths.dropFirst().reduce(0, +) : 0
    let bookkeeping = 24 * tensorCount + 64 * operatorCount + 2 * 64 + 64 + 96 * layerCount + 8 * channelCount
      + (model.head == .logistic ? 256 : 2 * 1024)  // the head's tables
    arenaBytes = Self.aligned(activationBytes + bookkeeping + Self.allocatorMargin)
  }

  /// The footprint of `architecture`'s int8 model at `granularity`: exact flash (the file's size
  /// depends only on the shapes) and the arena estimate.
  public init(architecture: MLPArchitecture, granularity: WeightGranularity, description: String = "") {
    let model = QuantizedMLP.shapeOnly(architecture, granularity: granularity)
    self.init(model: model, flatbufferSize: TFLiteWriter.flatbuffer(for: model, description: description).count)
  }

  public func fits(_ budget: MemoryBudget) -> Bool {
    flashBytes <= budget.flashBytes && arenaBytes <= budget.ramBytes
  }

  public var description: String {
    "flash \(flashBytes) B, arena \(arenaBytes) B (activations \(activationBytes) B)"
  }

  /// Headroom for the arena allocator's alignment and per-allocation overhead.
  public static let allocatorMargin = 1024

  private static func aligned(_ bytes: Int) -> Int { (bytes + 15) / 16 * 16 }

  /// The largest HeteroFL width rate, in steps of `step` from 1 down, whose int8 sub-model
  /// (`MLPArchitecture.scaled(rate:)`) fits `budget`; nil when even the smallest does not.
  public static func largestRate(for architecture: MLPArchitecture, budget: MemoryBudget,
                                 granularity: WeightGranularity = .perChannel,
                                 step: Double = 0.01) throws -> (rate: Double, footprint: DeviceFootprint)? {
    let steps = Int((1 / step).rounded())
    // Footprints only grow with the rate, so a binary search over the steps finds the largest fit.
    func footprint(_ index: Int) throws -> (Double, DeviceFootprint) {
      let rate = Double(index) / Double(steps)
      return (rate, DeviceFootprint(architecture: try architecture.scaled(rate: rate), granularity: granularity))
    }
    guard try footprint(1).1.fits(budget) else { return nil }
    var low = 1
    var high = steps
    while low < high {
      let middle = (low + high + 1) / 2
      if try footprint(middle).1.fits(budget) { low = middle } else { high = middle - 1 }
    }
    return try footprint(low)
  }
}
