"""A FedHost plugin as a Flower (Message API, flwr >= 1.21) server strategy."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from logging import INFO
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.supercore import log

from .core import ClientResult, PluginAggregator, open_plugin, proximal_mu, scalar_metrics
from .plugin import PluginInstance

#: Config key Flower's FedProx (Message API) sends μ under.
PROXIMAL_MU_KEY = "proximal-mu"


def record_to_numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    """An ArrayRecord as an ordered name → ndarray dict."""
    return {name: array.numpy() for name, array in record.items()}


def numpy_to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """The inverse of :func:`record_to_numpy` (same names, same order)."""
    return ArrayRecord({name: Array(np.ascontiguousarray(a)) for name, a in arrays.items()})


class PluginStrategy(FedAvg):
    """Flower's FedAvg with ``aggregate_train`` done by a FedHost plugin.

    Sampling, messaging, evaluation and metric averaging are Flower's FedAvg; the new global
    arrays come from the plugin's ``aggregate``:

    * the global ArrayRecord of the round (cached in ``configure_train``) and each reply's
      ArrayRecord are flattened into one float32 vector (same names, order and shapes);
    * each reply becomes an ``fhp_update``: delta = client − global, n_samples = the reply
      metric ``weighted_by_key`` (``"num-examples"``), metrics = the reply's other scalar
      metrics (e.g. ``"query_loss"``), client id = a stable index per Flower node;
    * the returned MetricRecord is FedAvg's weighted mean of the client metrics plus
      ``fedhost-weights`` (the plugin's effective weight per reply) and ``fedhost-client-ids``.

    If the plugin declares a ``mu`` config key (FedProx-like client side), ``configure_train``
    sends μ to the clients as ``"proximal-mu"``, exactly as Flower's FedProx does.

    Parameters
    ----------
    plugin : path, bare name (looked up in $FEDHOST_PLUGIN_DIR, $FEDHOST_PLUGIN_PATH) or an
        existing :class:`PluginInstance`.
    plugin_config : the plugin's JSON config as a dict, e.g. ``{"mu": 0.1, "seed": 1}``.
    server_side_only : run a plugin whose client side cannot run in Flower's clients (a
        ``train_local``, an ``adjust_gradient`` without ``mu``) for its ``aggregate`` alone;
        without it such a plugin is refused with one line.
    **fedavg_kwargs : passed to ``flwr.serverapp.strategy.FedAvg`` (fraction_train,
        min_train_nodes, weighted_by_key, ...).
    """

    def __init__(
        self,
        plugin: str | os.PathLike[str] | PluginInstance,
        plugin_config: Mapping[str, Any] | None = None,
        server_side_only: bool = False,
        **fedavg_kwargs: Any,
    ) -> None:
        super().__init__(**fedavg_kwargs)
        self.plugin = open_plugin(plugin, plugin_config)
        self.aggregator = PluginAggregator(self.plugin, server_side_only)
        #: μ sent as "proximal-mu" in every train config, or None for non-proximal plugins.
        self.proximal_mu: float | None = proximal_mu(self.plugin)
        self._global: dict[str, np.ndarray] | None = None

    def summary(self) -> None:
        """Log the plugin, then FedAvg's sampling settings."""
        d = self.plugin.descriptor
        log(INFO, "\t├──> FedHost plugin: %s %s (%s) from %s", d.name, d.version, d.id, self.plugin.library.path)
        log(INFO, "\t│\t└── config: %s", self.plugin.config_json)
        super().summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's configure_train; remembers the global arrays and adds ``proximal-mu``."""
        self._global = record_to_numpy(arrays)
        if self.proximal_mu is not None:
            config[PROXIMAL_MU_KEY] = self.proximal_mu
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The plugin's aggregate over the valid replies (Flower rounds are 1-based, plugin's 0-based)."""
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        if self._global is None:
            raise RuntimeError("aggregate_train before configure_train: the global model of the round is unknown")
        results = [self._client_result(msg) for msg in valid]
        arrays, weights, client_ids = self.aggregator.aggregate(server_round - 1, self._global, results)
        metrics = self.train_metrics_aggr_fn([msg.content for msg in valid], self.weighted_by_key)
        metrics["fedhost-weights"] = weights
        metrics["fedhost-client-ids"] = client_ids
        return numpy_to_record(arrays), metrics

    def _client_result(self, msg: Message) -> ClientResult:
        content = msg.content
        # Replies were validated by FedAvg: exactly one ArrayRecord and one MetricRecord.
        record = next(iter(content.array_records.values()))
        metrics = next(iter(content.metric_records.values()))
        return ClientResult(
            node=msg.metadata.src_node_id,
            arrays=record_to_numpy(record),
            n_samples=int(metrics[self.weighted_by_key]),
            metrics=scalar_metrics(metrics, skip=self.weighted_by_key),
        )

    def save_state(self) -> bytes:
        """The plugin's state (for checkpoints); the node → client id map is ``aggregator.client_ids``."""
        return self.plugin.save_state()

    def load_state(self, state: bytes) -> None:
        """Restore :meth:`save_state` output."""
        self.plugin.load_state(state)
