"""ServerApp: Flower's training loop with the FedHost plugin as the strategy."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Result

from fedhost_flower import PluginStrategy

from .task import initial_params, loss_and_grad, pooled_test_data


def make_server_app(
    settings: Mapping[str, Any] | None = None, on_result: Callable[[Result], None] | None = None
) -> ServerApp:
    """A ServerApp.  ``settings`` are defaults under the run config (``flwr.simulation.run_simulation``
    passes an empty run config); ``on_result`` receives Flower's Result after the last round."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = {**(settings or {}), **context.run_config}
        num_partitions = int(cfg.get("num-partitions", 2))
        wait_for_nodes(grid, num_partitions, float(cfg.get("node-timeout", 60)))
        strategy = PluginStrategy(
            str(cfg.get("plugin", "libSimilarityAware.so")),
            json.loads(str(cfg.get("plugin-config", "{}"))),
            min_available_nodes=num_partitions,
            min_train_nodes=num_partitions,
            min_evaluate_nodes=num_partitions,
        )
        x_test, y_test = pooled_test_data(num_partitions)

        def central_loss(_round: int, arrays: ArrayRecord) -> MetricRecord:
            params = {k: a.numpy() for k, a in arrays.items()}
            return MetricRecord({"loss": loss_and_grad(params, x_test, y_test)[0]})

        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord({k: Array(v) for k, v in initial_params().items()}),
            num_rounds=int(cfg.get("num-server-rounds", 5)),
            train_config=ConfigRecord(),
            evaluate_fn=central_loss,
            timeout=float(cfg.get("round-timeout", 120)),
        )
        if cfg.get("result-path"):
            with open(str(cfg["result-path"]), "w", encoding="utf-8") as out:
                json.dump(summarize(result), out, indent=1)
        if on_result is not None:
            on_result(result)

    return app


def wait_for_nodes(grid: Grid, count: int, timeout: float) -> None:
    """Waits (bounded) for `count` SuperNodes, so that a mismatch is an error, not a hang."""
    deadline = time.monotonic() + timeout
    while (connected := len(list(grid.get_node_ids()))) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"num-partitions is {count} but {connected} SuperNode(s) connected within {timeout:.0f} s: "
                               f"start {count} SuperNodes or run with --run-config num-partitions={connected}")
        time.sleep(1)


def summarize(result: Result) -> dict[str, dict[int, dict]]:
    """The per-round metrics of a Result as plain JSON-able dicts."""
    return {
        "server_loss": {r: dict(m) for r, m in result.evaluate_metrics_serverapp.items()},
        "train": {r: dict(m) for r, m in result.train_metrics_clientapp.items()},
        "client_eval": {r: dict(m) for r, m in result.evaluate_metrics_clientapp.items()},
    }


app = make_server_app()
