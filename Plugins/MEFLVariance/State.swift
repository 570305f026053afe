import PluginAPI
import PluginKit
import Synchronization

/// MEFL's saved state: seed, round, direction, per-client records, alpha and pending alpha-gradients.
extension MEFLVariancePlugin {
  // MARK: State

  func saveState(into writer: inout StateWriter) throws {
    writer.write(seed)
    writer.write(roundCount)
    writer.write(direction)
    writer.write(UInt64(clients.count))
    for client in clients.keys.sorted() {
      guard let record = clients[client] else { continue }
      writer.write(client)
      writer.write(record.variance)
      writer.write(record.seen)
      writer.write(record.meanDelta)
    }
    let (alpha, pending) = shared.withLock { ($0.alpha, $0.pendingAlphaGradients) }
    writer.write(alpha)
    writer.write(UInt64(pending.count))
    for client in pending.keys.sorted() {
      writer.write(client)
      writer.write(pending[client] ?? [])
    }
  }

  func loadState(from reader: inout StateReader) throws {
    // Read everything first: a corrupt state must leave the instance untouched.
    let loadedSeed: UInt64 = try reader.read()
    let loadedRound: UInt64 = try reader.read()
    let loadedDirection: [Float] = try reader.read()
    var loadedClients: [UInt32: ClientRecord] = [:]
    let clientCount: UInt64 = try reader.read()
    for _ in 0..<clientCount {
      let client: UInt32 = try reader.read()
      loadedClients[client] = ClientRecord(variance: try reader.read(), seen: try reader.read(),
                                           meanDelta: try reader.read())
    }
    let loadedAlpha: [Float] = try reader.read()
    var loadedPending: [UInt32: [Float]] = [:]
    let pendingCount: UInt64 = try reader.read()
    for _ in 0..<pendingCount {
      let client: UInt32 = try reader.read()
      loadedPending[client] = try reader.read()
    }
    seed = loadedSeed
    roundCount = loadedRound
    direction = loadedDirection
    directionHasNonzeroElement = loadedDirection.contains { $0 != 0 }
    clients = loadedClients
    shared.withLock { $0 = SharedState(alpha: loadedAlpha, pendingAlphaGradients: loadedPending) }
  }
}
