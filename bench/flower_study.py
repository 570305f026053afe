"""The Flower side of bench/run's `flower` rows: a whole study (FedAvg and FedProx, the standard FL
protocol, 10 rounds) of one federation under Flower's simulation engine with PyTorch ClientApps
training the same MLP on host's splits with host's budget (Adam 1e-3, batch 16, one local epoch,
FedProx's mu 0.01; each update scored on the client's validation part, the global model on every
test part after each round), aggregated on the server by the same FedHost plugins.

Each strategy is one `run_simulation` in a fresh Python process, as a user runs a study, so its
wall time includes Flower's, Ray's and torch's start-up; host's split dump is not counted.

    .venv-flower/bin/python bench/flower_study.py --federation Examples/paper-federation.json [--rounds 10]

Writes out/flower_study.json in the working directory (the PythonPeer convention): the whole
study's wall seconds, each strategy's, and the median round over rounds 2.. of both strategies.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import flower_round

STRATEGIES = {"FedAvg": ("libFedAvg.so", 0.0), "FedProx": ("libFedProx.so", 0.01)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--federation", required=True)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if reason := flower_round.torch_missing():
        raise SystemExit(reason)
    spec = (flower_round.REPO / args.federation).resolve()
    with tempfile.TemporaryDirectory() as scratch:
        splits = flower_round.dump_splits(spec, args.seed, Path(scratch))
        walls, rounds = {}, {}
        for name, (aggregator, mu) in STRATEGIES.items():
            clock = time.perf_counter()
            rounds[name] = flower_round.torch_simulation(splits, args.rounds, aggregator, mu)
            walls[name] = time.perf_counter() - clock
        clients = len(flower_round.device_names(splits))
    steady = [s for times in rounds.values() for s in times[1:]]
    record = {"federation": args.federation, "clients": clients, "rounds": args.rounds,
              "whole_seconds": sum(walls.values()), "strategy_seconds": walls, "round_seconds": rounds,
              "median_round_seconds": statistics.median(steady)}
    Path("out").mkdir(exist_ok=True)
    Path("out/flower_study.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("clients", "whole_seconds", "median_round_seconds")}))


if __name__ == "__main__":
    main()
