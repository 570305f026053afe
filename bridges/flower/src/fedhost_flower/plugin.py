"""Load a FedHost strategy plugin (.so) with ctypes and call it through the C header contract.

    lib = load_plugin("libFedProx.so")          # dlopen, negotiate ABI 1.0, read the descriptor
    with lib.create({"mu": 0.1}) as plugin:     # vtable->create with a JSON config
        new_global, weights = plugin.aggregate(0, global_vector, [Update(...), ...])
        blob = plugin.save_state()

Errors raised by the plugin become :class:`PluginError` carrying the plugin's own
``last_error`` message; a bad path, a library that is not a plugin, or an ABI mismatch
raise :class:`PluginLoadError` with one line.  Libraries are never closed (header rule 7).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from ctypes import POINTER, byref, c_double, c_float, c_uint8, c_uint32, c_uint64, c_void_p
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import abi
from .handle import OwnedHandle

__all__ = [
    "ConfigKey",
    "Descriptor",
    "PluginError",
    "PluginInstance",
    "PluginLibrary",
    "PluginLoadError",
    "Update",
    "find_plugin",
    "load_plugin",
]

HOST_NAME = "fedhost-flower"
HOST_VERSION = "0.1.0"
_log = logging.getLogger("fedhost_flower.plugin")


class PluginError(RuntimeError):
    """A plugin call failed; ``str(err)`` is the plugin's last_error message."""

    def __init__(self, message: str, status: int = 0, plugin: str = "") -> None:
        self.status = status
        self.status_name = abi.STATUS_NAMES.get(status, str(status))
        self.plugin = plugin
        self.message = message
        prefix = f"{plugin}: " if plugin else ""
        suffix = f" ({self.status_name})" if status else ""
        super().__init__(f"{prefix}{message}{suffix}")


class PluginLoadError(PluginError):
    """The file cannot be used as a plugin: bad path, not a plugin, or ABI mismatch."""


@dataclass(frozen=True)
class ConfigKey:
    """One accepted config key, as the plugin's descriptor lists it."""

    key: str
    type: str
    default_json: str
    description: str

    @property
    def default(self) -> Any:
        """The default as a Python value."""
        return json.loads(self.default_json) if self.default_json else None


@dataclass(frozen=True)
class Descriptor:
    """What the plugin is (``fhp_descriptor``), copied into Python values."""

    id: str
    name: str
    version: str
    description: str
    abi: tuple[int, int]
    kinds: int
    config_keys: tuple[ConfigKey, ...]
    #: Auxiliary vectors per client and round, down to the client and up to the server (ABI 1.2).
    n_aux_down: int = 0
    n_aux_up: int = 0

    @property
    def kind_names(self) -> list[str]:
        return [name for bit, name in abi.KIND_NAMES.items() if self.kinds & bit]

    def config_key(self, key: str) -> ConfigKey | None:
        return next((k for k in self.config_keys if k.key == key), None)


@dataclass
class Update:
    """One client's result for one round (``fhp_update``).

    ``delta`` is ``w_client - w_global`` as one flat float32 vector; ``coverage`` (optional,
    same length, nonzero = trained) marks a sub-model; ``metrics`` are named scalars such as
    ``{"query_loss": 0.31}``.
    """

    client_id: int
    delta: np.ndarray
    n_samples: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    coverage: np.ndarray | None = None
    #: The client hook's aux_up vectors (ABI 1.2), n_aux_up × n_params floats.
    aux_up: np.ndarray | None = None


@dataclass(frozen=True)
class RoundInfo:
    """The round an aggregator works on (``fhp_round_context``, ABI 1.2)."""

    round: int
    n_rounds: int
    n_clients: int
    sampled: Sequence[int]
    failed: Sequence[int] = ()


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


def find_plugin(name: str | os.PathLike[str]) -> Path:
    """Resolve a plugin name the way ``host`` does.

    A name containing ``/`` is a path.  A bare name (``libFedAvg.so``) is looked up in
    ``$FEDHOST_PLUGIN_DIR`` and then in each directory of ``$FEDHOST_PLUGIN_PATH`` (``:``
    separated); if found nowhere it is returned unchanged (and loading it will fail).
    """
    text = os.fspath(name)
    if "/" in text:
        return Path(text)
    dirs = [os.environ.get("FEDHOST_PLUGIN_DIR", "")] + os.environ.get("FEDHOST_PLUGIN_PATH", "").split(":")
    for directory in filter(None, dirs):
        candidate = Path(directory) / text
        if candidate.is_file():
            return candidate
    return Path(text)


# Loaded libraries by resolved path.  Never dlclose()d (header rule 7): keeping the CDLL
# objects here also keeps ctypes from ever dropping them.
_LIBRARIES: dict[str, PluginLibrary] = {}
_LOAD_LOCK = threading.Lock()


def load_plugin(name: str | os.PathLike[str]) -> PluginLibrary:
    """Load (once per path) and negotiate a plugin; see :func:`find_plugin` for names."""
    path = find_plugin(name)
    key = os.path.realpath(path)
    with _LOAD_LOCK:
        if key not in _LIBRARIES:
            _LIBRARIES[key] = PluginLibrary(path)
        return _LIBRARIES[key]


class PluginLibrary:
    """A loaded plugin: its descriptor and vtable.  Use :meth:`create` for instances."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        where = str(self.path)
        if not self.path.is_file():
            raise PluginLoadError(f"cannot load plugin {where!r}: no such file")
        try:
            self._dll = ctypes.CDLL(os.path.abspath(where), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as err:
            raise PluginLoadError(f"cannot load plugin {where!r}: {err}") from None
        try:
            entry = abi.ENTRY_FN((abi.ENTRY_SYMBOL, self._dll))
        except AttributeError:
            raise PluginLoadError(
                f"{where!r} is not a FedHost plugin: it exports no symbol {abi.ENTRY_SYMBOL!r}"
            ) from None

        desc_ptr = POINTER(abi.fhp_descriptor)()
        vt_ptr = POINTER(abi.fhp_vtable)()
        status = entry(abi.ABI_MAJOR, abi.ABI_MINOR, byref(desc_ptr), byref(vt_ptr))
        desc = abi.read_sized(ctypes.addressof(desc_ptr.contents), abi.fhp_descriptor) if desc_ptr else None
        if status == abi.FHP_E_VERSION or (desc is not None and desc.abi_major != abi.ABI_MAJOR):
            theirs = f"{desc.abi_major}.{desc.abi_minor}" if desc else "an unknown version"
            raise PluginLoadError(
                f"{where!r} was built for plugin ABI {theirs}; fedhost_flower speaks ABI "
                f"{abi.ABI_MAJOR}.{abi.ABI_MINOR} (major versions must match)"
            )
        if status != abi.FHP_OK or desc is None or not vt_ptr:
            raise PluginLoadError(
                f"{where!r}: {abi.ENTRY_SYMBOL} failed ({abi.STATUS_NAMES.get(status, status)}) "
                "or returned no descriptor/vtable"
            )
        self._vtable = abi.read_sized(ctypes.addressof(vt_ptr.contents), abi.fhp_vtable)
        required = abi.member_end(abi.fhp_vtable, "last_error")
        vt_size = self._vtable.struct_size
        if vt_size < required or not (self._vtable.create and self._vtable.destroy and self._vtable.last_error):
            raise PluginLoadError(f"{where!r}: vtable (struct_size {vt_size}) lacks create/destroy/last_error")
        self.descriptor = self._read_descriptor(desc)

    @staticmethod
    def _read_descriptor(desc: abi.fhp_descriptor) -> Descriptor:
        keys = abi.read_array(desc.config_keys or 0, desc.n_config_keys, abi.fhp_config_key)
        return Descriptor(
            id=_text(desc.id),
            name=_text(desc.name),
            version=_text(desc.version),
            description=_text(desc.description),
            abi=(desc.abi_major, desc.abi_minor),
            kinds=desc.kinds,
            config_keys=tuple(
                ConfigKey(_text(k.key), _text(k.type), _text(k.default_json), _text(k.description)) for k in keys
            ),
            n_aux_down=desc.n_aux_down,
            n_aux_up=desc.n_aux_up,
        )

    def function(self, name: str) -> Any:
        """The vtable member ``name``, or None when absent or NULL (header rules 2 and 3)."""
        if abi.member_end(abi.fhp_vtable, name) > self._vtable.struct_size:
            return None
        fn = getattr(self._vtable, name)
        return fn if fn else None

    def create(self, config: Mapping[str, Any] | str | None = None) -> PluginInstance:
        """A new instance; ``config`` is a dict (dumped to JSON), a JSON string, or None (``{}``)."""
        return PluginInstance(self, config)

    def __repr__(self) -> str:
        d = self.descriptor
        return f"<PluginLibrary {d.name} {d.version} ({d.id}) from {self.path}>"


class PluginInstance(OwnedHandle):
    """One plugin instance (``fhp_instance``).  Calls on one instance are serialized by a lock."""

    def __init__(self, library: PluginLibrary, config: Mapping[str, Any] | str | None = None) -> None:
        self.library = library
        self.config_json = config if isinstance(config, str) else json.dumps(dict(config or {}))
        self.config: dict[str, Any] = json.loads(self.config_json)
        super().__init__()
        self._log_fn = abi.LOG_FN(self._on_log)  # referenced until destroy
        self._host = abi.fhp_host(
            struct_size=ctypes.sizeof(abi.fhp_host),
            host_name=HOST_NAME.encode(),
            host_version=HOST_VERSION.encode(),
            log=self._log_fn,
        )
        handle = c_void_p()
        status = library.function("create")(byref(self._host), self.config_json.encode(), byref(handle))
        if status != abi.FHP_OK:
            raise PluginError(self._last_error(None), status, library.descriptor.name)
        self._handle: c_void_p | None = handle

    @property
    def descriptor(self) -> Descriptor:
        return self.library.descriptor

    def _on_log(self, _ctx: int | None, level: int, message: bytes | None) -> None:
        py_level = {abi.LOG_DEBUG: logging.DEBUG, abi.LOG_WARN: logging.WARNING, abi.LOG_ERROR: logging.ERROR}
        _log.log(py_level.get(level, logging.INFO), "[%s] %s", self.descriptor.name, _text(message))

    def _last_error(self, handle: c_void_p | None) -> str:
        return _text(self.library.function("last_error")(handle)) or "(the plugin left no message)"

    def _check(self, status: int) -> None:
        """Raise the plugin's message (read on this thread, right after the call) on failure."""
        if status != abi.FHP_OK:
            raise PluginError(self._last_error(self._handle), status, self.descriptor.name)

    def _require(self, name: str) -> Any:
        if self._handle is None:
            raise PluginError("the instance was destroyed", plugin=self.descriptor.name)
        fn = self.library.function(name)
        if fn is None:
            raise PluginError(f"the plugin does not implement {name}", plugin=self.descriptor.name)
        return fn

    def aggregate(
        self, round_index: int, global_params: np.ndarray, updates: Sequence[Update]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``vt->aggregate``: returns (new global float32 vector, effective weights per update)."""
        fn = self._require("aggregate")
        return self._aggregate(updates, global_params, lambda *pointers: fn(self._handle, round_index, *pointers))

    def aggregate_round(
        self, context: RoundInfo, global_params: np.ndarray, updates: Sequence[Update]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """``vt->aggregate_round`` (ABI 1.2): returns (new global, shares per update, the metrics
        the plugin reported for the round). Each update's ``aux_up`` travels in the context."""
        fn = self._require("aggregate_round")
        n_params = np.asarray(global_params).size
        aux_len = self.descriptor.n_aux_up * n_params
        aux = [np.ascontiguousarray(u.aux_up, dtype=np.float32).reshape(-1) if aux_len else None for u in updates]
        for update, vector in zip(updates, aux, strict=True):
            if aux_len and vector.size != aux_len:
                raise PluginError(f"client {update.client_id} sent {vector.size} aux_up floats, the strategy declares "
                                  f"{aux_len}", plugin=self.descriptor.name)
        pointers = (POINTER(c_float) * len(updates))(*(v.ctypes.data_as(POINTER(c_float)) for v in aux)) \
            if aux_len else None
        raw = _RoundContext(context, pointers, aux_len)
        out_global, out_weights = self._aggregate(
            updates, global_params, lambda *args: fn(self._handle, byref(raw.struct), *args))
        return out_global, out_weights, dict(raw.metrics)

    def prepare_client(self, context: RoundInfo, client_id: int, global_params: np.ndarray) -> np.ndarray:
        """``vt->prepare_client`` (ABI 1.2): the aux_down vectors client ``client_id`` receives."""
        fn = self._require("prepare_client")
        global_params = np.ascontiguousarray(global_params, dtype=np.float32).reshape(-1)
        out = np.zeros(self.descriptor.n_aux_down * global_params.size, dtype=np.float32)
        raw = _RoundContext(context, None, 0, accepts_metrics=False)
        with self._lock:
            self._check(fn(self._handle, byref(raw.struct), client_id, global_params.ctypes.data_as(POINTER(c_float)),
                           global_params.size, out.ctypes.data_as(POINTER(c_float)), out.size))
        if not np.all(np.isfinite(out)):
            raise PluginError(f"prepare_client wrote a non-finite aux_down for client {client_id}",
                              plugin=self.descriptor.name)
        return out

    def _aggregate(self, updates: Sequence[Update], global_params: np.ndarray,
                   call: Callable[..., int]) -> tuple[np.ndarray, np.ndarray]:
        """The update table and output buffers of either aggregate entry point; ``call`` gets
        (global, n_params, updates, n_updates, out_global, out_weights)."""
        global_params = np.ascontiguousarray(global_params, dtype=np.float32).reshape(-1)
        n_params = global_params.size
        array = (abi.fhp_update * len(updates))()
        keep_alive: list[Any] = []  # buffers the structs point into, borrowed for the call
        for slot, update in zip(array, updates, strict=True):
            delta = np.ascontiguousarray(update.delta, dtype=np.float32).reshape(-1)
            metrics = (abi.fhp_metric * len(update.metrics))(
                *((str(k).encode(), float(v)) for k, v in update.metrics.items())
            )
            slot.struct_size = ctypes.sizeof(abi.fhp_update)
            slot.client_id = update.client_id
            slot.delta = delta.ctypes.data_as(POINTER(c_float))
            slot.n_params = delta.size
            slot.n_samples = update.n_samples
            slot.metrics = ctypes.cast(metrics, POINTER(abi.fhp_metric))
            slot.n_metrics = len(update.metrics)
            keep_alive += [delta, metrics]
            if update.coverage is not None:
                coverage = np.ascontiguousarray(update.coverage, dtype=bool).reshape(-1).view(np.uint8)
                slot.coverage = coverage.ctypes.data_as(POINTER(c_uint8))
                keep_alive.append(coverage)
        out_global = np.empty(n_params, dtype=np.float32)
        out_weights = np.zeros(len(updates), dtype=np.float64)
        with self._lock:
            self._check(
                call(
                    global_params.ctypes.data_as(POINTER(c_float)), n_params,
                    ctypes.addressof(array), len(updates),
                    out_global.ctypes.data_as(POINTER(c_float)),
                    out_weights.ctypes.data_as(POINTER(c_double)),
                )
            )
        return out_global, out_weights

    def initialize(
        self,
        weights: np.ndarray,
        n_clients: int,
        train_client: Callable[[int, np.ndarray, int], tuple[np.ndarray, float]],
        evaluate_client: Callable[[int, np.ndarray], tuple[float, float]],
    ) -> np.ndarray:
        """``vt->initialize`` with host callbacks in Python: ``train_client(client, weights,
        epochs) -> (trained, loss)`` and ``evaluate_client(client, weights) -> (loss, accuracy)``.
        An exception in a callback fails that callback (FHP_E_HOST, its message readable by the
        plugin) and is raised again here once the plugin returns."""
        fn = self._require("initialize")
        out = np.ascontiguousarray(weights, dtype=np.float32).reshape(-1).copy()
        n_params = out.size
        failure: list[BaseException] = []
        message = ctypes.create_string_buffer(512)

        def guarded(body: Callable[[], None]) -> int:
            try:
                body()
                return abi.FHP_OK
            except Exception as err:  # noqa: BLE001 - handed to the plugin as a status, raised below
                failure.append(err)
                message.value = str(err).encode()[:511]
                return abi.FHP_E_HOST

        def train(_ctx: int | None, client: int, pointer: Any, count: int, epochs: int, loss: Any) -> int:
            def body() -> None:
                current = np.ctypeslib.as_array(pointer, shape=(count,))
                trained, value = train_client(int(client), current.copy(), int(epochs))
                current[:] = np.asarray(trained, dtype=np.float32).reshape(-1)
                loss[0] = value
            return guarded(body)

        def evaluate(_ctx: int | None, client: int, pointer: Any, count: int, loss: Any, accuracy: Any) -> int:
            def body() -> None:
                current = np.ctypeslib.as_array(pointer, shape=(count,)).copy()
                loss[0], accuracy[0] = evaluate_client(int(client), current)
            return guarded(body)

        callbacks = (abi.TRAIN_CLIENT_FN(train), abi.EVALUATE_CLIENT_FN(evaluate),
                     abi.OPS_LAST_ERROR_FN(lambda _ctx: ctypes.addressof(message)))
        ops = abi.fhp_initializer_ops(struct_size=ctypes.sizeof(abi.fhp_initializer_ops), n_clients=n_clients,
                                      ctx=None, train_client=callbacks[0], evaluate_client=callbacks[1],
                                      last_error=callbacks[2])
        with self._lock:
            status = fn(self._handle, byref(ops), out.ctypes.data_as(POINTER(c_float)), n_params)
        if failure:
            raise failure[0]
        self._check(status)
        return out

    def save_state(self) -> bytes:
        """``vt->save_state``; a stateless plugin (NULL save_state) gives ``b""``."""
        if self.library.function("save_state") is None:
            return b""
        fn = self._require("save_state")
        with self._lock:
            needed = c_uint64(0)
            self._check(fn(self._handle, None, 0, byref(needed)))
            while True:
                buf = (c_uint8 * max(needed.value, 1))()
                capacity = needed.value
                status = fn(self._handle, buf, capacity, byref(needed))
                if status == abi.FHP_E_STATE and needed.value > capacity:
                    continue  # the state grew between the two calls
                self._check(status)
                return bytes(buf[: needed.value])

    def load_state(self, state: bytes) -> None:
        """``vt->load_state``; ``b""`` is accepted by a stateless plugin as a no-op."""
        if self.library.function("save_state") is None and not state:
            return
        fn = self._require("load_state")
        buf = (c_uint8 * len(state)).from_buffer_copy(state) if state else None
        with self._lock:
            self._check(fn(self._handle, buf, len(state)))

    def _destroy(self, handle: c_void_p) -> None:
        """``vt->destroy``.  The library itself stays loaded."""
        self.library.function("destroy")(handle)


class _RoundContext:
    """One call's ``fhp_round_context``: the id arrays it points to and the metrics the plugin
    reports through it (``report_metric``; only during aggregate_round)."""

    def __init__(self, context: RoundInfo, aux_up: Any, aux_len: int, accepts_metrics: bool = True) -> None:
        self.metrics: dict[str, float] = {}
        self._message = ctypes.create_string_buffer(256)
        self._accepts = accepts_metrics
        self._sampled = (c_uint32 * max(len(context.sampled), 1))(*sorted(context.sampled))
        self._failed = (c_uint32 * max(len(context.failed), 1))(*sorted(context.failed))
        self._report = abi.REPORT_METRIC_FN(self._on_report)
        self._last_error = ctypes.CFUNCTYPE(c_void_p, c_void_p)(lambda _ctx: ctypes.addressof(self._message))
        self.struct = abi.fhp_round_context(
            struct_size=ctypes.sizeof(abi.fhp_round_context), round=context.round, n_rounds=context.n_rounds,
            n_clients=context.n_clients, sampled=ctypes.cast(self._sampled, POINTER(c_uint32)),
            n_sampled=len(context.sampled), n_failed=len(context.failed),
            failed=ctypes.cast(self._failed, POINTER(c_uint32)),
            aux_up=ctypes.cast(aux_up, POINTER(POINTER(c_float))) if aux_up is not None else None,
            aux_up_len=aux_len, report_metric=self._report, last_error=self._last_error)
        self._aux_up = aux_up  # the pointer array the struct points into

    def _on_report(self, _ctx: int | None, key: bytes | None, value: float) -> int:
        problem = ("report_metric: only during aggregate_round" if not self._accepts
                   else "report_metric: NULL or empty key" if not key
                   else f"report_metric: {_text(key)!r} is {value}" if not np.isfinite(value) else None)
        if problem:
            self._message.value = problem.encode()[:255]
            return -1
        self.metrics[_text(key)] = float(value)
        return abi.FHP_OK
