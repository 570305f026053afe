#!/usr/bin/env python3
"""An independent numpy FedAvg / FedProx with FedHost's model, on FedHost's split dump.

    python numpy_fedavg.py --splits DIR --config config.json --out result.json

Model (as FedHost's MLPArchitecture): dense layers, ReLU on every hidden layer; binary = one
sigmoid output with binary cross-entropy, multiclass = softmax cross-entropy; the loss of a batch
is its mean. Parameters are one flat vector, per layer the weights [input][output] row-major
then the biases, and start from DIR/initial-model.json.

Each round every sampled client trains the global model on its train.csv for `local_epochs`
epochs of shuffled minibatches (the last one may be short), with a fresh optimizer each round
(FedHost's MLPTrainer zeroes Adam's moments at every train call). Adam is Keras-style as in
FedHost: m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), w -= lr_t m / (sqrt(v) + eps) with
lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), b1 = 0.9, b2 = 0.999, eps = 1e-7. FedProx adds
mu (w - w_global) to every gradient. The server adds the sample-weighted mean of the client
deltas; a client with model_rate r < 1 trains the HeteroFL sub-model of the leading
max(ceil(r w), min(w, max(8, outputs))) units of every hidden layer, and each parameter is averaged over the clients that hold it.

The batch order comes from numpy's own seeded generator, not FedHost's: the two agree in
distribution, not bit for bit.

Output: per device the final global model's test accuracy, F1 and mean loss (and, for a device
with model_rate < 1, its sub-model's scores), and per round the mean over devices of the global
model's mean test loss.
"""

import math

import split_dump  # first: it pins numpy's thread count

import numpy as np  # noqa: E402

ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-7


class MLP:
    """A ReLU network over a flat parameter vector in FedHost's layout."""

    def __init__(self, widths, binary):
        self.widths = widths
        self.binary = binary
        self.layers = []  # (weight offset, inputs, outputs)
        offset = 0
        for inputs, outputs in zip(widths, widths[1:]):
            self.layers.append((offset, inputs, outputs))
            offset += inputs * outputs + outputs
        self.parameter_count = offset

    def views(self, flat):
        """(weights [inputs, outputs], biases [outputs]) per layer, as views into `flat`."""
        return [(flat[offset:offset + i * o].reshape(i, o), flat[offset + i * o:offset + i * o + o])
                for offset, i, o in self.layers]

    def activations(self, flat, features):
        """The input, every hidden layer's ReLU output, and the logits."""
        values = [features]
        last = len(self.layers) - 1
        for index, (weights, biases) in enumerate(self.views(flat)):
            linear = values[-1] @ weights + biases
            values.append(linear if index == last else np.maximum(linear, 0))
        return values

    def logits(self, flat, features):
        return self.activations(flat, features)[-1]

    def losses(self, logits, labels):
        """Per-row loss: BCE from the logit (stable form), or softmax cross-entropy."""
        if self.binary:
            z = logits[:, 0]
            return np.maximum(z, 0) - labels * z + np.log1p(np.exp(-np.abs(z)))
        largest = logits.max(axis=1, keepdims=True)
        log_total = np.log(np.exp(logits - largest).sum(axis=1)) + largest[:, 0]
        return log_total - logits[np.arange(len(labels)), labels]

    def loss_and_gradient(self, flat, features, labels):
        """The batch-mean loss and its gradient (a new flat vector)."""
        values = self.activations(flat, features)
        logits = values[-1]
        count = len(labels)
        if self.binary:
            delta = (np.exp(-np.logaddexp(0, -logits[:, 0])) - labels)[:, None]  # sigmoid, no overflow
        else:
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            delta = shifted / shifted.sum(axis=1, keepdims=True)
            delta[np.arange(count), labels] -= 1
        delta /= count
        gradient = np.zeros_like(flat)
        parameters = self.views(flat)
        for index, (weight_gradient, bias_gradient) in reversed(list(enumerate(self.views(gradient)))):
            weight_gradient[...] = values[index].T @ delta
            bias_gradient[...] = delta.sum(axis=0)
            if index > 0:
                delta = (delta @ parameters[index][0].T) * (values[index] > 0)
        return float(self.losses(logits, labels).mean()), gradient


MINIMUM_SUB_MODEL_WIDTH = 8


def sub_model_widths(widths, rate):
    """FedHost's HeteroFL rule (SubModel.swift): hidden width d becomes ceil(rate d), but at
    least min(d, max(8, output width))."""
    floor = max(MINIMUM_SUB_MODEL_WIDTH, widths[-1])
    return [widths[0], *(max(math.ceil(rate * w), min(w, floor)) for w in widths[1:-1]), widths[-1]]


def sub_model_index(global_model, sub_widths):
    """Global flat positions of a sub-model's parameters, in the sub-model's own flat order."""
    positions = []
    for (offset, inputs, outputs), sub_in, sub_out in zip(global_model.layers, sub_widths, sub_widths[1:]):
        weights = offset + np.arange(sub_in)[:, None] * outputs + np.arange(sub_out)[None, :]
        biases = offset + inputs * outputs + np.arange(sub_out)
        positions += [weights.ravel(), biases]
    return np.concatenate(positions)


def train_client(model, start, features, labels, config, rng):
    """`local_epochs` epochs from `start` with a fresh optimizer; returns the trained parameters."""
    weights = start.copy()
    first_moment = np.zeros_like(weights)
    second_moment = np.zeros_like(weights)
    mu = config["mu"] if config["algorithm"] == "fedprox" else 0.0
    rate, batch_size = config["learning_rate"], config["batch_size"]
    step = 0
    for _ in range(config["local_epochs"]):
        order = rng.permutation(len(labels))
        for begin in range(0, len(order), batch_size):
            batch = order[begin:begin + batch_size]
            _, gradient = model.loss_and_gradient(weights, features[batch], labels[batch])
            if mu:
                gradient += mu * (weights - start)
            step += 1
            if config["optimizer"] == "sgd":
                weights -= rate * gradient
                continue
            first_moment += (gradient - first_moment) * (1 - ADAM_BETA1)
            second_moment += (gradient * gradient - second_moment) * (1 - ADAM_BETA2)
            step_size = rate * math.sqrt(1 - ADAM_BETA2 ** step) / (1 - ADAM_BETA1 ** step)
            weights -= step_size * first_moment / (np.sqrt(second_moment) + ADAM_EPSILON)
    return weights


class Client:
    def __init__(self, device, global_model, binary):
        self.device = device
        self.features, self.labels = device.parts["train"]
        widths = sub_model_widths(global_model.widths, device.model_rate)
        self.model = MLP(widths, binary)
        self.index = sub_model_index(global_model, widths)


def federate(dump, initial, config, after_round=lambda round_index, chosen, parameters: None):
    """Runs the rounds from `initial`; returns the final global parameters and the clients.
    `after_round` sees each round's sampled client numbers and the new global parameters."""
    global_model = MLP(dump.widths, dump.binary)
    clients = [Client(device, global_model, dump.binary) for device in dump.devices]
    per_round = config["clients_per_round"] or len(clients)
    if per_round > len(clients):
        raise split_dump.ReferenceError(
            f"config: clients_per_round {per_round} but the splits have {len(clients)} devices")
    sampling = np.random.default_rng([config["seed"], 1])
    parameters = initial.copy()
    for round_index in range(config["rounds"]):
        chosen = sorted(sampling.choice(len(clients), size=per_round, replace=False).tolist())
        weighted_deltas = np.zeros_like(parameters)
        coverage = np.zeros_like(parameters)
        for number in chosen:
            client = clients[number]
            if len(client.labels) == 0:
                continue
            start = parameters[client.index]
            rng = np.random.default_rng([config["seed"], 2, round_index, number])
            trained = train_client(client.model, start, client.features, client.labels, config, rng)
            weighted_deltas[client.index] += len(client.labels) * (trained - start)
            coverage[client.index] += len(client.labels)
        covered = coverage > 0
        parameters[covered] += weighted_deltas[covered] / coverage[covered]
        after_round(round_index, chosen, parameters)
    return parameters, clients


def run(dump, initial, config):
    """The result JSON: final global scores per device, the mean test loss per round."""
    global_model = MLP(dump.widths, dump.binary)

    def mean_test_loss(flat):
        losses = [global_model.losses(global_model.logits(flat, x), y).mean()
                  for x, y in (device.parts["test"] for device in dump.devices) if len(y)]
        return float(np.mean(losses))

    rounds = []
    parameters, clients = federate(dump, initial, config, lambda round_index, chosen, flat: rounds.append(
        {"round": round_index + 1, "clients": [dump.devices[n].name for n in chosen],
         "mean_test_loss": mean_test_loss(flat)}))

    def evaluate(model, flat, device):
        features, labels = device.parts["test"]
        logits = model.logits(flat, features)
        result = split_dump.scores(split_dump.predicted_classes(logits, dump.binary), labels,
                                   dump.binary, len(dump.classes))
        result["test_loss"] = float(model.losses(logits, labels).mean()) if len(labels) else None
        return result

    devices = []
    for client in clients:
        entry = {"name": client.device.name, "model_rate": client.device.model_rate,
                 **evaluate(global_model, parameters, client.device)}
        if client.device.model_rate < 1:
            entry["sub_model"] = evaluate(client.model, parameters[client.index], client.device)
        devices.append(entry)
    return {"format": split_dump.RESULT_FORMAT, "reference": "numpy-fedavg", "algorithm": config["algorithm"],
            "config": config, "widths": dump.widths, "devices": devices,
            "initial_mean_test_loss": mean_test_loss(initial), "rounds": rounds}


if __name__ == "__main__":
    split_dump.run_main(__doc__.split("\n\n")[0], lambda dump, config, directory: run(
        dump, split_dump.load_initial_model(directory, dump.widths), config))
