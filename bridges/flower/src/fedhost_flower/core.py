"""Framework-neutral glue between named model arrays and a plugin's flat float32 vector.

Both the Message-API strategy and the legacy wrapper use :class:`PluginAggregator`: it
flattens the global model and each client's model in one fixed order, forms the deltas,
maps Flower node ids to the plugin's stable client ids (0, 1, 2, … in order of first
appearance) and calls ``aggregate``.  No aggregation math happens here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .plugin import PluginError, PluginInstance, Update, load_plugin


@dataclass(frozen=True)
class ArrayLayout:
    """Names, shapes and dtypes of a model's arrays, in order: the flat vector's layout."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray]) -> ArrayLayout:
        for name, array in arrays.items():
            if not np.issubdtype(array.dtype, np.floating):
                raise TypeError(
                    f"array {name!r} has dtype {array.dtype}: plugins aggregate float parameters only "
                    "(leave integer buffers such as BatchNorm counters out of the ArrayRecord)"
                )
        return cls(
            tuple(arrays),
            tuple(tuple(a.shape) for a in arrays.values()),
            tuple(a.dtype for a in arrays.values()),
        )

    @property
    def size(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.shapes)

    def flatten(self, arrays: Mapping[str, np.ndarray], owner: str = "model") -> np.ndarray:
        """One float32 vector, the arrays concatenated in layout order (checked names/shapes)."""
        if tuple(arrays) != self.names:
            raise ValueError(f"{owner}: array names {list(arrays)} differ from the global model's {list(self.names)}")
        for name, shape in zip(self.names, self.shapes, strict=True):
            if tuple(arrays[name].shape) != shape:
                raise ValueError(f"{owner}: array {name!r} has shape {arrays[name].shape}, the global model {shape}")
        if not self.names:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([np.asarray(arrays[n], dtype=np.float32).reshape(-1) for n in self.names])

    def unflatten(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        """The inverse of :meth:`flatten`, each array back in its original shape and dtype."""
        out: dict[str, np.ndarray] = {}
        start = 0
        for name, shape, dtype in zip(self.names, self.shapes, self.dtypes, strict=True):
            count = int(np.prod(shape))
            out[name] = vector[start : start + count].reshape(shape).astype(dtype)
            start += count
        return out


@dataclass
class ClientResult:
    """A client's trained model and what it reported, independent of the Flower API."""

    node: Hashable
    arrays: Mapping[str, np.ndarray]
    n_samples: int
    metrics: Mapping[str, float] = field(default_factory=dict)


def scalar_metrics(metrics: Mapping[str, Any], skip: str = "") -> dict[str, float]:
    """The numeric scalar metrics (lists and ``skip`` left out), as the plugin's named metrics."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if k != skip and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def open_plugin(plugin: str | os.PathLike[str] | PluginInstance, config: Mapping[str, Any] | None) -> PluginInstance:
    """A plugin instance from a path/name plus config, or an instance passed through."""
    if isinstance(plugin, PluginInstance):
        if config:
            raise ValueError("pass plugin_config only together with a plugin path, not with an instance")
        return plugin
    return load_plugin(plugin).create(config)


def config_value(instance: PluginInstance, key: str) -> Any:
    """The effective value of a config key: the one given at create, else the descriptor default."""
    if key in instance.config:
        return instance.config[key]
    described = instance.descriptor.config_key(key)
    return described.default if described else None


def proximal_mu(instance: PluginInstance) -> float | None:
    """The μ a FedProx-like plugin (one with a ``mu`` config key) wants clients to use, else None."""
    mu = config_value(instance, "mu")
    return None if mu is None else float(mu)

_log = logging.getLogger("fedhost_flower.core")


def client_side_refusal(instance: PluginInstance) -> str | None:
    """Why a plugin's client side cannot run with a strategy whose clients are not FedHost's
    (None when it can): train_local needs FedHost's trainer as gradient oracle, and an
    adjust_gradient other than FedProx's μ has nothing to tell Flower's clients."""
    if instance.library.function("train_local") is not None:
        return ("its train_local (client-side procedure) cannot run in Flower ClientApps that are not FedHost's; "
                "run it with host")
    if instance.library.function("adjust_gradient") is not None and proximal_mu(instance) is None:
        return ("its adjust_gradient has no mu key to send to Flower's clients as proximal-mu; "
                "run it in the FedHost app (bridges/flower/examples/fedhost)")
    return None


class PluginAggregator:
    """Runs one plugin instance's ``aggregate`` on named arrays."""

    def __init__(self, instance: PluginInstance, server_side_only: bool = False) -> None:
        """``server_side_only``: run a plugin whose client side cannot run here (MEFL's
        train_local) for its aggregate alone, as the caller's explicit choice."""
        if instance.library.function("aggregate") is None:
            raise PluginError("not an aggregator (its vtable has no aggregate)", plugin=instance.descriptor.name)
        refusal = client_side_refusal(instance)
        if refusal and not server_side_only:
            raise PluginError(refusal + " (or pass server_side_only=True to aggregate without it)",
                              plugin=instance.descriptor.name)
        if instance.library.function("initialize") is not None:
            _log.warning("[%s] a Flower strategy runs only aggregate: its initialize (Phase 1) does not run here; "
                         "the FedHost app (bridges/flower/examples/fedhost) runs it", instance.descriptor.name)
        self.instance = instance
        #: Flower node id → the plugin's client id (stable across rounds, 0..n-1).
        self.client_ids: dict[Hashable, int] = {}

    def client_id(self, node: Hashable) -> int:
        return self.client_ids.setdefault(node, len(self.client_ids))

    def aggregate(
        self, round_index: int, global_arrays: Mapping[str, np.ndarray], results: Sequence[ClientResult]
    ) -> tuple[dict[str, np.ndarray], list[float], list[int]]:
        """New global arrays, the plugin's effective weights and client ids (in ``results`` order)."""
        layout = ArrayLayout.of(global_arrays)
        global_vector = layout.flatten(global_arrays, "global model")
        updates = [
            Update(
                client_id=self.client_id(result.node),
                delta=layout.flatten(result.arrays, f"node {result.node}") - global_vector,
                n_samples=int(result.n_samples),
                metrics=dict(result.metrics),
            )
            for result in results
        ]
        try:
            new_vector, weights = self.instance.aggregate(round_index, global_vector, updates)
        except PluginError as err:
            nodes = ", ".join(f"client {u.client_id} = node {r.node}" for u, r in zip(updates, results, strict=True))
            raise PluginError(f"{err.message} [round {round_index}; {nodes}]", err.status, err.plugin) from None
        return layout.unflatten(new_vector), [float(w) for w in weights], [u.client_id for u in updates]
