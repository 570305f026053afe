import FedHostCore
import Testing

@Suite("FedProx plugin")
struct FedProxPluginTests {
  private func adjusted(_ prox: PluginInstance, local: [Float], global: [Float], gradient: [Float]) throws -> [Float] {
    var gradient = gradient
    try local.withUnsafeBufferPointer { localBuffer in
      try global.withUnsafeBufferPointer { globalBuffer in
        try gradient.withUnsafeMutableBufferPointer { gradientBuffer in
          try prox.adjustGradient(clientID: 0, local: localBuffer.baseAddress!, global: globalBuffer.baseAddress!,
                                  gradient: gradientBuffer.baseAddress!, count: gradientBuffer.count)
        }
      }
    }
    return gradient
  }

  @Test func describesItself() throws {
    let descriptor = try PluginFixture.library("FedProx").descriptor
    #expect(descriptor.id == "org.fedhost.fedprox")
    #expect(descriptor.kinds == [.aggregator, .clientHook])
    #expect(descriptor.configKeys.first { $0.key == "mu" }?.defaultJSON == "0.01")
  }

  @Test func proximalTermByHand() throws {
    let prox = try PluginFixture.instance("FedProx", #"{"mu": 0.5}"#)
    // g + μ(w − w_g) = [0.25 + 0.5·(1−0), 0.5 + 0.5·(2−2), −1 + 0.5·(3−5)] = [0.75, 0.5, −2]
    #expect(try adjusted(prox, local: [1, 2, 3], global: [0, 2, 5], gradient: [0.25, 0.5, -1]) == [0.75, 0.5, -2])
  }

  @Test func defaultMuOnALongVector() throws {
    let prox = try PluginFixture.instance("FedProx")
    var random = TestRandom(seed: 3)
    let count = 37  // two SIMD blocks and a tail
    let local = random.vector(count), global = random.vector(count), gradient = random.vector(count)
    let result = try adjusted(prox, local: local, global: global, gradient: gradient)
    expectClose(result, (0..<count).map { Double(gradient[$0]) + 0.01 * (Double(local[$0]) - Double(global[$0])) })
  }

  @Test func serverStepIsFedAvg() throws {
    var random = TestRandom(seed: 5)
    let global = random.vector(300)
    let updates = (0..<4).map { PluginFixture.update(UInt32($0), random.vector(300), samples: UInt64($0 + 1)) }
    let prox = try PluginFixture.aggregate(try PluginFixture.instance("FedProx"), global: global, updates)
    let fedAvg = try PluginFixture.aggregate(try PluginFixture.instance("FedAvg"), global: global, updates)
    #expect(prox.global == fedAvg.global)
    #expect(prox.weights == fedAvg.weights)
  }

  @Test func nonFiniteGradientIsAnError() throws {
    let prox = try PluginFixture.instance("FedProx", #"{"mu": 1}"#)
    let text = PluginFixture.errorText { _ = try adjusted(prox, local: [.infinity], global: [0], gradient: [0]) }
    #expect(text?.contains("FHP_E_NUMERIC") == true)
  }

  @Test func configIsStrict() throws {
    let library = try PluginFixture.library("FedProx")
    let unknown = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"proximal_mu": 1}"#) }
    #expect(unknown?.contains(#"unknown config key "proximal_mu" (accepted: seed, mu)"#) == true)
    let wrongType = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"mu": true}"#) }
    #expect(wrongType?.contains(#"config key "mu" must be a number; got true"#) == true)
    let negative = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"mu": -0.1}"#) }
    #expect(negative?.contains(#"config key "mu" must be in [0.0, 1000000.0]; got -0.1"#) == true)
  }
}
