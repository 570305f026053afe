"""PluginStrategy against Flower's own strategies on the same replies, plus errors and state."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord
from flwr.serverapp.strategy import FedAvg, FedProx

from fedhost_flower import PluginError, PluginStrategy
from fedhost_flower.strategy import record_to_numpy, numpy_to_record

from conftest import FakeGrid, plugin_path, random_model, reply

NODES = [1000, 1001, 1002, 1003]


def run_round(strategy, global_model, replies, server_round: int = 1):
    """configure_train (which gives the strategy the round's global model), then aggregate_train."""
    config = ConfigRecord()
    messages = list(strategy.configure_train(server_round, numpy_to_record(global_model), config, FakeGrid(NODES)))
    arrays, metrics = strategy.aggregate_train(server_round, replies)
    return record_to_numpy(arrays), metrics, config, messages


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert list(a) == list(b)
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)


def assert_equivalent(ours, theirs, metrics, flower_metrics, replies) -> float:
    """Same names/shapes/dtypes, values equal to float32 tolerance; metrics as Flower's."""
    assert [(k, v.shape, v.dtype) for k, v in ours.items()] == [(k, v.shape, v.dtype) for k, v in theirs.items()]
    diff = max_abs_diff(ours, theirs)
    assert diff <= 4 * np.finfo(np.float32).eps * max(float(np.max(np.abs(v))) for v in theirs.values())
    counts = np.array([next(iter(r.content.metric_records.values()))["num-examples"] for r in replies], float)
    np.testing.assert_allclose(metrics["fedhost-weights"], counts / counts.sum(), rtol=1e-12)
    assert {k: v for k, v in metrics.items() if not k.startswith("fedhost-")} == pytest.approx(dict(flower_metrics))
    return diff


def test_fedavg_plugin_equals_flower_fedavg(federation, record_property) -> None:
    global_model, replies = federation
    ours, metrics, _, _ = run_round(PluginStrategy(plugin_path("FedAvg")), global_model, replies)
    theirs, flower_metrics, _, _ = run_round(FedAvg(), global_model, replies)
    diff = assert_equivalent(ours, theirs, metrics, flower_metrics, replies)
    record_property("max_abs_diff_fedavg", diff)
    print(f"\nFedAvg plugin vs flwr FedAvg: max abs diff {diff:.3e}")


def test_fedprox_plugin_equals_flower_fedprox(federation, record_property) -> None:
    global_model, replies = federation
    ours, metrics, our_config, our_msgs = run_round(
        PluginStrategy(plugin_path("FedProx"), {"mu": 0.25}), global_model, replies)
    theirs, flower_metrics, flower_config, flower_msgs = run_round(
        FedProx(proximal_mu=0.25), global_model, replies)
    diff = assert_equivalent(ours, theirs, metrics, flower_metrics, replies)
    assert our_config["proximal-mu"] == flower_config["proximal-mu"] == 0.25
    assert all(m.content["config"]["proximal-mu"] == 0.25 for m in our_msgs)
    assert len(our_msgs) == len(flower_msgs) == len(NODES)
    record_property("max_abs_diff_fedprox", diff)
    print(f"\nFedProx plugin vs flwr FedProx: max abs diff {diff:.3e}")


def test_fedprox_mu_defaults_to_the_plugin_default() -> None:
    assert PluginStrategy(plugin_path("FedProx")).proximal_mu == 0.01
    assert PluginStrategy(plugin_path("FedAvg")).proximal_mu is None


def test_float64_arrays_round_trip_with_their_dtype(federation) -> None:
    global_model, replies = federation
    g64 = {k: v.astype(np.float64) for k, v in global_model.items()}
    r64 = [reply(r.metadata.src_node_id, {k: a.numpy().astype(np.float64) for k, a in r.content["arrays"].items()},
                 dict(r.content["metrics"])) for r in replies]
    ours, _, _, _ = run_round(PluginStrategy(plugin_path("FedAvg")), g64, r64)
    theirs, _, _, _ = run_round(FedAvg(), g64, r64)
    assert all(v.dtype == np.float64 for v in ours.values())
    assert max_abs_diff(ours, theirs) < 1e-5


def test_similarity_aware_receives_query_loss(federation) -> None:
    global_model, replies = federation
    _, metrics, _, _ = run_round(PluginStrategy(plugin_path("SimilarityAware")), global_model, replies)
    weights = np.array(metrics["fedhost-weights"])
    assert weights.sum() == pytest.approx(1.0)
    # FedAvg's weights would follow num-examples (30, 120, 7, 55); query scores 1/(1+L) do not.
    assert np.argmax(weights) != 1 or np.ptp(weights) < 0.2


def test_nan_update_raises_naming_client_and_node(federation) -> None:
    global_model, replies = federation
    poisoned = {k: v.copy() for k, v in global_model.items()}
    poisoned["fc.b"][3] = np.nan
    replies[2] = reply(1002, poisoned, dict(replies[2].content["metrics"]))
    strategy = PluginStrategy(plugin_path("FedAvg"))
    with pytest.raises(PluginError) as err:
        run_round(strategy, global_model, replies)
    client = strategy.aggregator.client_ids[1002]
    assert f"client {client}" in str(err.value) and f"client {client} = node 1002" in str(err.value)
    assert err.value.status_name == "FHP_E_NUMERIC"


def test_shape_mismatch_names_the_node(federation) -> None:
    global_model, replies = federation
    wrong = dict(global_model, **{"fc.b": np.zeros(11, np.float32)})
    replies[0] = reply(1000, wrong, dict(replies[0].content["metrics"]))
    with pytest.raises(ValueError, match=r"node 1000: array 'fc.b' has shape \(11,\)"):
        run_round(PluginStrategy(plugin_path("FedAvg")), global_model, replies)


def test_client_ids_are_stable_across_rounds(federation) -> None:
    global_model, replies = federation
    strategy = PluginStrategy(plugin_path("FedAvg"))
    _, first, _, _ = run_round(strategy, global_model, replies)
    _, second, _, _ = run_round(strategy, global_model, list(reversed(replies)), server_round=2)
    assert second["fedhost-client-ids"] == list(reversed(first["fedhost-client-ids"]))


def test_mefl_state_round_trip_through_the_bridge(federation) -> None:
    """Round 1 on A, save; B loads it: round 2 on A and B agree; a fresh C (no state) differs."""
    global_model, replies = federation
    config = {"seed": 5, "variance_mode": "v2"}
    a, b, c = (PluginStrategy(plugin_path("MEFLVariance"), config, server_side_only=True) for _ in range(3))
    after_round1, _, _, _ = run_round(a, global_model, replies)
    state = a.save_state()
    assert len(state) > 0
    b.load_state(state)
    for s in (b, c):  # B and C must know the same nodes as A under the same client ids
        s.aggregator.client_ids.update(a.aggregator.client_ids)
    rng = np.random.default_rng(11)
    replies2 = [reply(r.metadata.src_node_id,
                      {k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in after_round1.items()},
                      dict(r.content["metrics"])) for r in replies]
    out_a, m_a, _, _ = run_round(a, after_round1, replies2, server_round=2)
    out_b, m_b, _, _ = run_round(b, after_round1, replies2, server_round=2)
    out_c, m_c, _, _ = run_round(c, after_round1, replies2, server_round=2)
    assert max_abs_diff(out_a, out_b) == 0.0 and m_a["fedhost-weights"] == m_b["fedhost-weights"]
    assert m_a["fedhost-weights"] != pytest.approx(m_c["fedhost-weights"])
    assert b.save_state() == a.save_state()


def test_plugin_without_aggregate_is_refused_at_construction(stub_plugin) -> None:
    with pytest.raises(PluginError, match="not an aggregator"):
        PluginStrategy(stub_plugin("Short2", vt_size="offsetof(fhp_vtable, aggregate)"))


def test_random_models_many_rounds_match_flower(record_property) -> None:
    """Five chained rounds, fresh client models each time: the two strategies stay together."""
    rng = np.random.default_rng(3)
    ours_model = theirs_model = random_model(rng)
    ours_s, theirs_s = PluginStrategy(plugin_path("FedAvg")), FedAvg()
    worst = 0.0
    for rnd in range(1, 6):
        noise = [{k: rng.normal(0, 0.5, v.shape).astype(np.float32) for k, v in ours_model.items()} for _ in NODES]
        counts = rng.integers(1, 500, len(NODES))
        ours_replies = [reply(n, {k: ours_model[k] + d[k] for k in d}, {"num-examples": int(c)})
                        for n, d, c in zip(NODES, noise, counts)]
        theirs_replies = [reply(n, {k: theirs_model[k] + d[k] for k in d}, {"num-examples": int(c)})
                          for n, d, c in zip(NODES, noise, counts)]
        ours_model, *_ = run_round(ours_s, ours_model, ours_replies, rnd)
        theirs_model, *_ = run_round(theirs_s, theirs_model, theirs_replies, rnd)
        worst = max(worst, max_abs_diff(ours_model, theirs_model))
    assert worst < 1e-5
    record_property("max_abs_diff_fedavg_5_rounds", worst)


def test_a_client_side_the_clients_cannot_run_is_refused() -> None:
    """MEFL's Meta-GDP (train_local) needs FedHost's trainer: refused unless asked for server-side only."""
    with pytest.raises(PluginError, match="its train_local .* cannot run in Flower ClientApps") as caught:
        PluginStrategy(plugin_path("MEFLVariance"))
    assert "\n" not in str(caught.value)
