"""ctypes mirror of ``Sources/PluginAPI/include/fedhost_plugin.h`` at its ABI 1.0 layout (LP64).

The bridge is an ABI 1.0 host: its ``fhp_host`` ends after ``log`` (no 1.1 ``parallel_for``),
which the header's rule 2 makes valid for plugins of any 1.x minor; they then run their
tasks on the calling thread.

Only layout lives here: the structs exactly as the header declares them, the status codes and
kind bits, and :func:`read_sized`, which reads a plugin-owned struct the way rule 2 of the
header demands (members that do not lie entirely within ``struct_size`` are treated as zero).
"""

from __future__ import annotations

import ctypes
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_double,
    c_float,
    c_int32,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import TypeVar

ABI_MAJOR = 1
#: This host's fhp_host is the 1.0 struct (no parallel_for, no get_extension), but it knows the
#: 1.2 vtable members (aggregate_round, prepare_client) and the 1.2 descriptor.
ABI_MINOR = 2
ENTRY_SYMBOL = "fedhost_plugin_entry"

# fhp_status codes.
FHP_OK = 0
STATUS_NAMES = {
    -1: "FHP_E_INVALID",
    -2: "FHP_E_UNSUPPORTED",
    -3: "FHP_E_VERSION",
    -4: "FHP_E_NOMEM",
    -5: "FHP_E_HOST",
    -6: "FHP_E_STATE",
    -7: "FHP_E_NUMERIC",
    -99: "FHP_E_INTERNAL",
}
FHP_E_VERSION = -3
FHP_E_STATE = -6

# fhp_descriptor.kinds bits.
KIND_AGGREGATOR = 1 << 0
KIND_INITIALIZER = 1 << 1
KIND_CLIENT_HOOK = 1 << 2
KIND_NAMES = {KIND_AGGREGATOR: "aggregator", KIND_INITIALIZER: "initializer", KIND_CLIENT_HOOK: "client-hook"}

# Log levels of fhp_host.log.
LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR = 0, 1, 2, 3

fhp_status = c_int32


class fhp_config_key(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("reserved", c_uint32),
        ("key", c_char_p),
        ("type", c_char_p),
        ("default_json", c_char_p),
        ("description", c_char_p),
    ]


class fhp_descriptor(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("abi_major", c_uint32),
        ("abi_minor", c_uint32),
        ("kinds", c_uint32),
        ("id", c_char_p),
        ("name", c_char_p),
        ("version", c_char_p),
        ("description", c_char_p),
        ("config_keys", c_void_p),  # stepped by config_keys[0].struct_size, see read_array
        ("n_config_keys", c_uint32),
        ("reserved", c_uint32),
        # ABI 1.2: auxiliary vectors per client and round (each n_params floats).
        ("n_aux_down", c_uint32),
        ("n_aux_up", c_uint32),
    ]


class fhp_metric(Structure):
    """Frozen for good: no struct_size, stride is sizeof(fhp_metric)."""

    _fields_ = [("key", c_char_p), ("value", c_double)]


class fhp_update(Structure):
    """Frozen since ABI 1.2: struct_size is always sizeof(fhp_update)."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("client_id", c_uint32),
        ("delta", POINTER(c_float)),
        ("n_params", c_uint64),
        ("n_samples", c_uint64),
        ("coverage", POINTER(c_uint8)),
        ("metrics", POINTER(fhp_metric)),
        ("n_metrics", c_uint32),
        ("flags", c_uint32),
    ]


LOG_FN = CFUNCTYPE(None, c_void_p, c_int32, c_char_p)
REPORT_METRIC_FN = CFUNCTYPE(fhp_status, c_void_p, c_char_p, c_double)


class fhp_round_context(Structure):
    """ABI 1.2: the round an aggregator works on (aggregate_round, prepare_client)."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("round", c_uint32),
        ("n_rounds", c_uint32),
        ("n_clients", c_uint32),
        ("sampled", POINTER(c_uint32)),
        ("n_sampled", c_uint32),
        ("n_failed", c_uint32),
        ("failed", POINTER(c_uint32)),
        ("aux_up", POINTER(POINTER(c_float))),
        ("aux_up_len", c_uint64),
        ("ctx", c_void_p),
        ("report_metric", REPORT_METRIC_FN),
        ("last_error", CFUNCTYPE(c_void_p, c_void_p)),
        # select_clients only (the bridge never calls it: see protocol.strategy_plugins).
        ("sample_counts", POINTER(c_uint64)),
        ("client_loss", c_void_p),
    ]


class fhp_host(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("reserved", c_uint32),
        ("ctx", c_void_p),
        ("host_name", c_char_p),
        ("host_version", c_char_p),
        ("log", LOG_FN),
    ]


TRAIN_CLIENT_FN = CFUNCTYPE(fhp_status, c_void_p, c_uint32, POINTER(c_float), c_uint64, c_uint32, POINTER(c_double))
EVALUATE_CLIENT_FN = CFUNCTYPE(
    fhp_status, c_void_p, c_uint32, POINTER(c_float), c_uint64, POINTER(c_double), POINTER(c_double)
)
OPS_LAST_ERROR_FN = CFUNCTYPE(c_void_p, c_void_p)


class fhp_initializer_ops(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("n_clients", c_uint32),
        ("ctx", c_void_p),
        ("train_client", TRAIN_CLIENT_FN),
        ("evaluate_client", EVALUATE_CLIENT_FN),
        ("last_error", OPS_LAST_ERROR_FN),
    ]


# Function pointer types of the vtable.  The client ops of train_local stay c_void_p: the
# bridge runs client hooks in FedHost's engine (libFedHostEngine.so), never through ctypes.
CREATE_FN = CFUNCTYPE(fhp_status, POINTER(fhp_host), c_char_p, POINTER(c_void_p))
DESTROY_FN = CFUNCTYPE(None, c_void_p)
LAST_ERROR_FN = CFUNCTYPE(c_char_p, c_void_p)
GET_EXTENSION_FN = CFUNCTYPE(c_void_p, c_void_p, c_char_p)
AGGREGATE_FN = CFUNCTYPE(
    fhp_status, c_void_p, c_uint32, POINTER(c_float), c_uint64, c_void_p, c_uint32,
    POINTER(c_float), POINTER(c_double),
)
INITIALIZE_FN = CFUNCTYPE(fhp_status, c_void_p, POINTER(fhp_initializer_ops), POINTER(c_float), c_uint64)
ADJUST_GRADIENT_FN = CFUNCTYPE(
    fhp_status, c_void_p, c_uint32, POINTER(c_float), POINTER(c_float), POINTER(c_float), c_uint64
)
TRAIN_LOCAL_FN = CFUNCTYPE(fhp_status, c_void_p, c_void_p, POINTER(c_float), c_uint64)
SAVE_STATE_FN = CFUNCTYPE(fhp_status, c_void_p, POINTER(c_uint8), c_uint64, POINTER(c_uint64))
LOAD_STATE_FN = CFUNCTYPE(fhp_status, c_void_p, POINTER(c_uint8), c_uint64)
AGGREGATE_ROUND_FN = CFUNCTYPE(
    fhp_status, c_void_p, POINTER(fhp_round_context), POINTER(c_float), c_uint64, c_void_p, c_uint32,
    POINTER(c_float), POINTER(c_double),
)
PREPARE_CLIENT_FN = CFUNCTYPE(
    fhp_status, c_void_p, POINTER(fhp_round_context), c_uint32, POINTER(c_float), c_uint64, POINTER(c_float), c_uint64
)


class fhp_vtable(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("reserved", c_uint32),
        ("create", CREATE_FN),
        ("destroy", DESTROY_FN),
        ("last_error", LAST_ERROR_FN),
        ("get_extension", GET_EXTENSION_FN),
        ("aggregate", AGGREGATE_FN),
        ("initialize", INITIALIZE_FN),
        ("adjust_gradient", ADJUST_GRADIENT_FN),
        ("train_local", TRAIN_LOCAL_FN),
        ("save_state", SAVE_STATE_FN),
        ("load_state", LOAD_STATE_FN),
        # ABI 1.2 (adjust_gradient_in_context runs in the engine, never through ctypes).
        ("aggregate_round", AGGREGATE_ROUND_FN),
        ("prepare_client", PREPARE_CLIENT_FN),
        ("adjust_gradient_in_context", c_void_p),
        ("select_clients", c_void_p),
    ]


ENTRY_FN = CFUNCTYPE(
    fhp_status, c_uint32, c_uint32, POINTER(POINTER(fhp_descriptor)), POINTER(POINTER(fhp_vtable))
)

S = TypeVar("S", bound=Structure)


def member_end(struct: type[Structure], name: str) -> int:
    """``offsetof(struct, name) + sizeof(member)``: the struct_size that includes ``name``."""
    field = getattr(struct, name)
    return field.offset + field.size


def read_sized(address: int, struct: type[S]) -> S:
    """Copy a peer-owned struct whose first member is ``uint32_t struct_size``.

    Members that do not lie entirely within the peer's struct_size read as zero/NULL
    (header rule 2, ``FHP_HAS_MEMBER``); a larger struct_size (a newer peer) is fine.
    """
    size = c_uint32.from_address(address).value
    out = struct()
    ctypes.memmove(ctypes.addressof(out), address, min(size, ctypes.sizeof(struct)))
    for name, *_ in struct._fields_:
        if member_end(struct, name) > size:
            field = getattr(struct, name)
            ctypes.memset(ctypes.addressof(out) + field.offset, 0, field.size)
    return out


def read_array(address: int, count: int, struct: type[S]) -> list[S]:
    """Read ``count`` structs stepping by the FIRST element's struct_size (header rule 2)."""
    if count == 0 or not address:
        return []
    stride = c_uint32.from_address(address).value
    return [read_sized(address + i * stride, struct) for i in range(count)]
