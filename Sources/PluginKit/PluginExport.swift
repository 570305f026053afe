import Glibc
import PluginAPI
import Synchronization

/// Answers `fedhost_plugin_entry` for the Swift plugin type `P`. A plugin's whole export is:
///
///     @_cdecl("fedhost_plugin_entry")
///     public func fedhostPluginEntry(
///       _ major: UInt32, _ minor: UInt32,
///       _ descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
///       _ vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
///     ) -> fhp_status {
///       exportPlugin(MyPlugin.self, hostABIMajor: major, descriptor: descriptor, vtable: vtable)
///     }
///
/// The descriptor (with C strings), config-key table and vtable are built at the first call
/// and live until the process exits (plugins are never unloaded), so later calls neither
/// allocate nor have side effects, as the header requires. On a major-version mismatch the
/// descriptor is still handed out (so the host can print the plugin's version) and the
/// result is `FHP_E_VERSION`. One library exports one plugin type.
public func exportPlugin<P: FedHostPlugin>(
  _ type: P.Type, hostABIMajor: UInt32,
  descriptor: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?,
  vtable: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?
) -> fhp_status {
  let exported = exportedPlugin.withLock { current -> ExportedPlugin? in
    if current == nil { current = ExportedPlugin(type) }
    return current
  }
  guard let exported else { return PluginStatus.noMemory }
  descriptor?.pointee = UnsafePointer(exported.descriptor)
  guard hostABIMajor == FHP_ABI_MAJOR else {
    vtable?.pointee = nil
    return PluginStatus.version
  }
  vtable?.pointee = UnsafePointer(exported.vtable)
  return PluginStatus.ok
}

/// The exported plugin of this library, set once by the first entry call.
private let exportedPlugin = Mutex<ExportedPlugin?>(nil)

/// What `create` needs to know about the plugin type, and the static C tables.
private final class ExportedPlugin: @unchecked Sendable {
  let metadata: PluginMetadata
  let make: (PluginConfig, PluginHost) throws -> any FedHostPlugin
  let descriptor: UnsafeMutablePointer<fhp_descriptor>
  let vtable: UnsafeMutablePointer<fhp_vtable>

  /// Builds the tables; nil if memory for them cannot be had.
  init?<P: FedHostPlugin>(_ type: P.Type) {
    metadata = P.metadata
    make = { try P(config: $0, host: $1) }
    let keys = metadata.acceptedKeys
    guard let descriptor = permanentAllocation(of: fhp_descriptor.self, count: 1),
          let keyTable = permanentAllocation(of: fhp_config_key.self, count: keys.count),
          let vtable = permanentAllocation(of: fhp_vtable.self, count: 1) else { return nil }
    for (index, key) in keys.enumerated() {
      guard let name = permanentCString(key.name), let type = permanentCString(key.type.rawValue),
            let defaultJSON = permanentCString(key.defaultValue.jsonLiteral(as: key.type)),
            let summary = permanentCString(key.describedSummary) else { return nil }
      keyTable[index] = fhp_config_key(struct_size: UInt32(MemoryLayout<fhp_config_key>.size), reserved: 0,
                                       key: name, type: type, default_json: defaultJSON, description: summary)
    }
    guard let id = permanentCString(metadata.id), let name = permanentCString(metadata.name),
          let version = permanentCString(metadata.version), let summary = permanentCString(metadata.summary) else {
      return nil
    }
    descriptor.pointee = fhp_descriptor(
      struct_size: UInt32(MemoryLayout<fhp_descriptor>.size), abi_major: FHP_ABI_MAJOR, abi_minor: FHP_ABI_MINOR,
      kinds: metadata.kinds, id: id, name: name, version: version, description: summary,
      config_keys: keyTable, n_config_keys: UInt32(keys.count), reserved: 0,
      n_aux_down: metadata.auxDownVectors, n_aux_up: metadata.auxUpVectors)
    vtable.pointee = Self.functionTable(for: metadata.capabilities,
                                        usesAuxiliaryVectors: metadata.auxDownVectors > 0 || metadata.auxUpVectors > 0)
    self.descriptor = descriptor
    self.vtable = vtable
  }

  /// The vtable: required functions always, the others only for declared capabilities.
  private static func functionTable(for capabilities: PluginCapabilities, usesAuxiliaryVectors: Bool) -> fhp_vtable {
    var table = fhp_vtable()
    table.struct_size = UInt32(MemoryLayout<fhp_vtable>.size)
    table.create = { host, configJSON, out in
      ThreadErrorSlot.clear()
      guard let out else { return failure(PluginFailure.invalid("create: out is NULL"), owner: nil) }
      out.pointee = nil
      do {
        guard let exported = exportedPlugin.withLock({ $0 }) else {
          throw PluginFailure.internal("create called before fedhost_plugin_entry")
        }
        let json = configJSON.map { String(cString: $0) } ?? "{}"
        let config = try PluginConfig(json: json, keys: exported.metadata.configKeys)
        let pluginHost = PluginHost(host)
        let box = InstanceBox(plugin: try exported.make(config, pluginHost), host: pluginHost,
                              metadata: exported.metadata)
        out.pointee = OpaquePointer(Unmanaged.passRetained(box).toOpaque())
        return PluginStatus.ok
      } catch {
        return failure(error, owner: nil)
      }
    }
    table.destroy = { instance in
      guard let instance else { return }
      ThreadErrorSlot.clear()
      Unmanaged<InstanceBox>.fromOpaque(UnsafeRawPointer(instance)).release()
    }
    table.last_error = { instance in
      ThreadErrorSlot.message(for: instance.map { UnsafeRawPointer($0) })
    }
    if capabilities.contains(.aggregate) {
      // A 1.1 host cannot carry auxiliary vectors: such a strategy offers only aggregate_round.
      table.aggregate = usesAuxiliaryVectors ? nil : { instance, round, global, count, updates, updateCount, output, weights in
        withInstance(instance) { box in
          try box.plugin.aggregate(AggregationRound(round: round, global: global, parameterCount: count,
                                                    updates: updates, updateCount: updateCount,
                                                    output: output, weights: weights, host: box.host))
        }
      }
      table.aggregate_round = { instance, context, global, count, updates, updateCount, output, weights in
        withInstance(instance) { box in
          let view = try RoundContextView(context)
          try box.plugin.aggregate(AggregationRound(round: view.round, global: global, parameterCount: count,
                                                    updates: updates, updateCount: updateCount,
                                                    output: output, weights: weights, host: box.host, context: view))
        }
      }
    }
    if capabilities.contains(.prepareClient) {
      table.prepare_client = { instance, context, clientID, global, count, auxDown, length in
        withInstance(instance) { box in
          try box.plugin.prepareClient(try RoundContextView(context), clientID: clientID,
                                       global: try buffer(global, count, "global"),
                                       auxDown: try mutableBuffer(auxDown, length, "aux_down"))
        }
      }
    }
    if capabilities.contains(.selectClients) {
      table.select_clients = { instance, context, global, count, output, selectCount in
        withInstance(instance) { box in
          guard let output else { throw PluginFailure.invalid("select_clients: out_ids is NULL") }
          let chosen = try box.plugin.selectClients(try RoundContextView(context), global: try buffer(global, count, "global"),
                                                    count: Int(selectCount))
          guard chosen.count == Int(selectCount) else {
            throw PluginFailure.internal("select_clients chose \(chosen.count) clients, \(selectCount) were asked for")
          }
          output.update(from: chosen, count: chosen.count)
        }
      }
    }
    if capabilities.contains(.adjustGradientInContext) {
      table.adjust_gradient_in_context = { instance, context, local, global, gradient, count in
        withInstance(instance) { box in
          try box.plugin.adjustGradient(try ClientContextView(context), local: try buffer(local, count, "w_local"),
                                        global: try buffer(global, count, "w_global"),
                                        gradient: try mutableBuffer(gradient, count, "grad_inout"))
        }
      }
    }
    if capabilities.contains(.initialize) {
      table.initialize = { instance, ops, weights, count in
        withInstance(instance) { box in
          let services = try InitializerServices(ops)
          try box.plugin.initialize(services, weights: try mutableBuffer(weights, count, "weights_inout"))
        }
      }
    }
    if capabilities.contains(.adjustGradient) {
      table.adjust_gradient = { instance, clientID, local, global, gradient, count in
        withInstance(instance) { box in
          try box.plugin.adjustGradient(clientID: clientID, local: try buffer(local, count, "w_local"),
                                        global: try buffer(global, count, "w_global"),
                                        gradient: try mutableBuffer(gradient, count, "grad_inout"))
        }
      }
    }
    if capabilities.contains(.trainLocal) {
      table.train_local = { instance, ops, weights, count in
        withInstance(instance) { box in
          let services = try ClientServices(ops)
          try box.plugin.trainLocal(services, weights: try mutableBuffer(weights, count, "weights_inout"))
        }
      }
    }
    if capabilities.contains(.state) {
      table.save_state = { instance, destination, capacity, length in
        withInstance(instance) { box in
          guard let length else { throw PluginFailure.invalid("save_state: out_len is NULL") }
          var writer = StateWriter(pluginID: box.metadata.id, version: box.metadata.stateVersion)
          try box.plugin.saveState(into: &writer)
          length.pointee = UInt64(writer.bytes.count)
          guard let destination else { return }
          guard capacity >= UInt64(writer.bytes.count) else {
            throw PluginFailure.state("save_state: the buffer holds \(capacity) bytes, the state needs \(writer.bytes.count)")
          }
          writer.bytes.withUnsafeBytes {
            UnsafeMutableRawBufferPointer(start: destination, count: $0.count).copyMemory(from: $0)
          }
        }
      }
      table.load_state = { instance, source, length in
        withInstance(instance) { box in
          guard source != nil || length == 0, length <= UInt64(Int.max) else {
            throw PluginFailure.invalid("load_state: NULL buffer of \(length) bytes")
          }
          var reader = try StateReader(bytes: UnsafeRawBufferPointer(start: source, count: Int(length)),
                                       pluginID: box.metadata.id, version: box.metadata.stateVersion)
          try box.plugin.loadState(from: &reader)
          try reader.finish()
        }
      }
    }
    return table
  }
}

/// The object behind an `fhp_instance *`: retained by create, released by destroy.
private final class InstanceBox {
  let plugin: any FedHostPlugin
  let host: PluginHost
  let metadata: PluginMetadata
  init(plugin: any FedHostPlugin, host: PluginHost, metadata: PluginMetadata) {
    self.plugin = plugin
    self.host = host
    self.metadata = metadata
  }
}

/// Runs one instance call: clears this thread's error, catches every error into a status
/// and this thread's `last_error` (nothing unwinds into the host).
@inline(__always)
private func withInstance(_ instance: OpaquePointer?, _ body: (InstanceBox) throws -> Void) -> fhp_status {
  ThreadErrorSlot.clear()
  guard let instance else { return failure(PluginFailure.invalid("the instance is NULL"), owner: nil) }
  do {
    try body(Unmanaged<InstanceBox>.fromOpaque(UnsafeRawPointer(instance)).takeUnretainedValue())
    return PluginStatus.ok
  } catch {
    return failure(error, owner: UnsafeRawPointer(instance))
  }
}

private func failure(_ error: any Error, owner: UnsafeRawPointer?) -> fhp_status {
  let failure = (error as? PluginFailure) ?? .internal("unexpected error: \(error)")
  ThreadErrorSlot.record(failure.message, owner: owner)
  return failure.status
}

/// Borrowed host buffers as Swift buffers; NULL with a non-zero count is `FHP_E_INVALID`.
private func buffer(_ pointer: UnsafePointer<Float>?, _ count: UInt64, _ name: String) throws
  -> UnsafeBufferPointer<Float>
{
  guard count <= UInt64(Int.max / 16), pointer != nil || count == 0 else {
    throw PluginFailure.invalid("\(name) is NULL or n_params \(count) is invalid")
  }
  return UnsafeBufferPointer(start: pointer, count: Int(count))
}

private func mutableBuffer(_ pointer: UnsafeMutablePointer<Float>?, _ count: UInt64, _ name: String) throws
  -> UnsafeMutableBufferPointer<Float>
{
  UnsafeMutableBufferPointer(mutating: try buffer(pointer.map { UnsafePointer($0) }, count, name))
}

/// Memory for the static tables: never freed, the library is never unloaded.
private func permanentAllocation<T>(of type: T.Type, count: Int) -> UnsafeMutablePointer<T>? {
  calloc(max(count, 1), MemoryLayout<T>.stride)?.bindMemory(to: T.self, capacity: max(count, 1))
}

private func permanentCString(_ text: String) -> UnsafePointer<CChar>? {
  strdup(text).map { UnsafePointer($0) }
}
