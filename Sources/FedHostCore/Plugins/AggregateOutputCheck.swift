/// The host's check of what `aggregate` returned: `out_global` is filled with a signalling-NaN
/// sentinel before the call, so that afterwards an element the plugin never wrote is told
/// apart from one it wrote badly; weights must be finite.
enum AggregateOutputCheck {
  /// A signalling NaN (exponent all ones, quiet bit clear) that no arithmetic produces.
  static let sentinel: UInt32 = 0x7FA5_A5A5

  static func fill(_ output: ParameterVector) {
    output.pointer.withMemoryRebound(to: UInt32.self, capacity: output.count) {
      $0.update(repeating: sentinel, count: output.count)
    }
  }

  /// Throws `badOutput` naming the first element left at the sentinel or not finite.
  static func verify(_ output: ParameterVector, weights: [Double], path: String, sharesSumToOne: Bool) throws {
    if let index = output.firstNonFiniteIndex {
      let bits = output[index].bitPattern
      let problem = bits == sentinel ? "left out_global[\(index)] unwritten"
                                     : "wrote a non-finite out_global[\(index)] = \(output[index])"
      throw PluginError.badOutput(path: path, function: "aggregate", problem: problem)
    }
    if let index = weights.firstIndex(where: { !$0.isFinite }) {
      throw PluginError.badOutput(path: path, function: "aggregate",
                                  problem: "wrote a non-finite out_weights[\(index)] = \(weights[index])")
    }
    guard sharesSumToOne, !weights.isEmpty else { return }
    // ABI 1.2 defines out_weights as shares: non-negative, summing to 1.
    if let index = weights.firstIndex(where: { $0 < 0 }) {
      throw PluginError.badOutput(path: path, function: "aggregate",
                                  problem: "wrote a negative share out_weights[\(index)] = \(weights[index])")
    }
    let total = weights.reduce(0, +)
    guard abs(total - 1) <= 1e-5 || total == 0 else {
      throw PluginError.badOutput(path: path, function: "aggregate",
                                  problem: "wrote out_weights summing to \(total), not 1 (shares of the result, ABI 1.2)")
    }
  }
}
