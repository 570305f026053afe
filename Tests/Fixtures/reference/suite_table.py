#!/usr/bin/env python3
"""The federation suite's table (bench/suite): FedHost's host compare reports beside the numpy
and scikit-learn references on the same splits, and the issue's targets checked on them.

    suite_table.py reference-config --report REPORT.json --out CONFIG.json
    suite_table.py seed-config --config CONFIG.json --seed S --out CONFIG.json
    suite_table.py table --suite DIR --seconds T --seeds N
    suite_table.py bench-row --suite DIR --results bench/results.json --markdown bench/RESULTS.md [--before T]

`reference-config` reads the settings FedHost reports (the report's notes carry one
"key value; key value" line) so that the references train with the same rounds, epochs,
batch size, optimizer, learning rate and client sampling. `table` writes DIR/suite.md,
suite.csv, suite.json and suite.svg. Scores are percentages, mean ± sample std over seeds of
the mean over devices.
"""

import argparse
import csv
import json
import math
import os
import sys
import time


def settings_of(report):
    """The report's settings line as a dict of strings."""
    for note in report["notes"]:
        if "rounds " in note and "batch_size " in note:
            return dict(part.strip().split(" ", 1) for part in note.split(";") if " " in part.strip())
    raise SystemExit("suite_table.py: the report has no settings line in its notes")


def reference_config(report_path, out):
    settings = settings_of(json.load(open(report_path)))
    if settings.get("local_steps", "off") != "off":
        raise SystemExit(f"suite_table.py: {report_path}: local_steps {settings['local_steps']} has no reference "
                         "counterpart (numpy_fedavg.py trains whole epochs)")
    sampling = settings.get("clients_per_round", "all")
    config = {"algorithm": "fedavg", "rounds": int(settings["rounds"]), "local_epochs": int(settings["local_epochs"]),
              "batch_size": int(settings["batch_size"]), "learning_rate": float(settings["learning_rate"]),
              "optimizer": settings["optimizer"], "clients_per_round": None if sampling == "all" else int(sampling),
              "epochs": int(settings["local_only_epochs"])}
    json.dump(config, open(out, "w"), indent=1)


def seed_config(path, seed, out):
    config = json.load(open(path))
    config["seed"] = seed
    json.dump(config, open(out, "w"), indent=1)


def mean_std(values):
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def shown(pair):
    mean, std = pair
    return "–" if math.isnan(mean) else f"{mean:.2f} ± {std:.2f}"


def device_means(per_device_per_seed):
    """[device][seed] fractions -> per seed the mean over devices, in %."""
    seeds = len(per_device_per_seed[0])
    return [100 * sum(d[s] for d in per_device_per_seed) / len(per_device_per_seed) for s in range(seeds)]


def federation_rows(directory, seeds):
    """FedHost's rows and the references' rows for one federation directory."""
    report = json.load(open(os.path.join(directory, "report.json")))
    devices = [d["name"] for d in report["devices"]]
    rows = []
    for method in report["methods"]:
        if method.get("failure"):
            rows.append({"method": method["method"], "stage": method["stage"], "source": "FedHost",
                         "failure": method["failure"]})
            continue
        rows.append({"method": method["method"], "stage": method["stage"], "source": "FedHost",
                     "accuracy": device_means(method["accuracy"]), "f1": device_means(method["f1"]),
                     "device_accuracy": [[100 * v for v in d] for d in method["accuracy"]],
                     "device_f1": [[100 * v for v in d] for d in method["f1"]]})
    references = {"numpy FedAvg": ("numpy.json", "devices", "global"),
                  "sklearn Local Only": ("sklearn.json", "local", "personalized"),
                  "sklearn Centralized": ("sklearn.json", "centralized", "global")}
    for label, (file, key, stage) in references.items():
        accuracy = [[] for _ in devices]
        f1 = [[] for _ in devices]
        for seed in range(seeds):
            result = json.load(open(os.path.join(directory, f"splits-{seed}", file)))
            for index, entry in enumerate(result[key]):
                accuracy[index].append(100 * entry["accuracy"])
                f1[index].append(100 * entry["f1"])
        rows.append({"method": label, "stage": stage, "source": "reference",
                     "accuracy": [sum(d[s] for d in accuracy) / len(devices) for s in range(seeds)],
                     "f1": [sum(d[s] for d in f1) / len(devices) for s in range(seeds)],
                     "device_accuracy": accuracy, "device_f1": f1})
    return report, devices, rows


def find(rows, method, stage):
    return next((r for r in rows if r["method"] == method and r["stage"] == stage and "accuracy" in r), None)


def checks(name, report, devices, rows):
    """The issue's targets on one federation: (target, met, numbers)."""
    results = []
    binary_imbalanced = name.startswith("imbalanced")
    metric = "f1" if binary_imbalanced else "accuracy"
    fedavg, numpy_fedavg = find(rows, "FedAvg", "global"), find(rows, "numpy FedAvg", "global")
    if fedavg and numpy_fedavg:
        ours, theirs = mean_std(fedavg[metric])[0], mean_std(numpy_fedavg[metric])[0]
        results.append((f"FedAvg global {metric} within 1 point of numpy", abs(ours - theirs) <= 1,
                        f"{ours:.2f} vs {theirs:.2f}"))
    local = find(rows, "Local Only", "personalized")
    federated = [r for r in rows if r["source"] == "FedHost" and r["stage"] == "personalized"
                 and r["method"] != "Local Only" and "accuracy" in r]
    if local and federated:
        best = max(federated, key=lambda r: mean_std(r[metric])[0])
        b, l = mean_std(best[metric]), mean_std(local[metric])
        results.append((f"best personalized {metric} ≥ Local Only", b[0] >= l[0],
                        f"{best['method']} {b[0]:.2f} vs {l[0]:.2f} ± {l[1]:.2f}"))
        if name.startswith("label"):
            results.append(("best personalized > Local Only + 1 std", b[0] > l[0] + l[1],
                            f"{b[0]:.2f} vs {l[0] + l[1]:.2f}"))
    mefl = next((r for r in rows if r["method"].startswith("MEFL") and r["stage"] == "global" and "accuracy" in r), None)
    if mefl and fedavg:
        m, f = mean_std(mefl["accuracy"])[0], mean_std(fedavg["accuracy"])[0]
        results.append(("MEFL global ≥ FedAvg global − 2", m >= f - 2, f"{m:.2f} vs {f:.2f}"))
    reference_f1 = [max(mean_std(r["device_f1"][d])[0] for r in rows if r["source"] == "reference")
                    for d in range(len(devices))]
    zero = [f"{r['method']} {r['stage']} on {devices[d]}" for r in rows if r["source"] == "FedHost" and "accuracy" in r
            for d in range(len(devices)) if max(r["device_f1"][d]) == 0 and reference_f1[d] > 20]
    results.append(("no device at F1 0.00 ± 0.00 where a reference reaches F1 > 20", not zero,
                    ", ".join(zero) or "none"))
    narrow = [d for d, info in enumerate(report["devices"]) if info["widthRate"] < 1]
    if narrow and local and federated:
        best = max(federated, key=lambda r: mean_std(r["accuracy"])[0])
        gaps = [(devices[d], mean_std(best["device_accuracy"][d])[0], mean_std(local["device_accuracy"][d])[0])
                for d in narrow]
        results.append(("narrow devices above their own sub-model alone", all(g > a for _, g, a in gaps),
                        ", ".join(f"{n} {g:.2f} vs {a:.2f}" for n, g, a in gaps)))
    return results


def summary(federations):
    """One line per federation: the rows the targets compare (mean accuracy; F1 for the imbalanced task)."""
    columns = [("FedAvg global", "FedAvg", "global"), ("numpy FedAvg", "numpy FedAvg", "global"),
               ("MEFL global", "MEFL", "global"), ("Local Only", "Local Only", "personalized"),
               ("sklearn Local Only", "sklearn Local Only", "personalized"),
               ("Centralized", "Centralized", "global"), ("sklearn centralized", "sklearn Centralized", "global")]
    lines = ["| federation | metric | " + " | ".join(c[0] for c in columns) + " | best personalized federated |",
             "| --- | --- |" + " ---: |" * (len(columns) + 1)]
    for federation in federations:
        rows = federation["rows"]
        metric = "f1" if federation["name"].startswith("imbalanced") else "accuracy"
        cells = []
        for _, method, stage in columns:
            found = next((r for r in rows if r["method"].startswith(method) and r["stage"] == stage and metric in r), None)
            cells.append(shown(mean_std(found[metric])) if found else "–")
        federated = [r for r in rows if r["source"] == "FedHost" and r["stage"] == "personalized"
                     and r["method"] != "Local Only" and metric in r]
        best = max(federated, key=lambda r: mean_std(r[metric])[0]) if federated else None
        cells.append(f"{best['method']} {shown(mean_std(best[metric]))}" if best else "–")
        lines.append(f"| {federation['name']} | {'F1' if metric == 'f1' else 'acc'} | " + " | ".join(cells) + " |")
    return lines


def svg_chart(federations):
    """Global accuracy of FedAvg, numpy FedAvg and the centralized bound per federation."""
    series = [("FedAvg", "global", "#1f77b4"), ("numpy FedAvg", "global", "#ff7f0e"),
              ("Local Only", "personalized", "#2ca02c"), ("Centralized", "global", "#7f7f7f")]
    width, row = 760, 18 * len(series) + 14
    height = 40 + row * len(federations)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
             '<text x="10" y="16" font-size="13">Mean accuracy over seeds (%), per federation</text>']
    for index, (name, rows) in enumerate(federations):
        top = 30 + index * row
        parts.append(f'<text x="10" y="{top + 12}">{name}</text>')
        for offset, (method, stage, colour) in enumerate(series):
            found = find(rows, method, stage)
            if not found:
                continue
            value = mean_std(found["accuracy"])[0]
            y = top + offset * 18
            parts.append(f'<rect x="230" y="{y}" width="{4.5 * value:.1f}" height="14" fill="{colour}"/>')
            parts.append(f'<text x="{236 + 4.5 * value:.1f}" y="{y + 11}">{method} {value:.1f}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def timing_lines(suite):
    """Where the wall time went (suite_run.py's timing.json): per federation each part's seconds."""
    path = os.path.join(suite, "timing.json")
    if not os.path.isfile(path):
        return []
    timing = json.load(open(path))
    parts = ["host compare", "host splits", "numpy_fedavg.py", "sklearn_mlp.py"]
    seconds = {}
    for entry in timing["parts"]:
        seconds.setdefault(entry["federation"], {})[entry["part"]] = entry["seconds"]
    lines = [f"Where the time went: {timing['jobs']} processes at a time, each compare on {timing['threads']} "
             f"thread(s), {timing['cpus']} cores, load average {timing['load_start'][0]:.1f} at the start and "
             f"{timing['load_end'][0]:.1f} at the end; seconds of wall time per part (the parts overlap, so they "
             f"add up to more than the {timing['seconds']:.0f} s the scheduler ran):", "",
             "| federation | " + " | ".join(parts) + " |", "| --- |" + " ---: |" * len(parts)]
    for name in sorted(seconds):
        lines.append(f"| {name} | " + " | ".join(f"{seconds[name].get(p, 0):.1f}" for p in parts) + " |")
    lines.append("| total | " + " | ".join(f"{sum(s.get(p, 0) for s in seconds.values()):.1f}" for p in parts) + " |")
    return lines + [""]


def table(suite, seconds, seeds):
    names = sorted(n for n in os.listdir(suite) if os.path.isfile(os.path.join(suite, n, "report.json")))
    lines = [f"# Federation suite: FedHost beside the numpy / scikit-learn references", "",
             f"{len(names)} federations, seeds 0–{seeds - 1}, `--protocol fl` at its defaults; wall time "
             f"{float(seconds):.0f} s for the whole suite (FedHost and the references). Accuracy and F1 in %, "
             "mean ± std over seeds of the mean over devices.", ""]
    csv_rows, document, target_lines, charts = [], {"seeds": seeds, "seconds": float(seconds), "federations": []}, [], []
    for name in names:
        report, devices, rows = federation_rows(os.path.join(suite, name), seeds)
        charts.append((name, rows))
        lines += [f"## {name}", "", f"{report['notes'][0] if report['notes'] else ''}", "",
                  "| method | stage | source | accuracy | F1 | worst device F1 |", "| --- | --- | --- | ---: | ---: | ---: |"]
        for r in rows:
            if "failure" in r:
                lines.append(f"| {r['method']} | {r['stage']} | {r['source']} | failed: {r['failure']} | | |")
                continue
            worst = min(mean_std(d)[0] for d in r["device_f1"])
            lines.append(f"| {r['method']} | {r['stage']} | {r['source']} | {shown(mean_std(r['accuracy']))} | "
                         f"{shown(mean_std(r['f1']))} | {worst:.2f} |")
            csv_rows.append([name, r["method"], r["stage"], r["source"], *mean_std(r["accuracy"]), *mean_std(r["f1"]), worst])
        found = checks(name, report, devices, rows)
        lines += [""] + [f"- {'met' if met else '**missed**'}: {what} ({numbers})" for what, met, numbers in found] + [""]
        target_lines += [(name, what, met, numbers) for what, met, numbers in found]
        document["federations"].append({"name": name, "devices": devices, "rows": rows,
                                        "targets": [{"target": w, "met": m, "numbers": n} for w, m, n in found]})
    met = sum(1 for *_, ok, _ in target_lines if ok)
    lines[4:4] = ([f"Targets met: {met} of {len(target_lines)}.", ""] + summary(document["federations"]) + [""]
                  + timing_lines(suite))
    open(os.path.join(suite, "suite.md"), "w").write("\n".join(lines) + "\n")
    with open(os.path.join(suite, "suite.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["federation", "method", "stage", "source", "accuracy_mean", "accuracy_std", "f1_mean", "f1_std",
                         "worst_device_f1"])
        writer.writerows(csv_rows)
    json.dump(document, open(os.path.join(suite, "suite.json"), "w"), indent=1)
    open(os.path.join(suite, "suite.svg"), "w").write(svg_chart(charts))


def bench_row(suite, results, markdown, before):
    """Splices the suite's wall-time row (section "suite") into bench/results.json and the
    table of bench/RESULTS.md, replacing an earlier one; `before` is the same suite timed
    before, as the peer (0: none)."""
    timing = json.load(open(os.path.join(suite, "timing.json")))
    document = json.load(open(os.path.join(suite, "suite.json")))
    seconds, load = document["seconds"], (timing["load_start"][0], timing["load_end"][0])
    when = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(os.path.getmtime(os.path.join(suite, "suite.json"))))
    row = {"section": "suite", "unit": "s", "higherIsBetter": False, "fedhostMedian": seconds, "fedhostMin": seconds,
           "name": f"federation suite: {len(document['federations'])} federations × {document['seeds']} seeds, "
                   "7 strategies + Local Only + centralized, numpy / scikit-learn references",
           "peer": "same suite before (serial references, all-core compares)" if before else None,
           "peerMedian": before or None,
           "note": f"bench/suite --seeds {document['seeds']} on {timing['cpus']} cores, {timing['jobs']} processes at a time, "
                   f"measured {when}, load average {load[0]:.1f} at the start and {load[1]:.1f} at the end (other work on "
                   f"the machine); target 300 s {'met' if seconds <= 300 else 'missed'}; one run, so median = best; "
                   "per-part times in suite.md"}
    row = {key: value for key, value in row.items() if value is not None}  # FedHostBench omits a missing peer
    rows = [r for r in json.load(open(results)) if r.get("section") != "suite"] + [row]
    with open(results, "w") as handle:  # FedHostBench's own layout (JSONEncoder, pretty, sorted keys)
        json.dump(rows, handle, indent=2, sort_keys=True, ensure_ascii=False, separators=(",", " : "))

    def number(value):
        return "–" if value is None else f"{value:.0f}"
    line = (f"| suite | {row['name']} | s | {number(seconds)} | {number(seconds)} | {row.get('peer', '–')} | "
            f"{number(row.get('peerMedian'))} | {f'{before / seconds:.2f}×' if before else '–'} | {row['note']} |")
    lines = [l for l in open(markdown).read().split("\n") if not l.startswith("| suite |")]
    last = max(i for i, l in enumerate(lines) if l.startswith("|"))
    lines.insert(last + 1, line)
    open(markdown, "w").write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("reference-config")
    one.add_argument("--report", required=True)
    one.add_argument("--out", required=True)
    two = commands.add_parser("seed-config")
    two.add_argument("--config", required=True)
    two.add_argument("--seed", type=int, required=True)
    two.add_argument("--out", required=True)
    three = commands.add_parser("table")
    three.add_argument("--suite", required=True)
    three.add_argument("--seconds", required=True)
    three.add_argument("--seeds", type=int, required=True)
    four = commands.add_parser("bench-row")
    four.add_argument("--suite", required=True)
    four.add_argument("--results", required=True)
    four.add_argument("--markdown", required=True)
    four.add_argument("--before", type=float, default=0.0)
    arguments = parser.parse_args()
    if arguments.command == "bench-row":
        bench_row(arguments.suite, arguments.results, arguments.markdown, arguments.before)
    elif arguments.command == "reference-config":
        reference_config(arguments.report, arguments.out)
    elif arguments.command == "seed-config":
        seed_config(arguments.config, arguments.seed, arguments.out)
    else:
        table(arguments.suite, arguments.seconds, arguments.seeds)


if __name__ == "__main__":
    sys.exit(main())
