"""Run a FedHost protocol in Flower's simulation engine (Ray) from Python, without a SuperLink.

    FEDHOST_PLUGIN_DIR=.build/release python bridges/flower/examples/fedhost/run_simulation.py \\
        --federation Examples/paper-federation.json --data-dir ../shared/data --protocol fl \\
        --aggregator libFedAvg.so --seed 3 --settings "rounds=2" --result-dir /tmp/fedhost-flower

Starts one SuperNode per device of the federation (partition-id = device index) and writes
FedHost's report (report.json is host --json's text) to --result-dir.  Every option is a key of
the app's run config (``fedhost_flower.app``); ``flwr run bridges/flower/examples/fedhost`` is the
CLI way to the same app.
"""

from __future__ import annotations

import argparse
import json

from flwr.simulation import run_simulation

from fedhost_flower.app import DEFAULTS, client_app, make_server_app, open_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, value in DEFAULTS.items():
        kind = type(value) if not isinstance(value, bool) else (lambda text: text.lower() in ("1", "true", "yes"))
        parser.add_argument(f"--{key}", type=kind, default=value)
    parser.add_argument("--run-config", default="{}", help="extra run config entries as a JSON object")
    args = parser.parse_args()
    config = {key: getattr(args, key.replace("-", "_")) for key in DEFAULTS} | json.loads(args.run_config)
    devices = open_engine({**DEFAULTS, **config}).client_count
    run_simulation(
        server_app=make_server_app(config),
        client_app=client_app,
        num_supernodes=devices,
        # 2 cores: one CPU per ClientApp, no dashboard.
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                        "init_args": {"num_cpus": 2, "include_dashboard": False}},
    )


if __name__ == "__main__":
    main()
