import PluginAPI
import PluginKit

/// FedProx (Li et al. 2020). Server: exactly FedAvg (PluginKit's `FederatedAveraging`).
/// Client: the proximal term (μ/2)‖w − w_global‖² added to the local objective, i.e. the
/// gradient hook g ← g + μ (w_local − w_global), applied after every backward pass.
final class FedProxPlugin: FedHostPlugin {
  static let metadata = PluginMetadata(
    id: "org.fedhost.fedprox", name: "FedProx", version: "1.0.0",
    summary: "FedAvg on the server plus the proximal term mu/2*||w - w_global||^2 on every client "
      + "(gradient hook g += mu*(w - w_global)).",
    capabilities: [.aggregate, .adjustGradient],
    configKeys: [
      .number("mu", default: 0.01, in: 0...1e6, "proximal coefficient mu (the paper tunes it over 0.001..1)"),
    ])

  /// μ, read-only after create: `adjustGradient` runs on many threads at once.
  private let mu: Float

  init(config: PluginConfig, host: PluginHost) throws {
    mu = Float(try config.number("mu"))
  }

  func aggregate(_ round: AggregationRound) throws {
    try FederatedAveraging.aggregate(round)
  }

  func adjustGradient(clientID: UInt32, local: UnsafeBufferPointer<Float>, global: UnsafeBufferPointer<Float>,
                      gradient: UnsafeMutableBufferPointer<Float>) throws {
    guard let local = local.baseAddress, let global = global.baseAddress,
          let output = gradient.baseAddress else { return }
    let count = gradient.count
    let mus = SIMD16<Float>(repeating: mu)
    // Lanes become NaN iff some result is not finite (x − x is 0 for finite x).
    var check = SIMD16<Float>()
    var index = 0
    while index + 16 <= count {
      let offset = index * 4
      let difference = UnsafeRawPointer(local).loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
        - UnsafeRawPointer(global).loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
      let result = UnsafeRawPointer(output).loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
        .addingProduct(mus, difference)
      UnsafeMutableRawPointer(output).storeBytes(of: result, toByteOffset: offset, as: SIMD16<Float>.self)
      check += result - result
      index += 16
    }
    while index < count {
      output[index] = output[index].addingProduct(mu, local[index] - global[index])
      check[0] += output[index] - output[index]
      index += 1
    }
    guard !check.sum().isNaN else {
      throw PluginFailure.numeric("client \(clientID): the proximal gradient is not finite")
    }
  }
}

@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(
  _ major: UInt32, _ minor: UInt32,
  _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  exportPlugin(FedProxPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
}
