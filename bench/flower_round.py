"""One FL round of the paper federation (2 devices, the paper's MLP, Adam 1e-3, batch 16, one
local epoch, FedAvg) three ways, measured in one invocation on this machine:

  1. in-process: FedHost's engine (libFedHostEngine.so) trains both clients, libFedAvg.so
     aggregates, both clients evaluate — no Flower (what host does, on one thread);
  2. Flower's simulation engine with FedHost's ServerApp and ClientApps (one per device);
  3. Flower's simulation engine with PyTorch ClientApps training the same MLP on the same
     rows (host splits' dump), aggregated by the same libFedAvg.so on the server.

Per-round times are medians over rounds 2.. (round 1 pays process and model warm-up).
Flower's per-round overhead is (2) − (1): messaging, serialization, Ray scheduling.

    .venv-flower/bin/python bench/flower_round.py [--rounds 4] [--out bench/flower_round.json]

Needs a venv with fedhost-flower (scripts/test's .venv-flower) and, for (3), the CPU build of
torch (pip install torch --index-url https://download.pytorch.org/whl/cpu); without torch that
row says skipped. Nothing else should run meanwhile: the machine has 2 cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "Examples" / "paper-federation.json"
DATA = (REPO / ".." / "shared" / "data").resolve()
BUILD = Path(os.environ.get("FEDHOST_PLUGIN_DIR", REPO / ".build" / "release"))
SIMULATION = REPO / "bridges" / "flower" / "examples" / "fedhost" / "run_simulation.py"
HIDDEN = [256, 128, 64, 32, 16, 12, 8]
BACKEND = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"num_cpus": 2, "include_dashboard": False}}


def steady(seconds: list[float]) -> float:
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def in_process(rounds: int, seed: int) -> list[float]:
    from fedhost_flower.engine import Engine
    from fedhost_flower.plugin import Update, load_plugin

    engine = Engine(SPEC, DATA, {"protocol": "fl", "rounds": rounds}, seed=seed)
    fedavg = load_plugin("libFedAvg.so").create(engine.plugin_config("libFedAvg.so"))
    weights = engine.starting_model()
    times = []
    for round_index in range(rounds):
        clock = time.perf_counter()
        updates = [engine.train(c, round_index, weights) for c in engine.participants(round_index)]
        weights, _ = fedavg.aggregate(round_index, weights, [
            Update(client_id=u.client, delta=u.delta, n_samples=u.n_samples, metrics=dict(sorted(u.metrics.items())))
            for u in updates])
        for client in range(engine.client_count):
            engine.evaluate(client, weights)
        times.append(time.perf_counter() - clock)
    return times


def flower_fedhost(rounds: int, seed: int) -> list[float]:
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run([sys.executable, str(SIMULATION), "--federation", str(SPEC), "--data-dir", str(DATA),
                              "--protocol", "fl", "--aggregator", "libFedAvg.so", "--seed", str(seed), "--settings",
                              f"rounds={rounds};personalization_epochs=0", "--baselines", "false",
                              "--result-dir", out], capture_output=True, text=True, timeout=900)
        if run.returncode != 0:
            raise RuntimeError(run.stdout[-2000:] + run.stderr[-2000:])
        return [r["seconds"] for r in json.loads((Path(out) / "rounds.json").read_text())]


# ------------------------------------------------------------------ the PyTorch ClientApp (3)

def torch_apps(splits: Path, rounds: int, result: Path, aggregator: str = "libFedAvg.so", mu: float = 0.0):
    """A PyTorch ClientApp (the paper MLP, Adam 1e-3, BCE, one shuffled epoch of batch 16, plus
    FedProx's proximal term (mu/2)||w - w_global||^2 when mu > 0; the trained model's validation
    loss is sent with the update, as host scores each update) and a ServerApp loop that times each
    round: train messages, `aggregator` (a FedHost plugin), evaluate messages on every test part."""
    import torch
    from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp

    from fedhost_flower.plugin import Update, load_plugin

    devices = device_names(splits)
    inputs = len((splits / devices[0] / "train.csv").open().readline().split(",")) - 1

    def model() -> torch.nn.Sequential:
        widths = [inputs] + HIDDEN
        layers: list[torch.nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], 1))

    def rows(device: str, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        table = np.loadtxt(splits / device / f"{part}.csv", delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)
        return torch.from_numpy(table[:, :-1].copy()), torch.from_numpy(table[:, -1:].copy())

    def flat(net: torch.nn.Module) -> np.ndarray:
        return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).numpy()

    def load(net: torch.nn.Module, vector: np.ndarray) -> None:
        torch.nn.utils.vector_to_parameters(torch.from_numpy(vector.copy()), net.parameters())

    def loss_on(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            return float(torch.nn.functional.binary_cross_entropy_with_logits(net(x), y))

    client = ClientApp()
    cache: dict[str, tuple] = {}

    def device_data(context: Context) -> tuple:
        device = devices[int(context.node_config["partition-id"])]
        if device not in cache:
            torch.set_num_threads(1)
            cache[device] = (rows(device, "train"), rows(device, "validation"), rows(device, "test"), model())
        return cache[device]

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        (x, y), (vx, vy), _, net = device_data(context)
        start = msg.content["arrays"]["global"].numpy()
        load(net, start)
        anchor = [p.detach().clone() for p in net.parameters()] if mu > 0 else []
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(int(msg.content["config"]["round"])))
        for batch in order.split(16):
            optimizer.zero_grad()
            loss = loss_fn(net(x[batch]), y[batch])
            if anchor:
                loss = loss + mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(net.parameters(), anchor))
            loss.backward()
            optimizer.step()
        query = loss_on(net, vx, vy) if len(vy) else loss_on(net, x, y)
        return Message(RecordDict({"arrays": ArrayRecord({"delta": Array(flat(net) - start)}),
                                   "metrics": MetricRecord({"num-examples": len(y), "train_loss": float(loss),
                                                            "query_loss": query})}),
                       reply_to=msg)

    @client.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        _, _, (x, y), net = device_data(context)
        load(net, msg.content["arrays"]["global"].numpy())
        return Message(RecordDict({"metrics": MetricRecord({"loss": loss_on(net, x, y)})}), reply_to=msg)

    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        while len(nodes := list(grid.get_node_ids())) < len(devices):
            time.sleep(0.5)
        plugin = load_plugin(aggregator).create({"seed": 0, "mu": mu} if mu > 0 else {"seed": 0})
        weights = flat(model())
        times = []
        for round_index in range(rounds):
            clock = time.perf_counter()

            def ask(kind: str, config: dict | None = None) -> list[Message]:
                content = {"arrays": ArrayRecord({"global": Array(weights)})}
                if config is not None:
                    content["config"] = ConfigRecord(config)
                return list(grid.send_and_receive(
                    [Message(RecordDict(dict(content)), dst_node_id=n, message_type=kind) for n in nodes], timeout=600))

            replies = ask("train", {"round": round_index})
            updates = [Update(client_id=i, delta=r.content["arrays"]["delta"].numpy(),
                              n_samples=int(r.content["metrics"]["num-examples"]),
                              metrics={"train_loss": float(r.content["metrics"]["train_loss"])})
                       for i, r in enumerate(replies)]
            weights, _ = plugin.aggregate(round_index, weights, updates)
            ask("evaluate")
            times.append(time.perf_counter() - clock)
        result.write_text(json.dumps(times))

    return server, client


def device_names(splits: Path) -> list[str]:
    return sorted(p.name for p in splits.iterdir() if p.is_dir())


def dump_splits(spec: Path, seed: int, out: Path) -> Path:
    """host's splits of `spec` for `seed` (standardized CSVs per device) in out/splits."""
    splits = out / "splits"
    subprocess.run([str(BUILD / "host"), "splits", "--federation", str(spec), "--data-dir", str(DATA),
                    "--seed", str(seed), "--out", str(splits)], check=True, capture_output=True)
    return splits


def torch_simulation(splits: Path, rounds: int, aggregator: str = "libFedAvg.so", mu: float = 0.0) -> list[float]:
    """One Flower simulation (a fresh Python process: Flower, Ray and torch start-up included) with
    PyTorch ClientApps, one supernode per device of `splits`; returns the seconds of each round."""
    result = splits.parent / "times.json"
    result.unlink(missing_ok=True)
    run = subprocess.run([sys.executable, __file__, "--torch-child", str(splits), "--rounds", str(rounds),
                          "--aggregator", aggregator, "--mu", str(mu), "--out", str(result)],
                         capture_output=True, text=True, timeout=3600)
    if run.returncode != 0 or not result.is_file():
        raise RuntimeError(run.stdout[-2000:] + run.stderr[-2000:])
    return json.loads(result.read_text())


def torch_missing() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "skipped: torch is not installed in this venv (pip install torch --index-url https://download.pytorch.org/whl/cpu)"
    return None


def flower_torch(rounds: int, seed: int) -> list[float] | str:
    if reason := torch_missing():
        return reason
    with tempfile.TemporaryDirectory() as out:
        return torch_simulation(dump_splits(SPEC, seed, Path(out)), rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", default="")
    parser.add_argument("--torch-child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--aggregator", default="libFedAvg.so", help=argparse.SUPPRESS)
    parser.add_argument("--mu", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("FEDHOST_PLUGIN_DIR", str(BUILD))
    if args.torch_child:
        from flwr.simulation import run_simulation

        splits = Path(args.torch_child)
        server, client = torch_apps(splits, args.rounds, Path(args.out), args.aggregator, args.mu)
        run_simulation(server_app=server, client_app=client, num_supernodes=len(device_names(splits)),
                       backend_config=BACKEND)
        return

    rows = {"in-process FedHost engine (no Flower)": in_process(args.rounds, args.seed),
            "Flower simulation, FedHost ClientApps": flower_fedhost(args.rounds, args.seed),
            "Flower simulation, PyTorch ClientApps": flower_torch(args.rounds, args.seed)}
    base = steady(rows["in-process FedHost engine (no Flower)"])
    print("| one FL round, paper federation (2 devices, 8,286 training rows) | median s/round | vs in-process |")
    print("| --- | ---: | ---: |")
    for name, times in rows.items():
        if isinstance(times, str):
            print(f"| {name} | {times} | |")
        else:
            print(f"| {name} | {steady(times):.3f} | {steady(times) / base:.2f}× |")
    flower = rows["Flower simulation, FedHost ClientApps"]
    print(f"\nFlower's per-round overhead over the in-process round: {steady(flower) - base:.3f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"rounds": args.rounds, "seconds_per_round": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
