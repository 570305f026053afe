import PluginAPI
public func probe() -> UInt32 { FHP_ABI_MAJOR }
