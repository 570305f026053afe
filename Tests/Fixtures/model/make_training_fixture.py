#!/usr/bin/env python3
"""Independent numpy reference for FedHost's trainer: writes training_reference.json.

Initial weights and data come from a formula both sides implement (a SplitMix64 hash of the
element index, see `hashed_unit`), so nothing binary is stored. Float32 throughout, unfused
(all gradients first, then the optimizer), Keras-style Adam, as documented in Optimizer.adam.
Run: python3 Tests/Fixtures/model/make_training_fixture.py   (numpy only; ~30 s)
"""
import json, os
import numpy as np

WIDTHS = [9, 256, 128, 64, 32, 16, 12, 8, 1]
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def hashed_unit(indices, salt):
    """SplitMix64 finalizer of index·φ + salt, top 53 bits as a float64 in [0, 1)."""
    with np.errstate(over="ignore"):
        z = indices.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def initial_parameters():
    """Per layer: W [in][out] Glorot-uniform from the hash of the flat index (salt 1), zero bias."""
    layers, offset = [], 0
    for fan_in, fan_out in zip(WIDTHS[:-1], WIDTHS[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        index = np.arange(offset, offset + fan_in * fan_out)
        w = ((hashed_unit(index, 1) * 2 - 1) * limit).astype(np.float32).reshape(fan_in, fan_out)
        layers.append([w, np.zeros(fan_out, np.float32)])
        offset += fan_in * fan_out + fan_out
    return layers


def samples(count):
    """Features (hash of row·9 + column, salt 2) uniform in ±√3; labels the hash's top bit (salt 3)."""
    x = ((hashed_unit(np.arange(count * WIDTHS[0]), 2) * 2 - 1) * np.sqrt(3.0)).astype(np.float32)
    y = (hashed_unit(np.arange(count), 3) >= 0.5).astype(np.float32)
    return x.reshape(count, WIDTHS[0]), y


def flat(layers):
    return np.concatenate([np.concatenate([w.ravel(), b]) for w, b in layers])


def train(layers, x, y, lr, batch, frozen):
    # Adam's constants as the Swift side holds them: float32, widened to float64 for α_t.
    lr, beta1, beta2, eps = (float(np.float32(c)) for c in (lr, 0.9, 0.999, 1e-7))
    layers = [[w.copy(), b.copy()] for w, b in layers]
    moments = [[np.zeros_like(p) for p in layer] for layer in layers]
    second = [[np.zeros_like(p) for p in layer] for layer in layers]
    decay1, decay2 = np.float32(1) - np.float32(beta1), np.float32(1) - np.float32(beta2)
    eps = np.float32(eps)
    loss_sum, step = 0.0, 0
    for start in range(0, len(x), batch):
        grads = [[np.zeros_like(p) for p in layer] for layer in layers]
        rows = range(start, min(start + batch, len(x)))
        for row in rows:
            acts = [x[row]]
            for index, (w, b) in enumerate(layers):
                h = acts[-1] @ w + b
                acts.append(np.maximum(h, 0) if index < len(layers) - 1 else h)
            z = float(acts[-1][0])
            loss_sum += max(z, 0.0) - float(y[row]) * z + np.log1p(np.exp(-abs(z)))
            delta = (np.float32(1) / (np.float32(1) + np.exp(-acts[-1]))) - y[row]
            for index in range(len(layers) - 1, frozen - 1, -1):
                w = layers[index][0]
                grads[index][0] += np.outer(acts[index], delta)
                grads[index][1] += delta
                delta = (w @ delta) * (acts[index] > 0)
        for layer in grads:
            for g in layer:
                g /= np.float32(len(rows))
        step += 1
        alpha = np.float32(lr * np.sqrt(1 - beta2 ** step) / (1 - beta1 ** step))
        for index in range(frozen, len(layers)):
            for k in range(2):
                g, m, v, p = grads[index][k], moments[index][k], second[index][k], layers[index][k]
                m += (g - m) * decay1
                v += (g * g - v) * decay2
                p -= (m * alpha) / (np.sqrt(v) + eps)
    return layers, loss_sum / len(x)


def main():
    np.seterr(under="ignore")
    initial = initial_parameters()
    start = flat(initial).astype(np.float64)
    x, y = samples(2000)
    sample_indices = list(range(0, start.size, 97)) + [start.size - 1]
    cases = {}
    for name, lr, batch, frozen in [("adam_batch1", 1e-5, 1, 0), ("adam_batch16_frozen2", 1e-3, 16, 2)]:
        trained, mean_loss = train(initial, x, y, lr, batch, frozen)
        final = flat(trained).astype(np.float64)
        cases[name] = dict(learning_rate=lr, batch_size=batch, frozen_layers=frozen,
                           mean_loss=mean_loss, parameter_sum=float(final.sum()),
                           update_abs_sum=float(np.abs(final - start).sum()),
                           sample_values=[float(final[i]) for i in sample_indices])
    fixture = dict(widths=WIDTHS, sample_count=len(x), sample_indices=sample_indices, cases=cases)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "training_reference.json")
    with open(path, "w") as f:
        json.dump(fixture, f, indent=1)
    print({k: (v["mean_loss"], v["update_abs_sum"]) for k, v in cases.items()})


if __name__ == "__main__":
    main()
