"""The strategy library against Flower's own implementations (flwr.serverapp.strategy).

Each case runs Flower's strategy and the FedHost plugin on the same random client models for
several rounds: Flower sees the clients' parameters, the plugin their deltas (parameters minus
the round's global model, as float32, as the bridge computes them). Both start every round
from Flower's global model, so any drift would come from the strategies' own state (momentum,
Adam moments), which each side carries on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord
from flwr.serverapp import strategy as flower

from conftest import FakeGrid, plugin_path, random_model, reply
from fedhost_flower import ArrayLayout, Update, load_plugin

ROUNDS = 6
TOLERANCE = 1e-5
EIGHT_SCALES = [0.02, 0.03, 0.05, 0.04, 0.06, 0.5, 0.025, 0.8]


@dataclass
class Case:
    plugin: str
    config: dict[str, float]
    flower: Callable[[], flower.Strategy]
    clients: int = 7
    #: Client k's delta is N(0, scale_k²): distinct scales keep distance rankings (Krum) unambiguous.
    scales: list[float] = field(default_factory=lambda: [0.02, 0.03, 0.05, 0.04, 0.06, 0.5, 0.025])


CASES = [
    Case("FedAvgM", {"server_learning_rate": 0.7, "server_momentum": 0.9},
         lambda: flower.FedAvgM(server_learning_rate=0.7, server_momentum=0.9)),
    Case("FedAvgM", {}, lambda: flower.FedAvgM()),
    Case("FedAdam", {}, lambda: flower.FedAdam()),
    Case("FedAdam", {"eta": 0.03, "beta_1": 0.5, "beta_2": 0.9, "tau": 1e-2},
         lambda: flower.FedAdam(eta=0.03, beta_1=0.5, beta_2=0.9, tau=1e-2)),
    Case("FedYogi", {}, lambda: flower.FedYogi()),
    Case("FedAdagrad", {}, lambda: flower.FedAdagrad()),
    Case("FedMedian", {}, lambda: flower.FedMedian()),
    Case("FedMedian", {}, lambda: flower.FedMedian(), clients=8, scales=EIGHT_SCALES),
    Case("FedTrimmedAvg", {}, lambda: flower.FedTrimmedAvg()),
    Case("FedTrimmedAvg", {"beta": 0.3}, lambda: flower.FedTrimmedAvg(beta=0.3), clients=8, scales=EIGHT_SCALES),
    Case("Krum", {"num_malicious_clients": 1}, lambda: flower.Krum(num_malicious_nodes=1)),
    Case("MultiKrum", {"num_malicious_clients": 1, "num_clients_to_keep": 3},
         lambda: flower.MultiKrum(num_malicious_nodes=1, num_nodes_to_select=3)),
    Case("Bulyan", {"num_malicious_clients": 1}, lambda: flower.Bulyan(num_malicious_nodes=1)),
    Case("Bulyan", {"num_malicious_clients": 1}, lambda: flower.Bulyan(num_malicious_nodes=1), clients=8,
         scales=EIGHT_SCALES),
    Case("QFedAvg", {}, lambda: flower.QFedAvg(client_learning_rate=0.1)),
    Case("QFedAvg", {"q": 2.0, "client_learning_rate": 0.5}, lambda: flower.QFedAvg(client_learning_rate=0.5, q=2.0)),
    # Without noise both sides must clip alike (norms 0.4 to 11: C = 1 clips 3 of the 7 clients, C = 3 one).
    Case("DPFedAvg", {"clipping_norm": 1.0},
         lambda: flower.DifferentialPrivacyServerSideFixedClipping(flower.FedAvg(), 0.0, 1.0, 7)),
    Case("DPFedAvg", {"clipping_norm": 3.0},
         lambda: flower.DifferentialPrivacyServerSideFixedClipping(flower.FedAvg(), 0.0, 3.0, 7)),
]


def flower_round(strategy: flower.Strategy, server_round: int, global_model: dict[str, np.ndarray],
                 replies: list) -> dict[str, np.ndarray]:
    arrays = ArrayRecord({k: Array(v) for k, v in global_model.items()})
    list(strategy.configure_train(server_round, arrays, ConfigRecord(), FakeGrid([r.metadata.src_node_id for r in replies])))
    new_arrays, _ = strategy.aggregate_train(server_round, replies)
    assert new_arrays is not None
    return {k: a.numpy() for k, a in new_arrays.items()}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.plugin}{c.config or ''}-{c.clients}")
def test_matches_flower(case: Case) -> None:
    rng = np.random.default_rng(2026)
    global_model = random_model(rng)
    layout = ArrayLayout.of(global_model)
    theirs = case.flower()
    ours = load_plugin(plugin_path(case.plugin)).create(case.config)
    worst = 0.0
    for server_round in range(1, ROUNDS + 1):
        models = [{k: (a + rng.normal(0, scale, a.shape)).astype(np.float32) for k, a in global_model.items()}
                  for scale in case.scales[: case.clients]]
        samples = [int(n) for n in rng.integers(5, 200, case.clients)]
        losses = [float(x) for x in rng.uniform(0.1, 2.0, case.clients)]
        replies = [reply(100 + k, model, {"num-examples": samples[k], "train_loss": losses[k]})
                   for k, model in enumerate(models)]
        global_vector = layout.flatten(global_model)
        updates = [Update(client_id=k, delta=layout.flatten(model) - global_vector, n_samples=samples[k],
                          metrics={"train_loss": losses[k]}) for k, model in enumerate(models)]
        expected = layout.flatten(flower_round(theirs, server_round, global_model, replies))
        actual, weights = ours.aggregate(server_round - 1, global_vector, updates)
        difference = float(np.max(np.abs(actual.astype(np.float64) - expected)))
        worst = max(worst, difference)
        assert difference <= TOLERANCE, f"round {server_round}: max |FedHost - Flower| = {difference:.3g}"
        assert np.all(np.isfinite(weights))
        global_model = layout.unflatten(expected)
    print(f"\n{case.plugin} {case.config}: max |FedHost - Flower| over {ROUNDS} rounds = {worst:.3g}")


def test_dp_noise_has_flowers_distribution() -> None:
    """The noise itself: FedHost's output minus its noiseless output, against N(0, (z*C/n)^2) and
    against Flower's noise (its output minus Flower's noiseless output) on the same round."""
    rng = np.random.default_rng(11)
    n_params, clients, z, clip = 200_003, 5, 1.3, 0.5
    sigma = z * clip / clients
    global_model = {"w": rng.normal(0, 1, n_params).astype(np.float32)}
    layout = ArrayLayout.of(global_model)
    models = [{"w": (global_model["w"] + rng.normal(0, 0.01, n_params)).astype(np.float32)} for _ in range(clients)]
    samples = [10, 20, 30, 40, 50]

    def flower_output(noise: float) -> np.ndarray:
        replies = [reply(100 + k, m, {"num-examples": samples[k]}) for k, m in enumerate(models)]
        strategy = flower.DifferentialPrivacyServerSideFixedClipping(flower.FedAvg(), noise, clip, clients)
        return layout.flatten(flower_round(strategy, 1, global_model, replies))

    updates = [Update(client_id=k, delta=m["w"] - global_model["w"], n_samples=samples[k]) for k, m in enumerate(models)]
    noiseless, _ = load_plugin(plugin_path("DPFedAvg")).create({"clipping_norm": clip}).aggregate(0, global_model["w"], updates)
    noisy_plugin = load_plugin(plugin_path("DPFedAvg")).create({"clipping_norm": clip, "noise_multiplier": z, "seed": 4})
    rounds = [noisy_plugin.aggregate(r, global_model["w"], updates)[0] for r in range(2)]
    ours = rounds[0].astype(np.float64) - noiseless
    theirs = flower_output(z) - flower_output(0.0)

    for name, noise in [("FedHost", ours), ("Flower", theirs)]:
        mean, std = float(noise.mean()), float(noise.std())
        within = float(np.mean(np.abs(noise) < sigma))
        print(f"\n{name} noise: mean {mean:.3g}, std {std:.5g} (expected {sigma:.5g}), within 1 sigma {within:.4f}")
        assert abs(mean) < 5 * sigma / np.sqrt(n_params)
        assert abs(std / sigma - 1) < 0.01
        assert abs(within - 0.6827) < 0.005
    # Each round draws fresh noise; the same seed replays it.
    assert np.corrcoef(ours, rounds[1].astype(np.float64) - noiseless)[0, 1] < 0.02
    replay = load_plugin(plugin_path("DPFedAvg")).create({"clipping_norm": clip, "noise_multiplier": z, "seed": 4})
    assert np.array_equal(replay.aggregate(0, global_model["w"], updates)[0], rounds[0])
