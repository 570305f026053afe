"""FedHost strategy plugins (C-ABI shared objects) as Flower server strategies.

    from fedhost_flower import PluginStrategy
    strategy = PluginStrategy("libSimilarityAware.so", {"seed": 1})   # a Flower FedAvg subclass

The ctypes layer (:mod:`fedhost_flower.plugin`) is usable without Flower.  The legacy-API
wrapper lives in :mod:`fedhost_flower.legacy` (imported on demand).
"""

from .core import ArrayLayout, ClientResult, PluginAggregator
from .plugin import (
    ConfigKey,
    Descriptor,
    PluginError,
    PluginInstance,
    PluginLibrary,
    PluginLoadError,
    Update,
    find_plugin,
    load_plugin,
)

__version__ = "0.1.0"

__all__ = [
    "ArrayLayout",
    "ClientResult",
    "ConfigKey",
    "Descriptor",
    "PluginAggregator",
    "PluginError",
    "PluginInstance",
    "PluginLibrary",
    "PluginLoadError",
    "PluginStrategy",
    "Update",
    "find_plugin",
    "load_plugin",
]


def __getattr__(name: str):  # noqa: ANN202 - lazy import keeps the ctypes layer Flower-free
    if name == "PluginStrategy":
        from .strategy import PluginStrategy

        return PluginStrategy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
