"""A real Flower run: simulation engine, 3 ClientApps, SimilarityAware aggregating."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest

from conftest import FakeGrid, plugin_path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "logreg" / "run_simulation.py"
ROUNDS, SUPERNODES = 5, 3


def test_similarity_aware_federation_learns(tmp_path: Path) -> None:
    result_path = tmp_path / "result.json"
    env = dict(os.environ, FEDHOST_PLUGIN_DIR=str(plugin_path("SimilarityAware").parent))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--plugin", "libSimilarityAware.so", "--plugin-config", '{"seed": 1}',
         "--supernodes", str(SUPERNODES), "--rounds", str(ROUNDS), "--result-path", str(result_path)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0 and result_path.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(result_path.read_text())

    losses = [result["server_loss"][str(r)]["loss"] for r in range(ROUNDS + 1)]  # round 0 = initial model
    print("\nserver-side loss per round:", ", ".join(f"{x:.4f}" for x in losses))
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.7 * losses[0], losses

    for r in range(1, ROUNDS + 1):
        train = result["train"][str(r)]
        assert len(train["fedhost-weights"]) == SUPERNODES and np.isclose(sum(train["fedhost-weights"]), 1.0)
        assert sorted(train["fedhost-client-ids"]) == list(range(SUPERNODES))
        assert "query_loss" in train and "eval_loss" in result["client_eval"][str(r)]
    assert "SimilarityAware" in proc.stdout + proc.stderr  # the strategy summary names the plugin


def test_too_few_supernodes_is_one_line_not_a_hang() -> None:
    """Flower's default simulation starts 2 SuperNodes: the app's default now waits for 2, and a
    mismatch ends in one line after node-timeout instead of waiting forever."""
    sys.path.insert(0, str(SCRIPT.parent))
    from fedhost_logreg.server_app import wait_for_nodes

    wait_for_nodes(FakeGrid([1, 2]), 2, 0)
    with pytest.raises(RuntimeError, match=r"num-partitions is 3 but 2 SuperNode\(s\) connected within 0 s"):
        wait_for_nodes(FakeGrid([1, 2]), 3, 0)
