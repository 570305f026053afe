"""A FedHost plugin as a LEGACY Flower strategy (``flwr.server.strategy``, deprecated upstream).

Same mapping as :class:`fedhost_flower.PluginStrategy`, on the legacy types: ``Parameters``
↔ list of ndarrays, ``FitRes.num_examples`` → n_samples, ``FitRes.metrics`` → named metrics,
``ClientProxy.cid`` → stable client id, ``proximal_mu`` (underscore, as legacy FedProx) in
the fit config.  Legacy metrics cannot hold lists, so the plugin's weights are reported as
``fedhost-weight-<client id>``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flwr.common import FitIns, FitRes, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg as LegacyFedAvg

from .core import ClientResult, PluginAggregator, open_plugin, proximal_mu, scalar_metrics
from .plugin import PluginInstance


def _named(ndarrays: list[Any]) -> dict[str, Any]:
    return {str(i): a for i, a in enumerate(ndarrays)}


class LegacyPluginStrategy(LegacyFedAvg):
    """Legacy ``FedAvg`` whose ``aggregate_fit`` is a FedHost plugin's ``aggregate``."""

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
        self.proximal_mu: float | None = proximal_mu(self.plugin)
        self._global: dict[str, Any] | None = None

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self._global = _named(parameters_to_ndarrays(parameters))
        pairs = super().configure_fit(server_round, parameters, client_manager)
        if self.proximal_mu is None:
            return pairs
        return [(c, FitIns(ins.parameters, {**ins.config, "proximal_mu": self.proximal_mu})) for c, ins in pairs]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        if not results or (failures and not self.accept_failures):
            return None, {}
        if self._global is None:
            raise RuntimeError("aggregate_fit before configure_fit: the global model of the round is unknown")
        client_results = [
            ClientResult(proxy.cid, _named(parameters_to_ndarrays(res.parameters)), res.num_examples,
                         scalar_metrics(res.metrics))
            for proxy, res in results
        ]
        arrays, weights, ids = self.aggregator.aggregate(server_round - 1, self._global, client_results)
        metrics: dict[str, Scalar] = {}
        if self.fit_metrics_aggregation_fn:
            metrics = dict(self.fit_metrics_aggregation_fn([(r.num_examples, r.metrics) for _, r in results]))
        metrics.update({f"fedhost-weight-{cid}": w for cid, w in zip(ids, weights, strict=True)})
        return ndarrays_to_parameters(list(arrays.values())), metrics
