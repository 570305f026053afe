"""The model and data: logistic regression on seeded synthetic, per-client shifted data."""

from __future__ import annotations

import numpy as np

N_FEATURES = 8
_TRUE_W = np.linspace(-1.5, 1.5, N_FEATURES)
_TRUE_B = 0.3


def initial_params() -> dict[str, np.ndarray]:
    """A fixed starting model (small seeded weights)."""
    rng = np.random.default_rng(0)
    return {"w": rng.normal(0, 0.01, N_FEATURES).astype(np.float32), "b": np.zeros(1, np.float32)}


def client_data(partition: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Partition ``partition``'s rows: sizes and feature shifts differ per client (non-IID)."""
    rng = np.random.default_rng([seed, partition])
    n = 150 + 100 * partition
    x = rng.normal(0.5 * partition, 1.0, (n, N_FEATURES))
    y = (rng.random(n) < sigmoid(x @ _TRUE_W + _TRUE_B)).astype(np.float64)
    return x, y


def split(x: np.ndarray, y: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """80 % support (training), 20 % query (scores the update)."""
    cut = int(0.8 * len(y))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def loss_and_grad(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """Mean binary cross-entropy and its gradient."""
    p = sigmoid(x @ params["w"].astype(np.float64) + float(params["b"][0]))
    eps = 1e-12
    loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    err = (p - y) / len(y)
    return loss, {"w": x.T @ err, "b": np.array([err.sum()])}


def train(
    params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, epochs: int, lr: float, mu: float = 0.0
) -> tuple[dict[str, np.ndarray], float]:
    """Full-batch gradient descent; ``mu`` > 0 adds FedProx's mu*(w - w_global) to the gradient."""
    start = {k: v.astype(np.float64) for k, v in params.items()}
    current = dict(start)
    loss = float("nan")
    for _ in range(epochs):
        loss, grad = loss_and_grad(current, x, y)
        current = {k: current[k] - lr * (grad[k] + mu * (current[k] - start[k])) for k in current}
    return {k: v.astype(np.float32) for k, v in current.items()}, loss


def pooled_test_data(num_partitions: int) -> tuple[np.ndarray, np.ndarray]:
    """A held-out set drawn like every client's data (seed 1), for the server's evaluation."""
    parts = [client_data(p, seed=1) for p in range(num_partitions)]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])
