import PluginAPI
import PluginKit
@_cdecl("fedhost_plugin_entry")
public func fedhostPluginEntry(_ major: UInt32, _ minor: UInt32,
  _ d: UnsafeMutablePointer<UnsafePointer<fhp_descriptor>?>?, _ v: UnsafeMutablePointer<UnsafePointer<fhp_vtable>?>?) -> Int32 {
  return Int32(probe() + 1)
}
