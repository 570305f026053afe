"""The thin legacy-API wrapper against legacy flwr.server.strategy.FedAvg / FedProx."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

legacy_flwr = pytest.importorskip("flwr.server.strategy")
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays  # noqa: E402

from fedhost_flower.legacy import LegacyPluginStrategy  # noqa: E402

from conftest import plugin_path, random_model  # noqa: E402


class FakeClientManager:
    """configure_fit samples from this: every client, always available."""

    def __init__(self, n: int) -> None:
        self.clients = [SimpleNamespace(cid=f"c{i}") for i in range(n)]

    def num_available(self) -> int:
        return len(self.clients)

    def sample(self, num_clients: int, min_num_clients: int | None = None) -> list:
        return self.clients[:num_clients]


def test_legacy_wrapper_matches_legacy_fedprox() -> None:
    rng = np.random.default_rng(1)
    global_model = list(random_model(rng).values())
    manager = FakeClientManager(3)
    results = [
        (client, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(
            [a + rng.normal(0, 0.1, a.shape).astype(np.float32) for a in global_model]), n, {"query_loss": 0.3}))
        for client, n in zip(manager.clients, [10, 40, 25])
    ]
    ours = LegacyPluginStrategy(plugin_path("FedProx"), {"mu": 0.5})
    theirs = legacy_flwr.FedProx(proximal_mu=0.5)
    fit_ours = ours.configure_fit(1, ndarrays_to_parameters(global_model), manager)
    fit_theirs = theirs.configure_fit(1, ndarrays_to_parameters(global_model), manager)
    assert [ins.config["proximal_mu"] for _, ins in fit_ours] == [ins.config["proximal_mu"] for _, ins in fit_theirs]
    params_ours, metrics = ours.aggregate_fit(1, results, [])
    params_theirs, _ = theirs.aggregate_fit(1, results, [])
    for a, b in zip(parameters_to_ndarrays(params_ours), parameters_to_ndarrays(params_theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert [metrics[f"fedhost-weight-{i}"] for i in range(3)] == pytest.approx([10 / 75, 40 / 75, 25 / 75])
