"""The ctypes layer: loading, negotiation, descriptor, errors, state, coverage, struct_size."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from fedhost_flower import PluginError, PluginLoadError, Update, load_plugin
from fedhost_flower import abi

from conftest import plugin_path


def test_struct_layout_matches_the_headers_layout_on_lp64() -> None:
    # fhp_host stops at 1.0's end (40 bytes; 1.1 appended parallel_for, 1.2 get_extension): the
    # bridge offers no host services beyond log, but knows the 1.2 descriptor and vtable.
    sizes = {abi.fhp_config_key: 40, abi.fhp_descriptor: 72, abi.fhp_metric: 16, abi.fhp_update: 56,
             abi.fhp_host: 40, abi.fhp_vtable: 120, abi.fhp_round_context: 96}
    assert {s.__name__: ctypes.sizeof(s) for s in sizes} == {s.__name__: n for s, n in sizes.items()}
    assert abi.fhp_update.coverage.offset == 32 and abi.fhp_vtable.aggregate.offset == 40
    assert abi.fhp_vtable.aggregate_round.offset == 88 and abi.fhp_round_context.report_metric.offset == 64


@pytest.mark.parametrize(
    ("name", "plugin_id", "kinds", "keys"),
    [
        ("FedAvg", "org.fedhost.fedavg", ["aggregator"], {"seed"}),
        ("FedProx", "org.fedhost.fedprox", ["aggregator", "client-hook"], {"seed", "mu"}),
        ("SimilarityAware", "org.fedhost.similarity-aware", ["aggregator", "initializer"],
         {"seed", "similarity_floor", "server_learning_rate", "serial_rounds", "serial_epochs"}),
    ],
)
def test_descriptor(name: str, plugin_id: str, kinds: list[str], keys: set[str]) -> None:
    d = load_plugin(plugin_path(name)).descriptor
    # Built against the 1.2 header; the bridge loads them all the same.
    assert (d.id, d.abi, d.kind_names) == (plugin_id, (1, 2), kinds)
    assert {k.key for k in d.config_keys} == keys


def test_fedprox_mu_default_from_descriptor() -> None:
    key = load_plugin(plugin_path("FedProx")).descriptor.config_key("mu")
    assert key is not None and key.type == "number" and key.default == 0.01


def test_bare_name_is_found_in_plugin_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDHOST_PLUGIN_DIR", str(plugin_path("FedAvg").parent))
    assert load_plugin("libFedAvg.so").descriptor.id == "org.fedhost.fedavg"


def test_bad_path_is_one_clear_line(tmp_path) -> None:
    with pytest.raises(PluginLoadError) as err:
        load_plugin(tmp_path / "libNope.so")
    assert "libNope.so" in str(err.value) and "no such file" in str(err.value) and "\n" not in str(err.value)


def test_not_a_shared_object(tmp_path) -> None:
    junk = tmp_path / "libJunk.so"
    junk.write_text("not an ELF file")
    with pytest.raises(PluginLoadError, match="cannot load plugin"):
        load_plugin(junk)


def test_abi_major_mismatch_is_refused(stub_plugin) -> None:
    with pytest.raises(PluginLoadError) as err:
        load_plugin(stub_plugin("Major2", major=2))
    assert "built for plugin ABI 2.0" in str(err.value) and "ABI 1.2" in str(err.value)
    assert "\n" not in str(err.value)


def test_shared_object_without_entry_is_not_a_plugin(stub_plugin) -> None:
    with pytest.raises(PluginLoadError, match="is not a FedHost plugin: it exports no symbol 'fedhost_plugin_entry'"):
        load_plugin(stub_plugin("NoEntry", no_entry=True))


def test_vtable_members_beyond_struct_size_are_absent(stub_plugin) -> None:
    full = load_plugin(stub_plugin("Full"))
    short = load_plugin(stub_plugin("Short", vt_size="offsetof(fhp_vtable, aggregate)"))
    assert full.function("aggregate") is not None
    assert short.function("aggregate") is None  # the pointer is there, but outside struct_size
    with pytest.raises(PluginError, match="does not implement aggregate"):
        short.create().aggregate(0, np.zeros(2, np.float32), [Update(0, np.zeros(2), 1)])


def test_create_error_carries_the_plugin_message() -> None:
    with pytest.raises(PluginError) as err:
        load_plugin(plugin_path("FedProx")).create({"mu": 0.1, "bogus": 1})
    assert 'unknown config key "bogus"' in str(err.value) and err.value.status_name == "FHP_E_INVALID"


def test_aggregate_and_weights_through_ctypes() -> None:
    with load_plugin(plugin_path("FedAvg")).create({"seed": 3}) as plugin:
        g = np.arange(4, dtype=np.float32)
        out, weights = plugin.aggregate(0, g, [Update(0, np.ones(4), 1), Update(1, np.full(4, 4.0), 3)])
    np.testing.assert_allclose(out, g + 3.25)
    np.testing.assert_allclose(weights, [0.25, 0.75])


def test_coverage_masks_reach_the_plugin() -> None:
    plugin = load_plugin(plugin_path("FedAvg")).create()
    delta = np.array([1, np.nan, 1], np.float32)  # the uncovered NaN must not matter
    out, _ = plugin.aggregate(0, np.zeros(3, np.float32), [Update(0, delta, 2, coverage=np.array([1, 0, 1]))])
    np.testing.assert_array_equal(out, [1, 0, 1])


def test_nan_delta_names_the_client() -> None:
    plugin = load_plugin(plugin_path("FedAvg")).create()
    bad = np.array([0, np.nan], np.float32)
    with pytest.raises(PluginError, match="client 5") as err:
        plugin.aggregate(0, np.zeros(2, np.float32), [Update(4, np.zeros(2), 1), Update(5, bad, 1)])
    assert err.value.status_name == "FHP_E_NUMERIC"


def test_missing_metric_is_the_plugins_error() -> None:
    plugin = load_plugin(plugin_path("SimilarityAware")).create()
    with pytest.raises(PluginError, match="query_loss"):
        plugin.aggregate(0, np.zeros(2, np.float32), [Update(0, np.ones(2), 1)])


def test_stateless_and_destroyed() -> None:
    plugin = load_plugin(plugin_path("FedAvg")).create()
    assert plugin.save_state() == b""
    plugin.load_state(b"")
    plugin.close()
    plugin.close()
    with pytest.raises(PluginError, match="destroyed"):
        plugin.aggregate(0, np.zeros(1, np.float32), [Update(0, np.zeros(1), 1)])


def test_corrupt_state_is_refused() -> None:
    plugin = load_plugin(plugin_path("MEFLVariance")).create()
    with pytest.raises(PluginError) as err:
        plugin.load_state(b"garbage")
    assert err.value.status_name == "FHP_E_STATE"
