#!/usr/bin/env python3
"""Self-check of the references on synthetic split dumps (plain Python; pytest also collects it).

    .venv-reference/bin/python Tests/Fixtures/reference/test_references.py

The expected values come from code written separately from numpy_fedavg.py: a scalar loop over
the network (no matrices) and central finite differences of its loss for the gradients.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import split_dump  # noqa: E402  (first: it pins numpy's thread count)
import numpy_fedavg  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def write_dump(directory, widths, devices, task="binary", classes=None, seed=0):
    """A split dump in the fedhost-splits/1 format. `devices`: (name, model_rate, {split: (x, y)})."""
    classes = classes or [str(c) for c in range(2 if task == "binary" else widths[-1])]
    entries = []
    for name, rate, parts in devices:
        os.makedirs(os.path.join(directory, name), exist_ok=True)
        rows = {}
        for split in split_dump.SPLIT_NAMES:
            features, labels = parts.get(split, (np.empty((0, widths[0])), np.empty(0, dtype=int)))
            rows[split] = list(range(len(labels)))
            with open(os.path.join(directory, name, f"{split}.csv"), "w") as handle:
                handle.write(",".join([f"x{i}" for i in range(widths[0])] + ["label"]) + "\n")
                for row, label in zip(features, labels):
                    handle.write(",".join([repr(float(v)) for v in row] + [str(int(label))]) + "\n")
        entries.append({"name": name, "directory": name, "model_rate": rate, "rows": rows})
    meta = {"format": "fedhost-splits/1", "seed": seed, "protocol": "fl", "input_width": widths[0],
            "classes": classes, "task": task, "hidden_widths": widths[1:-1], "devices": entries}
    with open(os.path.join(directory, "splits.json"), "w") as handle:
        json.dump(meta, handle)
    rng = np.random.default_rng(seed)
    count = sum(i * o + o for i, o in zip(widths, widths[1:]))
    initial = rng.normal(0, 0.5, count).astype(np.float32)
    with open(os.path.join(directory, "initial-model.json"), "w") as handle:
        json.dump({"widths": widths, "parameters": [float(v) for v in initial]}, handle)
    return initial.astype(np.float64)


def scalar_loss(flat, widths, features, labels, binary):
    """Mean loss by explicit loops over units, reading FedHost's layout element by element."""
    total = 0.0
    for row, label in zip(features, labels):
        values = [float(v) for v in row]
        offset = 0
        for layer, (inputs, outputs) in enumerate(zip(widths, widths[1:])):
            out = []
            for o in range(outputs):
                s = flat[offset + inputs * outputs + o]
                for i in range(inputs):
                    s += values[i] * flat[offset + i * outputs + o]
                out.append(s if layer == len(widths) - 2 else max(s, 0.0))
            offset += inputs * outputs + outputs
            values = out
        if binary:
            p = 1 / (1 + math.exp(-values[0]))
            total -= math.log(p) if label == 1 else math.log(1 - p)
        else:
            total -= values[label] - math.log(sum(math.exp(v) for v in values))
    return total / len(labels)


def numeric_gradient(flat, widths, features, labels, binary, step=1e-6):
    gradient = np.zeros_like(flat)
    for index in range(len(flat)):
        up, down = flat.copy(), flat.copy()
        up[index] += step
        down[index] -= step
        gradient[index] = (scalar_loss(up, widths, features, labels, binary)
                           - scalar_loss(down, widths, features, labels, binary)) / (2 * step)
    return gradient


def config(**overrides):
    base = {"algorithm": "fedavg", "rounds": 1, "local_epochs": 1, "batch_size": 4, "learning_rate": 0.1,
            "optimizer": "sgd", "mu": 0.0, "clients_per_round": None, "seed": 0}
    base.update(overrides)
    return base


def load(directory, widths):
    dump = split_dump.load_dump(directory)
    return dump, split_dump.load_initial_model(directory, widths)


def test_one_sgd_round_of_fedavg_matches_the_hand_computation():
    # Two clients, one full-batch SGD step each; the server takes the 4:2 sample-weighted mean.
    widths = [2, 3, 1]
    a = (np.array([[0.5, -1.0], [1.5, 0.2], [-0.3, 0.8], [0.9, 0.9]]), np.array([1, 0, 0, 1]))
    b = (np.array([[-1.2, 0.4], [0.1, -0.7]]), np.array([0, 1]))
    with tempfile.TemporaryDirectory() as directory:
        initial = write_dump(directory, widths, [("a", 1.0, {"train": a, "test": a}),
                                                 ("b", 1.0, {"train": b, "test": b})])
        dump, start = load(directory, widths)
        parameters, _ = numpy_fedavg.federate(dump, start, config())
    lr = 0.1
    client_a = initial - lr * numeric_gradient(initial, widths, *a, True)
    client_b = initial - lr * numeric_gradient(initial, widths, *b, True)
    expected = (4 * client_a + 2 * client_b) / 6
    assert np.allclose(parameters, expected, atol=1e-7), np.abs(parameters - expected).max()


def test_fedprox_adds_the_proximal_gradient_from_the_second_step():
    # One client, batch 2 over 2 rows twice (2 epochs): the second step's gradient gets mu (w1 - w0).
    widths = [2, 3, 1]
    data = (np.array([[0.5, -1.0], [1.5, 0.2]]), np.array([1, 0]))
    with tempfile.TemporaryDirectory() as directory:
        initial = write_dump(directory, widths, [("only", 1.0, {"train": data, "test": data})])
        dump, start = load(directory, widths)
        parameters, _ = numpy_fedavg.federate(
            dump, start, config(algorithm="fedprox", mu=0.5, local_epochs=2, batch_size=2))
    lr, mu = 0.1, 0.5
    first = initial - lr * numeric_gradient(initial, widths, *data, True)
    second = first - lr * (numeric_gradient(first, widths, *data, True) + mu * (first - initial))
    assert np.allclose(parameters, second, atol=1e-7), np.abs(parameters - second).max()


def test_softmax_gradient_matches_finite_differences():
    widths = [3, 4, 3]
    rng = np.random.default_rng(5)
    features, labels = rng.normal(size=(5, 3)), np.array([0, 2, 1, 2, 0])
    flat = rng.normal(0, 0.5, sum(i * o + o for i, o in zip(widths, widths[1:])))
    loss, gradient = numpy_fedavg.MLP(widths, binary=False).loss_and_gradient(flat, features, labels)
    assert abs(loss - scalar_loss(flat, widths, features, labels, False)) < 1e-12
    assert np.allclose(gradient, numeric_gradient(flat, widths, features, labels, False), atol=1e-7)


def test_adam_step_is_keras_style_with_bias_correction():
    # With m = (1 − β1)g, v = (1 − β2)g² and lr_t = lr·√(1 − β2)/(1 − β1), the first Adam step is
    # lr·g/(|g| + ε/√(1 − β2)): almost exactly lr against the gradient's sign.
    widths = [2, 3, 1]
    data = (np.array([[0.5, -1.0], [1.5, 0.2], [-0.3, 0.8]]), np.array([1, 0, 1]))
    with tempfile.TemporaryDirectory() as directory:
        initial = write_dump(directory, widths, [("only", 1.0, {"train": data, "test": data})])
        dump, start = load(directory, widths)
        parameters, _ = numpy_fedavg.federate(dump, start, config(optimizer="adam", learning_rate=0.01))
    g = numeric_gradient(initial, widths, *data, True)
    corrected_epsilon = 1e-7 / math.sqrt(1 - 0.999)
    expected = initial - 0.01 * g / (np.abs(g) + corrected_epsilon)
    assert np.allclose(parameters, expected, atol=1e-6), np.abs(parameters - expected).max()


def test_half_width_client_updates_only_its_sub_model():
    # The 0.5-rate client holds the first 8 of 16 hidden units (8 is also the width floor);
    # units 8..15 only move by the full client's delta, shared units by the 3:1 weighted mean of both.
    widths = [2, 16, 1]
    rng = np.random.default_rng(2)
    full = (rng.normal(size=(3, 2)), np.array([1, 0, 1]))
    half = (rng.normal(size=(1, 2)), np.array([0]))
    with tempfile.TemporaryDirectory() as directory:
        initial = write_dump(directory, widths, [("full", 1.0, {"train": full, "test": full}),
                                                 ("half", 0.5, {"train": half, "test": half})])
        dump, start = load(directory, widths)
        parameters, clients = numpy_fedavg.federate(dump, start, config())
    sub_widths = [2, 8, 1]
    index = clients[1].index
    full_delta = -0.1 * numeric_gradient(initial, widths, *full, True)
    half_delta = np.zeros_like(initial)
    half_delta[index] = -0.1 * numeric_gradient(initial[index], sub_widths, *half, True)
    shared = np.zeros(len(initial), dtype=bool)
    shared[index] = True
    expected = initial + np.where(shared, (3 * full_delta + half_delta) / 4, full_delta)
    # W1 rows' first 8, b1[:8], W2[:8], b2
    assert sorted(index.tolist()) == [*range(0, 8), *range(16, 24), *range(32, 40), *range(48, 56), 64]
    assert np.allclose(parameters, expected, atol=1e-7), np.abs(parameters - expected).max()


def test_sub_models_keep_the_width_floor():
    assert numpy_fedavg.sub_model_widths([9, 256, 128, 64, 32, 16, 12, 8, 1], 0.25) == [9, 64, 32, 16, 8, 8, 8, 8, 1]
    assert numpy_fedavg.sub_model_widths([6, 64, 12, 10], 0.25) == [6, 16, 10, 10]


def separable_dump(directory, devices=3, rows=120, seed=1, rates=None):
    """Binary data a linear boundary separates (x0 + x1 > 0), split over `devices`."""
    rng = np.random.default_rng(seed)
    parts = []
    for number in range(devices):
        x = rng.normal(size=(rows, 4))
        y = (x[:, 0] + x[:, 1] > 0).astype(int)
        parts.append((f"device-{number}", (rates or [1.0] * devices)[number],
                      {"train": (x[:80], y[:80]), "validation": (x[80:90], y[80:90]), "test": (x[90:], y[90:])}))
    write_dump(directory, [4, 16, 8, 1], parts, seed=seed)


def run_script(script, directory, settings):
    config_path, out_path = os.path.join(directory, "config.json"), os.path.join(directory, "out.json")
    with open(config_path, "w") as handle:
        json.dump(settings, handle)
    process = subprocess.run([sys.executable, os.path.join(HERE, script), "--splits", directory,
                              "--config", config_path, "--out", out_path], capture_output=True, text=True)
    if process.returncode != 0:
        return process.returncode, process.stderr.strip()
    with open(out_path) as handle:
        return 0, json.load(handle)


def test_the_command_line_run_lowers_the_loss_every_round_and_learns():
    with tempfile.TemporaryDirectory() as directory:
        separable_dump(directory, rates=[1.0, 0.5, 1.0])
        status, result = run_script("numpy_fedavg.py", directory, config(
            rounds=5, local_epochs=2, batch_size=16, learning_rate=0.01, optimizer="adam", clients_per_round=2))
    assert status == 0, result
    losses = [result["initial_mean_test_loss"]] + [entry["mean_test_loss"] for entry in result["rounds"]]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    assert all(len(entry["clients"]) == 2 for entry in result["rounds"])
    assert all(device["accuracy"] > 0.85 for device in result["devices"]), result["devices"]
    assert "sub_model" in result["devices"][1] and "sub_model" not in result["devices"][0]


def test_sklearn_yardsticks_learn_the_boundary():
    with tempfile.TemporaryDirectory() as directory:
        separable_dump(directory)
        status, result = run_script("sklearn_mlp.py", directory, config(
            rounds=5, local_epochs=4, batch_size=16, learning_rate=0.01, optimizer="adam"))
    assert status == 0, result
    assert result["epochs"] == 20
    assert [entry["name"] for entry in result["centralized"]] == ["device-0", "device-1", "device-2"]
    for entry in result["local"] + result["centralized"]:
        assert entry["accuracy"] > 0.85 and entry["f1"] > 0.85, entry


def test_metrics_follow_fedhost_definitions():
    predicted, labels = np.array([1, 1, 0, 0, 2]), np.array([1, 0, 0, 2, 2])
    # Binary F1 of class 1 = 2TP / (predicted + actual); macro F1 over the classes in the labels.
    assert split_dump.scores(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 1]), True, 2)["f1"] == 2 * 1 / (2 + 2)
    macro = split_dump.scores(predicted, labels, False, 4)
    assert math.isclose(macro["f1"], (2 / 4 + 2 / 3 + 2 / 3) / 3) and macro["accuracy"] == 3 / 5
    assert split_dump.predicted_classes(np.array([[0.0], [-1e-9]]), True).tolist() == [1, 0]
    assert split_dump.predicted_classes(np.array([[1.0, 1.0, 0.5]]), False).tolist() == [0]


def test_one_process_for_several_dumps_writes_what_separate_runs_write():
    settings = config(rounds=2, local_epochs=1, batch_size=8, learning_rate=0.01, optimizer="adam", epochs=2)
    for script in ("numpy_fedavg.py", "sklearn_mlp.py"):
        with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
            separable_dump(first, seed=1)
            separable_dump(second, seed=2)
            alone = [run_script(script, directory, settings) for directory in (first, second)]
            outs = [os.path.join(directory, "together.json") for directory in (first, second)]
            process = subprocess.run([sys.executable, os.path.join(HERE, script), "--splits", first, second,
                                      "--config", *(os.path.join(d, "config.json") for d in (first, second)),
                                      "--out", *outs], capture_output=True, text=True)
            assert process.returncode == 0, process.stderr
            together = []
            for out in outs:
                with open(out) as handle:
                    together.append((0, json.load(handle)))
            assert together == alone and alone[0] != alone[1], script


def test_bad_input_is_one_line_naming_the_key():
    with tempfile.TemporaryDirectory() as directory:
        separable_dump(directory)
        for settings, message in [
            (config(learning_rat=0.1), "learning_rat: unknown key"),
            (config(batch_size=0), "batch_size: expected an integer >= 1, found 0"),
            (config(clients_per_round=9), "config: clients_per_round 9 but the splits have 3 devices"),
        ]:
            status, error = run_script("numpy_fedavg.py", directory, settings)
            assert status == 2 and "\n" not in error and message in error, error
        with open(os.path.join(directory, "device-1", "test.csv"), "a") as handle:
            handle.write("1,2,3,4,7\n")
        status, error = run_script("sklearn_mlp.py", directory, config())
        assert status == 2 and error.endswith("test.csv:32: label \"7\" is not a class index in 0..1"), error


if __name__ == "__main__":
    failures = 0
    tests = [(name, test) for name, test in sorted(globals().items()) if name.startswith("test_")]
    for name, test in tests:
        try:
            test()
            print(f"ok   {name}")
        except Exception as error:  # report every failing check, then fail the run
            failures += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}")
    print(f"{len(tests) - failures} of {len(tests)} reference checks passed")
    sys.exit(1 if failures else 0)
