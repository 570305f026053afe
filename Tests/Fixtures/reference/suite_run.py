#!/usr/bin/env python3
"""Runs the federation suite's work for bench/suite on at most `--jobs` processes at a time.

    suite_run.py --host HOST --data-dir DIR --out DIR --seeds N --jobs J --threads T
                 --aggregators LIST SPEC.json...

Per federation: `host compare` (with `--threads T`), then the references' config from its
report and `host splits` for every seed, then one numpy_fedavg.py and one sklearn_mlp.py process
over all the seeds (the imports are paid once per federation, not per seed). The compares start
in file order; a federation's references are queued when its compare finishes and go ahead of
the compares still waiting, the costliest first (scikit-learn trains every device and the pooled
model; numpy only the sampled clients). Every part's wall time goes into OUT/timing.json for suite_table.py.
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(command, log, accepted=(0,)):
    """Runs `command` with stdout discarded; returns its wall seconds. An exit status not in
    `accepted` raises with the command and the tail of its stderr (kept in `log`)."""
    start = time.monotonic()
    with open(log, "w") as errors:
        status = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=errors).returncode
    if status not in accepted:
        with open(log) as errors:
            tail = errors.read()[-2000:]
        raise RuntimeError(f"exit status {status}: {' '.join(command)}\n{tail}")
    return time.monotonic() - start


class Suite:
    def __init__(self, arguments):
        self.arguments = arguments
        self.python = sys.executable
        self.parts = []  # {"federation", "part", "seconds"}
        self.logs = os.path.join(arguments.out, "logs")
        os.makedirs(self.logs, exist_ok=True)

    def directory(self, name):
        return os.path.join(self.arguments.out, name)

    def dumps(self, name):
        return [os.path.join(self.directory(name), f"splits-{seed}") for seed in range(self.arguments.seeds)]

    def record(self, name, part, seconds):
        self.parts.append({"federation": name, "part": part, "seconds": round(seconds, 2)})

    def compare(self, name, spec):
        """host compare, the references' config, and every seed's split dump."""
        a, out = self.arguments, self.directory(name)
        os.makedirs(out, exist_ok=True)
        with open(spec) as handle:
            clients = json.load(handle).get("partition", {}).get("clients", 0)
        # The 100-client federations sample 10 clients per round, as cross-device FL does.
        sampling = ["--clients-per-round", "10"] if clients >= 100 else []
        report = os.path.join(out, "report.json")
        if os.path.exists(report):
            os.remove(report)
        # Status 1 with a report: a strategy failed, and the table shows which and why.
        self.record(name, "host compare", run(
            [a.host, "compare", "--protocol", "fl", "--aggregators", a.aggregators, "--seeds", str(a.seeds),
             "--federation", spec, "--data-dir", a.data_dir, "--out", out, "--force", "--quiet",
             "--threads", str(a.threads), *sampling], os.path.join(self.logs, f"{name}.compare.log"), (0, 1)))
        if not os.path.exists(report):
            raise RuntimeError(f"host compare wrote no {report} (see {self.logs}/{name}.compare.log)")
        table = os.path.join(HERE, "suite_table.py")
        config = os.path.join(out, "reference-config.json")
        seconds = run([self.python, table, "reference-config", "--report", report,
                       "--out", config], os.path.join(self.logs, f"{name}.splits.log"))
        for seed, dump in enumerate(self.dumps(name)):
            seconds += run([a.host, "splits", "--federation", spec, "--data-dir", a.data_dir, "--seed", str(seed),
                            "--out", dump, "--force"], os.path.join(self.logs, f"{name}.splits.log"))
            seconds += run([self.python, table, "seed-config", "--config", config, "--seed", str(seed),
                            "--out", os.path.join(dump, "config.json")], os.path.join(self.logs, f"{name}.splits.log"))
        self.record(name, "host splits", seconds)

    def reference(self, name, script, result):
        dumps = self.dumps(name)
        self.record(name, script, run(
            [self.python, os.path.join(HERE, script), "--splits", *dumps,
             "--config", *(os.path.join(d, "config.json") for d in dumps),
             "--out", *(os.path.join(d, result) for d in dumps)], os.path.join(self.logs, f"{name}.{script}.log")))

    def reference_cost(self, name):
        """Training rows a reference process goes through (scikit-learn: every device's local
        model plus the pooled one; numpy: the sampled share of the clients)."""
        with open(os.path.join(self.dumps(name)[0], "splits.json")) as handle:
            devices = json.load(handle)["devices"]
        rows = sum(len(d["rows"]["train"]) for d in devices)
        with open(os.path.join(self.directory(name), "reference-config.json")) as handle:
            per_round = json.load(handle)["clients_per_round"] or len(devices)
        return {"sklearn_mlp.py": 2 * rows, "numpy_fedavg.py": rows * per_round / len(devices)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--aggregators", required=True)
    parser.add_argument("specs", nargs="+")
    arguments = parser.parse_args()
    suite = Suite(arguments)

    # (priority, order, federation, spec, reference script or None for the compare): the lowest
    # runs first; a reference's priority is minus its cost, so ready references go before compares.
    ready = [(0, index, os.path.basename(spec)[:-len(".json")], spec, None)
             for index, spec in enumerate(arguments.specs)]
    done = queue.Queue()
    running, failures, order = 0, [], len(ready)
    load_start = os.getloadavg()
    start = time.monotonic()
    while ready or running:
        while ready and running < arguments.jobs and not failures:
            ready.sort()
            _, _, name, spec, script = ready.pop(0)

            def work(name=name, spec=spec, script=script):
                try:
                    if script:
                        suite.reference(name, script, "sklearn.json" if script == "sklearn_mlp.py" else "numpy.json")
                    else:
                        suite.compare(name, spec)
                    done.put((name, script, None))
                except Exception as error:  # reported once every running task is done
                    done.put((name, script, error))
            threading.Thread(target=work).start()
            running += 1
        if not running:
            break
        name, script, error = done.get()
        running -= 1
        if error:
            failures.append(f"{name}: {error}")
        elif script is None:  # the compare wrote its report and the split dumps
            for reference, cost in suite.reference_cost(name).items():
                order += 1
                ready.append((-cost, order, name, None, reference))
    wall = time.monotonic() - start
    with open(os.path.join(arguments.out, "timing.json"), "w") as handle:
        json.dump({"seconds": round(wall, 2), "jobs": arguments.jobs, "threads": arguments.threads,
                   "seeds": arguments.seeds, "load_start": load_start, "load_end": os.getloadavg(),
                   "cpus": os.cpu_count(), "parts": sorted(suite.parts, key=lambda p: (p["federation"], p["part"]))},
                  handle, indent=1)
    for failure in failures:
        print(f"suite_run.py: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
