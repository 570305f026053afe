"""libFedHostEngine.so from C and through the ctypes binding: a client's update is host's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import PLUGIN_DIR, REPO
from fedhost_flower.engine import BASELINE_CENTRALIZED, Engine, EngineError

SPEC = REPO / "Examples" / "paper-federation.json"
DATA = REPO.parent / "shared" / "data"


def paper_engine(protocol: str = "fl", seed: int = 3, **settings: object) -> Engine:
    if not (DATA / "electrical_detect.csv").is_file():
        pytest.fail(f"{DATA} lacks the paper's datasets")
    return Engine(SPEC, DATA, {"protocol": protocol, "rounds": 2, **settings}, seed=seed)


def test_engine_from_c(tmp_path: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler is needed (scripts/test compiles C plugins too)"
    binary = tmp_path / "engine_smoke"
    subprocess.run([compiler, "-std=c11", "-Wall", "-Werror", str(Path(__file__).with_name("engine_smoke.c")),
                    "-I", str(REPO / "Sources" / "FedHostEngine" / "API" / "include"), "-L", str(PLUGIN_DIR),
                    "-lFedHostEngine", f"-Wl,-rpath,{PLUGIN_DIR}", "-lm", "-o", str(binary)], check=True)
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120)
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "client 99 does not exist (the federation has 2)" in run.stdout


def test_update_is_deterministic_and_hooks_run() -> None:
    engine = paper_engine()
    start = engine.starting_model()
    first, again = engine.train(0, 0, start), engine.train(0, 0, start)
    assert first.delta.tobytes() == again.delta.tobytes() and np.isfinite(first.delta).all()
    assert np.abs(first.delta).sum() > 0 and first.coverage is None
    assert sorted(first.metrics) == ["query_accuracy", "query_loss", "train_loss"]
    assert first.n_samples > 1000
    assert engine.train(0, 1, start).delta.tobytes() != first.delta.tobytes()  # round seeds the shuffle
    engine.set_client_hook("libFedProx.so")  # adjust_gradient: the proximal term changes the delta
    proximal = engine.train(0, 0, start)
    assert proximal.delta.tobytes() != first.delta.tobytes() and proximal.n_samples == first.n_samples


@pytest.mark.parametrize(("call", "message"), [
    (lambda e: e.set_client_hook("libFedAvg.so"), "libFedAvg.so (org.fedhost.fedavg) is not a client-hook; it provides: aggregator"),
    (lambda e: e.train(5, 0, e.starting_model()), "client 5 does not exist (the federation has 2)"),
    (lambda e: e.train(0, 0, np.zeros(3, np.float32)), "model has 3 parameters, the global model has 46637"),
    (lambda e: e.serial_train(0, e.starting_model(), 1, 1), "Phase 1 belongs to the fed-meta-align protocol; this engine runs fl"),
    (lambda e: e.baseline(7), "baseline 7 is neither FHE_BASELINE_LOCAL_ONLY nor FHE_BASELINE_CENTRALIZED"),
    (lambda e: e.report("t", {"strategies": []}), "results_json:"),
])
def test_bad_calls_are_one_line(call, message: str) -> None:
    with pytest.raises(EngineError) as caught:
        call(paper_engine())
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_bad_settings_are_one_line() -> None:
    with pytest.raises(EngineError, match="unknown setting roundz"):
        paper_engine(roundz=2)
    with pytest.raises(EngineError, match="the fed-meta-align protocol has no Centralized baseline"):
        paper_engine("fed-meta-align").baseline(BASELINE_CENTRALIZED)
    with pytest.raises(EngineError, match="missing.json: no such file in "):
        Engine(REPO / "missing.json", DATA, {}, seed=0)


def test_personalized_model_exports_with_host(tmp_path: Path) -> None:
    """fhe_save_model writes the .fhmodel host export reads: Phase 3 on a node, export anywhere."""
    engine = paper_engine()
    model, score = engine.personalize(1, engine.starting_model())
    assert model.size == engine.client_parameter_count(1) and 0 < score["accuracy"] <= 1
    path = tmp_path / "machine.fhmodel"
    engine.save_model(1, model, path)
    run = subprocess.run([str(PLUGIN_DIR / "host"), "export", "--model", str(path), "--device", "machine",
                          "--federation", str(SPEC), "--data-dir", str(DATA), "--seed", "3", "--format", "tflite",
                          "--out", str(tmp_path / "machine.tflite")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "machine.tflite").stat().st_size > 1000
