"""ctypes binding of ``libFedHostEngine.so`` (``Sources/FedHostEngine/API/include/fedhost_engine.h``).

FedHost's own engine, in this process: a Flower ClientApp trains its device with it (the same
trainer, splits and seeds as ``host``), and the ServerApp asks it for what keeps a run FedHost's
protocol (starting model, participants, baselines, the report).  No Swift type crosses: floats,
integers, C strings and the header's small structs, in buffers owned here.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from collections.abc import Mapping
from ctypes import POINTER, Structure, byref, c_char, c_char_p, c_double, c_float, c_int, c_size_t, c_uint8, c_uint32
from ctypes import c_uint64, c_void_p
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .handle import OwnedHandle

VERSION_MAJOR = 1
FHE_OK = 0
PROTOCOL_FED_META_ALIGN, PROTOCOL_FL = 0, 1
BASELINE_LOCAL_ONLY, BASELINE_CENTRALIZED = 0, 1
BASELINE_NAMES = {BASELINE_LOCAL_ONLY: "Local Only", BASELINE_CENTRALIZED: "Centralized"}


class fhe_error(Structure):
    _fields_ = [("message", c_char * 512)]


class fhe_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("protocol", c_uint32),
        ("client_count", c_uint32),
        ("rounds", c_uint32),
        ("parameter_count", c_uint64),
        ("personalizes", c_uint32),
        ("has_client_hook", c_uint32),
    ]


class fhe_metric(Structure):
    _fields_ = [("key", c_char * 64), ("value", c_double)]


class fhe_score(Structure):
    _fields_ = [("accuracy", c_double), ("f1", c_double), ("threshold", c_double)]


class EngineError(RuntimeError):
    """A failed engine call: its one-line message."""


@dataclass
class ClientUpdate:
    """What ``fhe_train`` returns: exactly the update ``host`` hands its aggregator."""

    client: int
    delta: np.ndarray
    coverage: np.ndarray | None
    n_samples: int
    metrics: dict[str, float] = field(default_factory=dict)
    #: The client hook's aux_up vectors (plugin ABI 1.2), None when it sends none.
    aux_up: np.ndarray | None = None


def score_dict(score: fhe_score) -> dict[str, Any]:
    """A DeviceScore in FedHost's Codable shape (no threshold for multi-class tasks)."""
    out: dict[str, Any] = {"accuracy": score.accuracy, "f1": score.f1}
    if not np.isnan(score.threshold):
        out["threshold"] = score.threshold
    return out


def library_path() -> Path:
    """``$FEDHOST_ENGINE_LIB``, else ``libFedHostEngine.so`` in ``$FEDHOST_PLUGIN_DIR``."""
    explicit = os.environ.get("FEDHOST_ENGINE_LIB")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("FEDHOST_PLUGIN_DIR", ".")) / "libFedHostEngine.so"


_LIBRARY: ctypes.CDLL | None = None
_LOAD_LOCK = threading.Lock()


def _library() -> ctypes.CDLL:
    global _LIBRARY
    with _LOAD_LOCK:
        if _LIBRARY is None:
            path = library_path()
            if not path.is_file():
                raise EngineError(f"cannot load the FedHost engine {str(path)!r}: no such file "
                                  "(swift build -c release; set FEDHOST_PLUGIN_DIR or FEDHOST_ENGINE_LIB)")
            lib = ctypes.CDLL(str(path))
            lib.fhe_abi_version.restype = c_uint32
            major = lib.fhe_abi_version() >> 16
            if major != VERSION_MAJOR:
                raise EngineError(f"{path}: engine ABI {major}.x, this binding speaks {VERSION_MAJOR}.x")
            err = POINTER(fhe_error)
            floats, cfloats = POINTER(c_float), POINTER(c_float)
            doubles = POINTER(c_double)
            signatures = {
                "fhe_open": [c_char_p, c_char_p, c_char_p, c_uint64, POINTER(c_void_p), err],
                "fhe_get_info": [c_void_p, POINTER(fhe_info), err],
                "fhe_client_name": [c_void_p, c_uint32, c_char_p, c_size_t, err],
                "fhe_client_parameter_count": [c_void_p, c_uint32, POINTER(c_uint64), err],
                "fhe_plugin_config": [c_void_p, c_char_p, c_char_p, c_size_t, POINTER(c_size_t), err],
                "fhe_set_client_hook": [c_void_p, c_char_p, err],
                "fhe_starting_model": [c_void_p, floats, c_size_t, err],
                "fhe_participants": [c_void_p, c_uint32, POINTER(c_uint32), c_size_t, POINTER(c_size_t), err],
                "fhe_train_aux": [c_void_p, c_uint32, c_uint32, cfloats, c_size_t, cfloats, c_size_t, floats, c_size_t,
                                  floats, POINTER(c_uint8), POINTER(c_uint64), POINTER(fhe_metric), c_size_t,
                                  POINTER(c_size_t), err],
                "fhe_evaluate": [c_void_p, c_uint32, cfloats, c_size_t, doubles, doubles, err],
                "fhe_serial_train": [c_void_p, c_uint32, floats, c_size_t, c_uint32, c_uint64, doubles, err],
                "fhe_serial_evaluate": [c_void_p, c_uint32, cfloats, c_size_t, doubles, doubles, err],
                "fhe_personalize": [c_void_p, c_uint32, cfloats, c_size_t, floats, c_size_t, POINTER(fhe_score), err],
                "fhe_score_global": [c_void_p, c_uint32, cfloats, c_size_t, POINTER(fhe_score), err],
                "fhe_baseline": [c_void_p, c_uint32, POINTER(fhe_score), c_size_t, err],
                "fhe_save_model": [c_void_p, c_uint32, cfloats, c_size_t, c_char_p, err],
                "fhe_report": [c_void_p, c_char_p, c_char_p, c_int, c_char_p, c_size_t, POINTER(c_size_t), err],
            }
            for name, argtypes in signatures.items():
                function = getattr(lib, name)
                function.argtypes = argtypes
                function.restype = c_int
            lib.fhe_close.argtypes = [c_void_p]
            lib.fhe_close.restype = None
            _LIBRARY = lib
        return _LIBRARY


def _floats(array: np.ndarray) -> Any:
    return array.ctypes.data_as(POINTER(c_float))


def settings_text(settings: Mapping[str, Any]) -> str:
    """``fhe_open``'s KEY=VALUE lines; a ``plugin_config`` mapping becomes plugin_config.KEY=JSON."""
    lines = []
    for key, value in settings.items():
        if key == "plugin_config":
            lines += [f"plugin_config.{name}={json.dumps(entry)}" for name, entry in dict(value).items()]
        else:
            lines.append(f"{key}={value}")
    return "\n".join(lines)


class Engine(OwnedHandle):
    """One federation opened for one seed (``fhe_engine``).  Calls are serialized by a lock."""

    def __init__(self, spec: str | os.PathLike[str] | None, data_dir: str | os.PathLike[str] = ".",
                 settings: Mapping[str, Any] | None = None, seed: int = 0) -> None:
        super().__init__()
        self._lib = _library()
        # Bare plugin names resolve as in the ctypes plugin loader: $FEDHOST_PLUGIN_DIR (else the
        # engine library's own directory, where swift build puts the plugins), then $FEDHOST_PLUGIN_PATH.
        settings = dict(settings or {})
        settings.setdefault("plugin_path", os.environ.get("FEDHOST_PLUGIN_DIR") or str(library_path().parent))
        handle = c_void_p()
        self._call("fhe_open", None if spec is None else os.fspath(spec).encode(), os.fspath(data_dir).encode(),
                   settings_text(settings).encode(), seed, byref(handle), engine=False)
        self._handle: c_void_p | None = handle
        self.seed = seed
        self.client_hook: str | None = None
        info = fhe_info(struct_size=ctypes.sizeof(fhe_info))
        self._call("fhe_get_info", byref(info))
        self.protocol = "fl" if info.protocol == PROTOCOL_FL else "fed-meta-align"
        self.client_count = info.client_count
        self.rounds = info.rounds
        self.parameter_count = info.parameter_count
        self.personalizes = bool(info.personalizes)

    def _call(self, name: str, *args: Any, engine: bool = True) -> None:
        error = fhe_error()
        with self._lock:
            if engine and self._handle is None:
                raise EngineError("the engine was closed")
            status = getattr(self._lib, name)(*((self._handle,) if engine else ()), *args, byref(error))
        if status != FHE_OK:
            raise EngineError(error.message.decode("utf-8", "replace"))

    def _text(self, name: str, *args: Any) -> str:
        needed = c_size_t(0)
        self._call(name, *args, None, 0, byref(needed))
        buffer = ctypes.create_string_buffer(needed.value)
        self._call(name, *args, buffer, needed.value, byref(needed))
        return buffer.value.decode()

    def _global(self, weights: np.ndarray) -> np.ndarray:
        vector = np.ascontiguousarray(weights, dtype=np.float32).reshape(-1)
        if vector.size != self.parameter_count:
            raise EngineError(f"model has {vector.size} parameters, the global model has {self.parameter_count}")
        return vector

    def client_name(self, client: int) -> str:
        buffer = ctypes.create_string_buffer(256)
        self._call("fhe_client_name", client, buffer, len(buffer))
        return buffer.value.decode()

    def client_parameter_count(self, client: int) -> int:
        count = c_uint64(0)
        self._call("fhe_client_parameter_count", client, byref(count))
        return count.value

    def plugin_config(self, plugin: str) -> str:
        """The config JSON ``host`` gives ``plugin`` under these settings and seed."""
        return self._text("fhe_plugin_config", os.fspath(plugin).encode())

    def set_client_hook(self, plugin: str | None) -> None:
        self._call("fhe_set_client_hook", None if plugin is None else os.fspath(plugin).encode())
        self.client_hook = plugin

    def use_client_hook(self, plugin: str | None) -> None:
        """Loads `plugin` as the client hook unless it already is the one loaded."""
        if plugin != self.client_hook:
            self.set_client_hook(plugin)

    def starting_model(self) -> np.ndarray:
        out = np.empty(self.parameter_count, dtype=np.float32)
        self._call("fhe_starting_model", _floats(out), out.size)
        return out

    def participants(self, round_index: int) -> list[int]:
        out = (c_uint32 * max(self.client_count, 1))()
        count = c_size_t(0)
        self._call("fhe_participants", round_index, out, self.client_count, byref(count))
        return list(out[: count.value])

    def train(self, client: int, round_index: int, global_weights: np.ndarray, aux_down: np.ndarray | None = None,
              aux_up_vectors: int = 0) -> ClientUpdate:
        """``fhe_train_aux``: with the client hook's aux_down vectors (what the aggregator's
        prepare_client wrote) and room for its ``aux_up_vectors`` vectors back."""
        weights = self._global(global_weights)
        delta = np.empty_like(weights)
        coverage = np.empty(weights.size, dtype=np.uint8)
        samples = c_uint64(0)
        metrics = (fhe_metric * 64)()
        count = c_size_t(0)
        down = np.ascontiguousarray(aux_down, dtype=np.float32) if aux_down is not None else np.empty(0, np.float32)
        up = np.zeros(aux_up_vectors * weights.size, dtype=np.float32)
        self._call("fhe_train_aux", client, round_index, _floats(weights), weights.size,
                   _floats(down) if down.size else None, down.size, _floats(up) if up.size else None, up.size,
                   _floats(delta), coverage.ctypes.data_as(POINTER(c_uint8)), byref(samples), metrics, len(metrics),
                   byref(count))
        named = {m.key.decode(): m.value for m in metrics[: count.value]}
        return ClientUpdate(client, delta, None if coverage.all() else coverage.astype(bool), samples.value, named,
                            up if up.size else None)

    def evaluate(self, client: int, global_weights: np.ndarray) -> tuple[float, float]:
        weights = self._global(global_weights)
        loss, accuracy = c_double(), c_double()
        self._call("fhe_evaluate", client, _floats(weights), weights.size, byref(loss), byref(accuracy))
        return loss.value, accuracy.value

    def serial_train(self, client: int, weights: np.ndarray, epochs: int, visit: int) -> tuple[np.ndarray, float]:
        trained = self._global(weights).copy()
        loss = c_double()
        self._call("fhe_serial_train", client, _floats(trained), trained.size, epochs, visit, byref(loss))
        return trained, loss.value

    def serial_evaluate(self, client: int, weights: np.ndarray) -> tuple[float, float]:
        vector = self._global(weights)
        loss, accuracy = c_double(), c_double()
        self._call("fhe_serial_evaluate", client, _floats(vector), vector.size, byref(loss), byref(accuracy))
        return loss.value, accuracy.value

    def personalize(self, client: int, global_weights: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        weights = self._global(global_weights)
        model = np.empty(self.client_parameter_count(client), dtype=np.float32)
        score = fhe_score()
        self._call("fhe_personalize", client, _floats(weights), weights.size, _floats(model), model.size, byref(score))
        return model, score_dict(score)

    def score_global(self, client: int, global_weights: np.ndarray) -> dict[str, Any]:
        weights = self._global(global_weights)
        score = fhe_score()
        self._call("fhe_score_global", client, _floats(weights), weights.size, byref(score))
        return score_dict(score)

    def baseline(self, kind: int) -> list[dict[str, Any]]:
        scores = (fhe_score * self.client_count)()
        self._call("fhe_baseline", kind, scores, self.client_count)
        return [score_dict(score) for score in scores]

    def save_model(self, client: int, model: np.ndarray, path: str | os.PathLike[str]) -> None:
        vector = np.ascontiguousarray(model, dtype=np.float32).reshape(-1)
        self._call("fhe_save_model", client, _floats(vector), vector.size, os.fspath(path).encode())

    def report(self, title: str, results: Mapping[str, Any], markdown: bool = False) -> str:
        """FedHost's report (``host --json`` text, or Markdown) from the run's results."""
        return self._text("fhe_report", title.encode(), json.dumps(results).encode(), int(markdown))

    def _destroy(self, handle: c_void_p) -> None:
        self._lib.fhe_close(handle)
