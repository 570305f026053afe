import Foundation
import Glibc
import PluginAPI

/// A loaded plugin shared object: its negotiated descriptor and function table.
///
/// Libraries are opened with `RTLD_NOW | RTLD_LOCAL` (unresolved symbols fail at load; each
/// plugin's symbols stay private) and are never closed: Swift images cannot be unloaded
/// safely, and instances may outlive any one owner. Opening the same path twice returns
/// the same library.
public final class PluginLibrary: @unchecked Sendable {
  public let path: String
  public let descriptor: PluginDescriptor
  let vtable: UnsafePointer<fhp_vtable>

  private static let cacheLock = NSLock()
  nonisolated(unsafe) private static var cache: [String: PluginLibrary] = [:]

  private init(path: String, descriptor: PluginDescriptor, vtable: UnsafePointer<fhp_vtable>) {
    self.path = path
    self.descriptor = descriptor
    self.vtable = vtable
  }

  /// Finds (see `PluginSearchPath`), loads and negotiates a plugin.
  public static func open(_ nameOrPath: String,
                          searchPath: PluginSearchPath = .standard()) throws -> PluginLibrary {
    let path = try searchPath.resolve(nameOrPath)
    return try cacheLock.withLock {
      if let loaded = cache[path] { return loaded }
      let library = try load(path: path)
      cache[path] = library
      return library
    }
  }

  private static func load(path: String) throws -> PluginLibrary {
    _ = dlerror()
    guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
      throw PluginError.notLoadable(path: path, reason: lastDynamicLinkerError())
    }
    // Deliberately never dlclose'd (see the type's documentation).
    guard let symbol = dlsym(handle, FHP_ENTRY_SYMBOL) else {
      throw PluginError.missingEntry(path: path)
    }
    let entry = unsafeBitCast(symbol, to: fhp_entry_fn.self)
    var rawDescriptor: UnsafePointer<fhp_descriptor>?
    var rawVtable: UnsafePointer<fhp_vtable>?
    let status = entry(FHP_ABI_MAJOR, FHP_ABI_MINOR, &rawDescriptor, &rawVtable)

    if status == FHP_E_VERSION {
      let major = rawDescriptor?.pointee.abi_major ?? 0
      let minor = rawDescriptor?.pointee.abi_minor ?? 0
      throw PluginError.abiMismatch(path: path, pluginMajor: major, pluginMinor: minor)
    }
    guard status == FHP_OK else {
      throw PluginError.malformed(path: path, reason: "\(entrySymbolName) returned \(statusName(status))")
    }
    guard let rawDescriptor, let rawVtable else {
      throw PluginError.malformed(path: path, reason: "\(entrySymbolName) returned a NULL descriptor or vtable")
    }
    guard rawDescriptor.pointee.struct_size >= UInt32(MemoryLayout<fhp_descriptor>.offset(of: \.description)!
                                                      + MemoryLayout<UnsafePointer<CChar>>.size) else {
      throw PluginError.malformed(path: path, reason: "descriptor struct_size \(rawDescriptor.pointee.struct_size) is too small")
    }
    let descriptor = PluginDescriptor(rawDescriptor)
    guard descriptor.abiMajor == hostABIMajor else {
      throw PluginError.abiMismatch(path: path, pluginMajor: descriptor.abiMajor, pluginMinor: descriptor.abiMinor)
    }
    guard !descriptor.id.isEmpty else {
      throw PluginError.malformed(path: path, reason: "descriptor has an empty id")
    }
    let table = VtableView(rawVtable)
    guard table.has(\.create), table.has(\.destroy), table.has(\.last_error),
          rawVtable.pointee.create != nil, rawVtable.pointee.destroy != nil, rawVtable.pointee.last_error != nil
    else {
      throw PluginError.malformed(path: path, reason: "vtable lacks create, destroy or last_error")
    }
    if descriptor.auxDownVectors > 0 || descriptor.auxUpVectors > 0 {
      guard descriptor.kinds.isSuperset(of: [.aggregator, .clientHook]) else {
        throw PluginError.malformed(path: path, reason: "declares auxiliary vectors (n_aux_down \(descriptor.auxDownVectors), "
                                      + "n_aux_up \(descriptor.auxUpVectors)) but is not both an aggregator and a client hook")
      }
      guard descriptor.auxDownVectors <= 16, descriptor.auxUpVectors <= 16 else {
        throw PluginError.malformed(path: path, reason: "declares \(descriptor.auxDownVectors) down and \(descriptor.auxUpVectors) "
                                      + "up auxiliary vectors; at most 16 each")
      }
      guard descriptor.auxDownVectors == 0 || table.function(\.prepare_client) != nil else {
        throw PluginError.malformed(path: path, reason: "declares n_aux_down \(descriptor.auxDownVectors) but has no prepare_client")
      }
    }
    return PluginLibrary(path: path, descriptor: descriptor, vtable: rawVtable)
  }

  /// Throws `wrongKind` unless the plugin provides every kind in `kinds`.
  public func require(_ kinds: PluginKinds) throws {
    guard descriptor.kinds.isSuperset(of: kinds) else {
      throw PluginError.wrongKind(path: path, id: descriptor.id, wanted: kinds, has: descriptor.kinds)
    }
  }

  /// Calls the entry point again with an arbitrary host version (for conformance checks).
  func negotiate(major: UInt32, minor: UInt32) -> Int32 {
    guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD),
          let symbol = dlsym(handle, FHP_ENTRY_SYMBOL) else { return Int32(FHP_E_INTERNAL) }
    var descriptor: UnsafePointer<fhp_descriptor>?
    var table: UnsafePointer<fhp_vtable>?
    return unsafeBitCast(symbol, to: fhp_entry_fn.self)(major, minor, &descriptor, &table)
  }

  /// The plugin's last error message on this thread (`last_error`), "" if none.
  func lastError(_ instance: OpaquePointer?) -> String {
    guard let message = vtable.pointee.last_error!(instance) else { return "" }
    return String(cString: message)
  }

  /// Creates an instance with a JSON config object (`"{}"` for every default). The plugin may
  /// run its work on up to `threads` threads (`fhp_host.parallel_for`); results do not depend
  /// on it. `hostABIMinor` 0 hands the plugin the `fhp_host` of an ABI 1.0 host (no
  /// `parallel_for`), to check that a plugin still runs under an older host. `isolation`
  /// chooses whether the instance lives in this process or in a child plugin-host process.
  /// `log` receives the plugin's `fhp_host.log` lines; nil prints them on stderr (`PluginLog`).
  public func makeInstance(configJSON: String = "{}", threads: Int = WorkerPool.defaultThreadCount,
                           hostABIMinor: UInt32 = FedHostCore.hostABIMinor,
                           isolation: PluginIsolation = .none,
                           log: (@Sendable (PluginLogLevel, String) -> Void)? = nil)
    throws -> PluginInstance
  {
    try PluginInstance(library: self, configJSON: configJSON, threads: threads, abiMinor: hostABIMinor,
                       isolation: isolation, log: log ?? PluginLog.standardError(pluginName: descriptor.name))
  }
}

/// Reads a vtable member only when it lies within the plugin's struct_size (ABI rule 2).
struct VtableView {
  let raw: UnsafePointer<fhp_vtable>
  init(_ raw: UnsafePointer<fhp_vtable>) { self.raw = raw }

  func has<Member>(_ member: KeyPath<fhp_vtable, Member>) -> Bool {
    guard let offset = MemoryLayout<fhp_vtable>.offset(of: member) else { return false }
    return Int(raw.pointee.struct_size) >= offset + MemoryLayout<Member>.size
  }

  /// The member, or nil when it is outside struct_size or NULL.
  func function<F>(_ member: KeyPath<fhp_vtable, F?>) -> F? {
    has(member) ? raw.pointee[keyPath: member] : nil
  }
}

func lastDynamicLinkerError() -> String {
  guard let message = dlerror() else { return "unknown dlopen error" }
  return String(cString: message)
}
