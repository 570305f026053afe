#!/usr/bin/env python3
"""scikit-learn yardsticks on FedHost's split dump: one MLPClassifier per device (Local Only)
and one on the pooled training rows of every device (the centralized bound).

    python sklearn_mlp.py --splits DIR --config config.json --out result.json

Same hidden widths as the dump, ReLU, no L2 penalty, the config's optimizer (Adam with FedHost's
b1 0.9, b2 0.999, eps 1e-7, or plain SGD), learning rate and batch size. Training runs exactly
`epochs` passes (config "epochs", or rounds × local_epochs: the passes a federated client makes)
through `partial_fit`, one pass per call: that never stops early, and it tells the model the full
class list, so a device whose training rows miss a class still gets FedHost's output layer.
scikit-learn draws its own initial weights (seeded by the config's seed), not initial-model.json.

Output: "local" (each device's model on its own test.csv) and "centralized" (the pooled model
on every device's test.csv), each a list of per-device accuracy and F1 as FedHost defines them.
"""

import warnings

import split_dump  # first: it pins numpy's thread count

import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402


def train(dump, features, labels, config, epochs):
    """An MLPClassifier trained for `epochs` passes over (features, labels)."""
    classifier = MLPClassifier(
        hidden_layer_sizes=tuple(dump.hidden_widths), activation="relu", alpha=0.0,
        solver=config["optimizer"], learning_rate_init=config["learning_rate"],
        batch_size=min(config["batch_size"], len(labels)), beta_1=0.9, beta_2=0.999, epsilon=1e-7,
        momentum=0.0, nesterovs_momentum=False, shuffle=True, random_state=config["seed"])
    classes = np.arange(len(dump.classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(epochs):
            classifier.partial_fit(features, labels, classes=classes)
    return classifier


def evaluate(dump, classifier, device):
    features, labels = device.parts["test"]
    predicted = classifier.predict(features) if len(labels) else np.empty(0, dtype=np.int64)
    return {"name": device.name, **split_dump.scores(predicted, labels, dump.binary, len(dump.classes))}


def run(dump, config):
    epochs = config["epochs"] or config["rounds"] * config["local_epochs"]
    if epochs < 1:
        raise split_dump.ReferenceError("config: rounds × local_epochs is 0; set \"epochs\"")
    local = []
    for device in dump.devices:
        features, labels = device.parts["train"]
        if len(labels) == 0:
            local.append({"name": device.name, "skipped": "no training rows"})
            continue
        local.append(evaluate(dump, train(dump, features, labels, config, epochs), device))
    pooled_features = np.concatenate([device.parts["train"][0] for device in dump.devices])
    pooled_labels = np.concatenate([device.parts["train"][1] for device in dump.devices])
    if len(pooled_labels) == 0:
        raise split_dump.ReferenceError("splits: no device has training rows")
    centralized = train(dump, pooled_features, pooled_labels, config, epochs)
    return {"format": split_dump.RESULT_FORMAT, "reference": "sklearn-mlp", "config": config, "epochs": epochs,
            "local": local, "centralized": [evaluate(dump, centralized, device) for device in dump.devices]}


if __name__ == "__main__":
    split_dump.run_main(__doc__.split("\n\n")[0], lambda dump, config, directory: run(dump, config))
