"""The FedHost Flower app: the protocol driver and the ServerApp/ClientApp under Flower's
simulation engine give host's report, bit for bit; refusals and a dying client are reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PLUGIN_DIR
from fedhost_flower.engine import Engine
from fedhost_flower.plugin import load_plugin
from fedhost_flower.protocol import ProtocolError, run_protocol, strategy_plugins
from test_engine import DATA, SPEC, paper_engine

HOST = PLUGIN_DIR / "host"


def test_client_selection_is_refused_in_one_line() -> None:
    with pytest.raises(ProtocolError, match="libPowerOfChoice.so: it chooses each round's clients"):
        strategy_plugins(paper_engine(), "libPowerOfChoice.so", None)


def test_stateful_client_hook_is_refused() -> None:
    with pytest.raises(ProtocolError, match="libMEFLVariance.so: its client hook shares state with its aggregator"):
        strategy_plugins(paper_engine(), "libMEFLVariance.so", None)


class InProcess:
    """The protocol's client work on the server's own engine: the driver without Flower."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def train(self, round_index, clients, weights, aux_down=None):
        aux_up = self.hook_aux_up
        return [self.engine.train(c, round_index, weights, (aux_down or {}).get(c), aux_up) for c in clients]

    #: The client hook's aux_up vectors (set by a test that runs a strategy with them).
    hook_aux_up = 0

    def evaluate(self, clients, weights):
        return {c: self.engine.evaluate(c, weights) for c in clients}

    def score(self, clients, weights):
        return {c: self.engine.score_global(c, weights) for c in clients}

    def personalize(self, clients, weights):
        return {c: self.engine.personalize(c, weights)[1] for c in clients}

    def serial_train(self, client, weights, epochs, visit):
        return self.engine.serial_train(client, weights, epochs, visit)

    def serial_evaluate(self, client, weights):
        return self.engine.serial_evaluate(client, weights)


def host_report(*args: str) -> dict:
    """host run on the paper federation, seed 3, 2 rounds, no baseline strategies."""
    run = subprocess.run([str(HOST), "run", "--federation", str(SPEC), "--data-dir", str(DATA), "--baselines", "none",
                          "--rounds", "2", "--seed", "3", "--json", "--quiet", *args],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.parametrize(("protocol", "aggregator", "initializer"), [
    ("fl", "libFedProx.so", None),
    ("fed-meta-align", "libSimilarityAware.so", "libSimilarityAware.so"),
    # Plugin ABI 1.2: controls through prepare_client / aux vectors, control_norm via report_metric.
    ("fl", "libSCAFFOLD.so", None),
])
def test_driver_reproduces_host_report(protocol: str, aggregator: str, initializer: str | None) -> None:
    """Plugins through ctypes, clients through the engine: the whole report equals host's, bits included."""
    engine = paper_engine(protocol)
    expected = host_report("--protocol", protocol, "--aggregator", aggregator, "--initializer", initializer or "none")
    hook = strategy_plugins(engine, aggregator, initializer)[2]
    engine.set_client_hook(hook)
    clients = InProcess(engine)
    clients.hook_aux_up = load_plugin(hook).descriptor.n_aux_up if hook else 0
    outcome = run_protocol(engine, clients, aggregator, initializer, expected["title"], baselines=True)
    assert json.loads(outcome.report_json) == expected


SIMULATION = Path(__file__).resolve().parents[1] / "examples" / "fedhost" / "run_simulation.py"


def simulate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The FedHost app under Flower's simulation engine (one SuperNode per device)."""
    run = subprocess.run([sys.executable, str(SIMULATION), "--federation", str(SPEC), "--data-dir", str(DATA),
                          "--seed", "3", "--settings", "rounds=2", "--baselines", "false",
                          "--result-dir", str(tmp_path), *args],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and (tmp_path / "report.json").is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.parametrize(("protocol", "aggregator"), [("fl", "libFedProx.so"), ("fed-meta-align", "libSimilarityAware.so"),
                                                     ("fl", "libSCAFFOLD.so")])
def test_flower_simulation_reproduces_host_report(tmp_path: Path, protocol: str, aggregator: str) -> None:
    """ServerApp + ClientApps in Flower's simulation engine: host's report, bit for bit."""
    initializer = aggregator if protocol == "fed-meta-align" else None
    expected = host_report("--protocol", protocol, "--aggregator", aggregator, "--initializer", initializer or "none",
                           "--no-local-only")
    simulate(tmp_path, "--protocol", protocol, "--aggregator", aggregator, "--title", expected["title"])
    assert json.loads((tmp_path / "report.json").read_text()) == expected
    assert (tmp_path / "failures.txt").read_text() == ""


def test_a_client_that_dies_is_reported_and_the_round_goes_on(tmp_path: Path) -> None:
    run = simulate(tmp_path, "--protocol", "fl", "--aggregator", "libFedAvg.so",
                   "--run-config", json.dumps({"fail-device": 1, "fail-round": 1}))
    failures = (tmp_path / "failures.txt").read_text().splitlines()
    assert len(failures) == 1 and failures[0].startswith("train: device 1 (node ")
    assert "injected failure in round 1" in failures[0] and failures[0] in run.stdout
    rounds = json.loads((tmp_path / "rounds.json").read_text())
    assert [r["clients"] for r in rounds] == [[0], [0, 1]] and [r["failed"] for r in rounds] == [[1], []]
    assert rounds[0]["weights"] == [1.0]  # FedAvg over the one client left
    report = json.loads((tmp_path / "report.json").read_text())
    assert [m["method"] for m in report["methods"]] == ["FedAvg", "FedAvg"]


def test_refusals_are_one_line(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(SIMULATION), "--federation", str(SPEC), "--data-dir", str(DATA),
                          "--aggregator", "libMEFLVariance.so", "--result-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "libMEFLVariance.so: its client hook shares state with its aggregator" in run.stdout + run.stderr
    with pytest.raises(ProtocolError, match="the fl protocol has no Phase 1"):
        strategy_plugins(paper_engine(), "libSimilarityAware.so", "libSimilarityAware.so")
    with pytest.raises(ProtocolError, match="libFedAvg.so: not a client-hook"):
        strategy_plugins(paper_engine(), "libFedAvg.so", None, "libFedAvg.so")


def test_too_few_supernodes_is_one_line_not_a_hang() -> None:
    from conftest import FakeGrid
    from fedhost_flower.app import DEFAULTS, GridClients

    config = {**DEFAULTS, "node-timeout": 0}
    with pytest.raises(ProtocolError, match=r"the federation has 2 devices but 1 SuperNode\(s\) connected within 0 s"):
        GridClients(FakeGrid([7]), config, 2)


def test_flower_deployment_reproduces_host_report(tmp_path: Path) -> None:
    """A SuperLink and one SuperNode per device on 127.0.0.1, flwr run: host's report (about 70 s)."""
    script = SIMULATION.with_name("run_deployment.sh")
    env = dict(os.environ, FEDHOST_PLUGIN_DIR=str(PLUGIN_DIR), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    run = subprocess.run([str(script), "2", "fl", "libFedProx.so", "rounds=2", "3"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    work = Path(run.stdout.split("logs and result: ")[-1].split()[0])
    report = json.loads((work / "result" / "report.json").read_text())
    expected = host_report("--protocol", "fl", "--aggregator", "libFedProx.so", "--initializer", "none")
    report.pop("title"), expected.pop("title")
    assert report == expected
