"""Shared by the independent references: reading FedHost's split dump (fedhost-splits/1), the
reference config, and scoring predictions with FedHost's definitions
(Sources/FedHostCore/Evaluation/ClassificationMetrics.swift).

Nothing here comes from FedHost's code: the dump is read as plain CSV/JSON.
"""

import argparse
import csv
import json
import math
import os
import sys

# One BLAS thread: these matrices are small (threads only contend on a shared 2-core machine),
# and a fixed summation order keeps runs reproducible. Set before numpy is first imported.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

SPLITS_FORMAT = "fedhost-splits/1"
RESULT_FORMAT = "fedhost-reference/1"
SPLIT_NAMES = ("train", "validation", "test")


class ReferenceError(Exception):
    """Bad input: one line naming the file and the key or line."""


class Device:
    def __init__(self, name, model_rate, parts):
        self.name = name
        self.model_rate = model_rate
        self.parts = parts  # split name -> (features [n, width] float64, labels [n] int64)


class SplitDump:
    def __init__(self, meta, devices):
        self.seed = meta["seed"]
        self.input_width = meta["input_width"]
        self.classes = meta["classes"]
        self.task = meta["task"]
        self.hidden_widths = meta["hidden_widths"]
        self.devices = devices

    @property
    def binary(self):
        return self.task == "binary"

    @property
    def widths(self):
        """Layer widths from input to output: one sigmoid unit for binary, one per class otherwise."""
        return [self.input_width, *self.hidden_widths, 1 if self.binary else len(self.classes)]


def _require(condition, where, message):
    if not condition:
        raise ReferenceError(f"{where}: {message}")


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as error:
        raise ReferenceError(f"{path}: cannot read file ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise ReferenceError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None


def read_split(path, width, class_count):
    """One split CSV: `width` feature columns then an integer `label` in 0..class_count-1."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise ReferenceError(f"{path}: cannot read file ({error.strerror})") from None
    _require(rows, path, "empty file (expected a header)")
    header = rows[0]
    _require(len(header) == width + 1 and header[-1] == "label", f"{path}:1",
             f"expected {width} feature columns then \"label\", found {len(header)} columns")
    features = np.empty((len(rows) - 1, width))
    labels = np.empty(len(rows) - 1, dtype=np.int64)
    for index, row in enumerate(rows[1:]):
        where = f"{path}:{index + 2}"
        _require(len(row) == width + 1, where, f"{len(row)} fields, expected {width + 1}")
        try:
            features[index] = [float(value) for value in row[:-1]]
        except ValueError:
            raise ReferenceError(f"{where}: a feature is not a number") from None
        _require(row[-1].isdigit() and int(row[-1]) < class_count, where,
                 f"label \"{row[-1]}\" is not a class index in 0..{class_count - 1}")
        labels[index] = int(row[-1])
    _require(np.isfinite(features).all(), path, "a feature is not finite")
    return features, labels


def load_dump(directory):
    path = os.path.join(directory, "splits.json")
    meta = read_json(path)
    _require(isinstance(meta, dict), path, "expected a JSON object")
    for key in ("format", "seed", "input_width", "classes", "task", "hidden_widths", "devices"):
        _require(key in meta, path, f"{key}: missing")
    _require(meta["format"] == SPLITS_FORMAT, path, f"format: \"{meta['format']}\" is not \"{SPLITS_FORMAT}\"")
    _require(meta["task"] in ("binary", "multiclass"), path, "task: expected \"binary\" or \"multiclass\"")
    _require(isinstance(meta["classes"], list) and len(meta["classes"]) >= 2, path, "classes: need at least 2")
    _require(meta["task"] == "multiclass" or len(meta["classes"]) == 2, path, "classes: a binary task has 2")
    _require(isinstance(meta["input_width"], int) and meta["input_width"] >= 1, path, "input_width: a positive integer")
    _require(all(isinstance(w, int) and w >= 1 for w in meta["hidden_widths"]), path,
             "hidden_widths: positive integers")
    _require(isinstance(meta["devices"], list) and meta["devices"], path, "devices: need at least one")
    devices = []
    for index, entry in enumerate(meta["devices"]):
        where = f"{path}: devices[{index}]"
        for key in ("name", "directory"):
            _require(key in entry, where, f"{key}: missing")
        rate = entry.get("model_rate", 1.0)
        _require(isinstance(rate, (int, float)) and 0 < rate <= 1, where, "model_rate: in (0, 1]")
        parts = {split: read_split(os.path.join(directory, entry["directory"], f"{split}.csv"),
                                   meta["input_width"], len(meta["classes"]))
                 for split in SPLIT_NAMES}
        for split in SPLIT_NAMES:
            stated = entry.get("rows", {}).get(split)
            _require(stated is None or len(stated) == len(parts[split][1]), where,
                     f"rows.{split} lists {len(stated or [])} rows but {split}.csv has {len(parts[split][1])}")
        devices.append(Device(entry["name"], float(rate), parts))
    return SplitDump(meta, devices)


def load_initial_model(directory, widths):
    path = os.path.join(directory, "initial-model.json")
    model = read_json(path)
    _require(isinstance(model, dict) and "widths" in model and "parameters" in model, path,
             "expected an object with \"widths\" and \"parameters\"")
    _require(model["widths"] == widths, path, f"widths: {model['widths']} but the splits describe {widths}")
    parameters = np.asarray(model["parameters"], dtype=np.float32).astype(np.float64)
    expected = sum(i * o + o for i, o in zip(widths, widths[1:]))
    _require(parameters.shape == (expected,), path, f"parameters: {parameters.size} values, expected {expected}")
    _require(np.isfinite(parameters).all(), path, "parameters: a value is not finite")
    return parameters


# The reference config: key -> (check, description, default); a default of `...` means required.
CONFIG_KEYS = {
    "algorithm": (lambda v: v in ("fedavg", "fedprox"), "\"fedavg\" or \"fedprox\"", "fedavg"),
    "rounds": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0", ...),
    "local_epochs": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0", ...),
    "batch_size": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1", ...),
    "learning_rate": (lambda v: isinstance(v, (int, float)) and v > 0 and math.isfinite(v), "a number > 0", ...),
    "optimizer": (lambda v: v in ("adam", "sgd"), "\"adam\" or \"sgd\"", "adam"),
    "mu": (lambda v: isinstance(v, (int, float)) and v >= 0 and math.isfinite(v), "a number >= 0", 0.0),
    "clients_per_round": (lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1", None),
    "seed": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0", 0),
    # Centralized and per-device epochs for sklearn_mlp.py; null: rounds × local_epochs.
    "epochs": (lambda v: v is None or (isinstance(v, int) and v >= 1), "null or an integer >= 1", None),
}


def load_config(path):
    given = read_json(path)
    _require(isinstance(given, dict), path, "expected a JSON object")
    for key in given:
        _require(key in CONFIG_KEYS, path, f"{key}: unknown key (known: {', '.join(CONFIG_KEYS)})")
    config = {}
    for key, (check, description, default) in CONFIG_KEYS.items():
        _require(key in given or default is not ..., path, f"{key}: missing")
        value = given.get(key, default)
        _require(not isinstance(value, bool) and check(value), path, f"{key}: expected {description}, found {value!r}")
        config[key] = value
    return config


def predicted_classes(outputs, binary):
    """Binary: class 1 when P(class 1) >= 0.5 (a logit >= 0); multiclass: the arg max, lowest on ties."""
    if binary:
        return (outputs[:, 0] >= 0).astype(np.int64)
    return np.argmax(outputs, axis=1)


def scores(predicted, labels, binary, class_count):
    """Accuracy and F1 as FedHost defines them: binary F1 of class 1, multiclass macro F1 over the
    classes present in `labels`; a ratio with a zero denominator is 0."""
    if len(labels) == 0:
        return {"test_rows": 0, "accuracy": None, "f1": None}

    def f1(cls):
        true_positives = int(np.sum((predicted == cls) & (labels == cls)))
        denominator = int(np.sum(predicted == cls)) + int(np.sum(labels == cls))
        return 0.0 if denominator == 0 else 2 * true_positives / denominator

    if binary:
        f1_score = f1(1)
    else:
        f1_score = float(np.mean([f1(cls) for cls in range(class_count) if np.any(labels == cls)]))
    return {"test_rows": int(len(labels)), "accuracy": float(np.mean(predicted == labels)), "f1": f1_score}


def write_result(path, result):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")


def run_main(description, run):
    """The command line shared by the references: `--splits DIR --config FILE --out FILE`, or
    several of each (paired in order: one process for every seed of a federation, so the imports
    are paid once); `run(dump, config, splits_directory)` returns the result to write. Bad input
    becomes one line on stderr and exit status 2."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--splits", required=True, nargs="+", help="split dump directories (host splits --out)")
    parser.add_argument("--config", required=True, nargs="+", help="the reference config JSON, one per --splits")
    parser.add_argument("--out", required=True, nargs="+", help="where to write the result JSON, one per --splits")
    arguments = parser.parse_args()
    if not len(arguments.splits) == len(arguments.config) == len(arguments.out):
        parser.error(f"{len(arguments.splits)} --splits, {len(arguments.config)} --config and "
                     f"{len(arguments.out)} --out: give one of each per run")
    try:
        for splits, config_path, out in zip(arguments.splits, arguments.config, arguments.out):
            config = load_config(config_path)
            write_result(out, run(load_dump(splits), config, splits))
    except ReferenceError as error:
        print(f"{os.path.basename(sys.argv[0])}: {error}", file=sys.stderr)
        sys.exit(2)
