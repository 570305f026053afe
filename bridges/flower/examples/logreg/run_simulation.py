"""Run the app in Flower's simulation engine (Ray) from Python, without a SuperLink.

    FEDHOST_PLUGIN_DIR=.build/release python bridges/flower/examples/logreg/run_simulation.py \
        --plugin libSimilarityAware.so --supernodes 3 --rounds 5 --result-path /tmp/result.json

(``flwr run`` is Flower's preferred CLI entry; this script exists so that tests and CI can run
a whole federation with one command and read back the per-round losses.)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", default="libSimilarityAware.so")
    parser.add_argument("--plugin-config", default='{"seed": 1}', help="JSON object")
    parser.add_argument("--supernodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--result-path", default="")
    args = parser.parse_args()

    # Ray workers import the ClientApp by module name: make this directory importable for them.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(HERE))
    from flwr.simulation import run_simulation

    from fedhost_logreg.client_app import app as client_app
    from fedhost_logreg.server_app import make_server_app

    settings = {
        "plugin": args.plugin, "plugin-config": args.plugin_config, "num-partitions": args.supernodes,
        "num-server-rounds": args.rounds, "result-path": args.result_path,
    }
    run_simulation(
        server_app=make_server_app(settings),
        client_app=client_app,
        num_supernodes=args.supernodes,
        # 2 cores: one CPU per ClientApp, no dashboard.
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                        "init_args": {"num_cpus": 2, "include_dashboard": False}},
    )


if __name__ == "__main__":
    main()
