import FedHostCore
import PluginAPI
import Testing

@Suite("FedAvg plugin")
struct FedAvgPluginTests {
  @Test func describesItself() throws {
    let descriptor = try PluginFixture.library("FedAvg").descriptor
    #expect(descriptor.id == "org.fedhost.fedavg")
    #expect(descriptor.kinds == .aggregator)
    #expect(descriptor.configKeys.map(\.key) == ["seed"])
  }

  @Test func sampleWeightedMeanByHand() throws {
    let fedAvg = try PluginFixture.instance("FedAvg")
    // p = [1, 3] / 4 = [0.25, 0.75]
    // e0: 1 + 0.25·1    + 0.75·3 = 3.5
    // e1: 2 + 0.25·0    + 0.75·6 = 6.5
    // e2: 3 + 0.25·(−2) + 0.75·2 = 4
    // e3: 4 + 0.25·4    + 0.75·0 = 5
    let result = try PluginFixture.aggregate(fedAvg, global: [1, 2, 3, 4], [
      PluginFixture.update(0, [1, 0, -2, 4], samples: 1),
      PluginFixture.update(1, [3, 6, 2, 0], samples: 3),
    ])
    #expect(result.global == [3.5, 6.5, 4, 5])
    #expect(result.weights == [0.25, 0.75])
  }

  @Test func coverageAveragesOverCoveringClientsOnly() throws {
    let fedAvg = try PluginFixture.instance("FedAvg")
    // e0: both cover:     1 + (0.25·1 + 0.75·3) / 1   = 3.5
    // e1: client 0 only:  2 + (0.25·8) / 0.25         = 10
    // e2: client 1 only:  3 + (0.75·2) / 0.75         = 5
    // e3: nobody covers:  4 (the NaN under a 0 mask must not matter)
    let result = try PluginFixture.aggregate(fedAvg, global: [1, 2, 3, 4], [
      PluginFixture.update(0, [1, 8, 0, 0], samples: 1, coverage: [1, 1, 0, 0]),
      PluginFixture.update(1, [3, 0, 2, .nan], samples: 3, coverage: [1, 0, 1, 0]),
    ])
    #expect(result.global == [3.5, 10, 5, 4])
  }

  @Test(arguments: [false, true])
  func matchesTheReferenceOnRandomData(masked: Bool) throws {
    var random = TestRandom(seed: masked ? 11 : 7)
    let count = 5_003  // crosses kernel blocks and leaves a SIMD tail
    let global = random.vector(count)
    let updates = (0..<7).map { client in
      PluginFixture.update(UInt32(client), random.vector(count, scale: 0.1), samples: UInt64(1 + random.below(500)),
                           coverage: masked && client % 2 == 0 ? random.mask(count, coverage: 0.6) : nil)
    }
    let fedAvg = try PluginFixture.instance("FedAvg")
    let result = try PluginFixture.aggregate(fedAvg, global: global, updates)
    let weights = Reference.sampleWeights(updates)
    expectClose(result.global, Reference.weightedUpdate(global: global, updates: updates, weights: weights))
    expectClose(result.weights, weights)
    // Deterministic: the same call gives the same bits.
    #expect(try PluginFixture.aggregate(fedAvg, global: global, updates).global == result.global)
  }

  @Test func oneClientAddsItsDelta() throws {
    let result = try PluginFixture.aggregate(try PluginFixture.instance("FedAvg"), global: [1, -2, 0.5],
                                             [PluginFixture.update(4, [0.25, 2, -0.125], samples: 9)])
    #expect(result.global == [1.25, 0, 0.375])
    #expect(result.weights == [1])
  }

  @Test func rejectsBadInputsNamingTheClient() throws {
    let fedAvg = try PluginFixture.instance("FedAvg")
    let noUpdates = PluginFixture.errorText { _ = try PluginFixture.aggregate(fedAvg, global: [1, 2], []) }
    #expect(noUpdates?.contains("no updates") == true)

    let nan = PluginFixture.errorText {
      _ = try PluginFixture.aggregate(fedAvg, global: [1, 2], [
        PluginFixture.update(3, [1, 2]), PluginFixture.update(7, [0, .infinity]),
      ])
    }
    #expect(nan?.contains("FHP_E_NUMERIC") == true)
    #expect(nan?.contains("client 7") == true)

    let noSamples = PluginFixture.errorText {
      _ = try PluginFixture.aggregate(fedAvg, global: [1, 2], [PluginFixture.update(5, [1, 2], samples: 0)])
    }
    #expect(noSamples?.contains("client 5 has n_samples 0") == true)

    let duplicate = PluginFixture.errorText {
      _ = try PluginFixture.aggregate(fedAvg, global: [1], [PluginFixture.update(2, [1]), PluginFixture.update(2, [3])])
    }
    #expect(duplicate?.contains("client 2 appears more than once") == true)
  }

  @Test func rejectsMismatchedLengthsAtTheBoundary() throws {
    // The host's loader checks lengths itself, so call the vtable directly.
    let raw = try RawPlugin(path: "\(PluginFixture.releaseDirectory)/libFedAvg.so")
    let delta: [Float] = [1, 2, 3]
    let result = delta.withUnsafeBufferPointer { deltaBuffer in
      raw.aggregate(global: [0, 0], updates: [
        fhp_update(struct_size: UInt32(MemoryLayout<fhp_update>.size), client_id: 6, delta: deltaBuffer.baseAddress,
                   n_params: 3, n_samples: 1, coverage: nil, metrics: nil, n_metrics: 0, flags: 0),
      ])
    }
    #expect(result.status == fhp_status(FHP_E_INVALID))
    #expect(result.message == "aggregate: client 6 has n_params 3, expected 2")
  }

  @Test func configIsStrict() throws {
    let library = try PluginFixture.library("FedAvg")
    let unknown = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"mu": 0.1}"#) }
    #expect(unknown?.contains(#"unknown config key "mu" (accepted: seed)"#) == true)
    let wrongType = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"seed": "x"}"#) }
    #expect(wrongType?.contains(#"config key "seed" must be an integer; got "x""#) == true)
    let negative = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"seed": -1}"#) }
    #expect(negative?.contains("non-negative") == true)
    let malformed = PluginFixture.errorText { _ = try library.makeInstance(configJSON: #"{"seed": 1,}"#) }
    #expect(malformed?.contains("not a valid JSON object") == true)
    _ = try library.makeInstance(configJSON: #" { "seed" : 42 } "#)
  }
}
