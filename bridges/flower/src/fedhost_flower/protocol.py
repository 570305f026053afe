"""A whole FedHost protocol (standard FL or Fed-Meta-Align) driven from a server process whose
clients live elsewhere — Flower's SuperNodes — without Flower in this module.

The driver asks the server's own engine (:class:`fedhost_flower.engine.Engine`, opened on the
same spec, settings and seed) only for what ``host`` computes centrally: the Phase 0 starting
model, each round's sampled participants, the baselines and the report.  Client work goes
through a :class:`Clients` transport; aggregation and Phase 1 run the FedHost plugins through
the ctypes loader (:mod:`fedhost_flower.plugin`), with the same config ``host`` gives them, the
updates in the same client order and the same float32 deltas — so the report is ``host``'s, bit
for bit (``tests/test_fedhost_app.py``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import abi
from .engine import BASELINE_CENTRALIZED, BASELINE_LOCAL_ONLY, BASELINE_NAMES, ClientUpdate, Engine
from .plugin import PluginError, PluginInstance, RoundInfo, Update, load_plugin

_log = logging.getLogger("fedhost_flower.protocol")

SIMILARITY_AWARE_ID = "org.fedhost.similarity-aware"


class ProtocolError(RuntimeError):
    """A run that cannot go on (a refused plugin, no client left), one line."""


class Clients(Protocol):
    """Where client work runs.  Each method returns results for the clients that answered, in
    the order asked; a client that failed is left out (and reported by the transport)."""

    def train(self, round_index: int, clients: Sequence[int], global_weights: np.ndarray,
              aux_down: Mapping[int, np.ndarray] | None = None) -> list[ClientUpdate]:
        """``aux_down``: per client, the aggregator's auxiliary vectors for its client hook
        (plugin ABI 1.2); each update then carries the hook's ``aux_up``."""
        ...

    def evaluate(self, clients: Sequence[int], global_weights: np.ndarray) -> dict[int, tuple[float, float]]: ...

    def score(self, clients: Sequence[int], global_weights: np.ndarray) -> dict[int, dict[str, Any]]: ...

    def personalize(self, clients: Sequence[int], global_weights: np.ndarray) -> dict[int, dict[str, Any]]: ...

    def serial_train(self, client: int, weights: np.ndarray, epochs: int, visit: int) -> tuple[np.ndarray, float]: ...

    def serial_evaluate(self, client: int, weights: np.ndarray) -> tuple[float, float]: ...


@dataclass
class RoundRecord:
    round: int
    test_loss: list[float]
    test_accuracy: list[float]
    weights: list[float]
    clients: list[int]
    failed: list[int] = field(default_factory=list)
    #: Wall time of the round: training messages, aggregation, evaluation messages.
    seconds: float = 0.0
    #: What the aggregator reported for the round (ABI 1.2 report_metric).
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class RunOutcome:
    name: str
    report_json: str
    report_markdown: str
    rounds: list[RoundRecord]
    global_weights: np.ndarray


def strategy_plugins(engine: Engine, aggregator: str, initializer: str | None, client_hook: str | None = None) -> tuple[
        PluginInstance, PluginInstance | None, str | None, str]:
    """The aggregator and initializer instances, the client hook the clients must load, and the
    strategy's name — chosen as ``host`` chooses them (StrategyLoader), or refused in one line."""
    library = load_plugin(aggregator)
    kinds = library.descriptor.kinds
    if not kinds & abi.KIND_AGGREGATOR:
        raise ProtocolError(f"{aggregator}: not an aggregator (it provides: {', '.join(library.descriptor.kind_names)})")
    hook = aggregator if kinds & abi.KIND_CLIENT_HOOK else None
    if client_hook is not None:
        hook_library = load_plugin(client_hook)
        if not hook_library.descriptor.kinds & abi.KIND_CLIENT_HOOK:
            raise ProtocolError(f"{client_hook}: not a client-hook (it provides: "
                                f"{', '.join(hook_library.descriptor.kind_names)})")
        hook = client_hook
    if hook == aggregator and library.function("save_state") is not None and not (
            library.descriptor.n_aux_down or library.descriptor.n_aux_up):
        # (A strategy with auxiliary vectors passes everything between the sides in them.)
        # host runs such a plugin as one instance on both sides (MEFL's Meta-GDP alpha is
        # updated by aggregate and read by train_local); across processes that is impossible.
        raise ProtocolError(f"{aggregator}: its client hook shares state with its aggregator inside one instance, "
                            "which cannot be split between the SuperNodes and the ServerApp; run it with host")
    if library.function("select_clients") is not None:
        raise ProtocolError(f"{aggregator}: it chooses each round's clients from their losses (select_clients), which "
                            "the Flower app does not offer yet (it samples with the engine); run it with host")
    instance = library.create(engine.plugin_config(aggregator))
    init_instance = None
    if engine.protocol == "fed-meta-align" and initializer is not None:
        init_library = load_plugin(initializer)
        if not init_library.descriptor.kinds & abi.KIND_INITIALIZER:
            raise ProtocolError(f"{initializer}: not an initializer (it provides: "
                                f"{', '.join(init_library.descriptor.kind_names)})")
        same = init_library.path.resolve() == library.path.resolve()
        init_instance = instance if same else init_library.create(engine.plugin_config(initializer))
    elif initializer is not None:
        raise ProtocolError(f"--initializer {initializer}: the fl protocol has no Phase 1; drop it or use fed-meta-align")
    name = ("Fed-Meta-Align" if init_instance is not None and library.descriptor.id == SIMILARITY_AWARE_ID
            else library.descriptor.name)
    return instance, init_instance, hook, name


def run_protocol(engine: Engine, clients: Clients, aggregator: str, initializer: str | None, title: str,
                 baselines: bool = True, progress: Callable[[str], None] = _log.info,
                 client_hook: str | None = None) -> RunOutcome:
    """One strategy on one seed, as ``host run --baselines none`` (with Local Only & co. when
    ``baselines``) runs it; the report is FedHost's own (``fhe_report``)."""
    instance, init_instance, _, name = strategy_plugins(engine, aggregator, initializer, client_hook)
    everyone = list(range(engine.client_count))
    baseline_results = []
    if baselines:
        kinds = [BASELINE_LOCAL_ONLY] + ([BASELINE_CENTRALIZED] if engine.protocol == "fl" else [])
        for kind in kinds:
            scores = engine.baseline(kind)
            baseline_results.append({"seed": engine.seed, "baseline": BASELINE_NAMES[kind], "scores": scores})
            progress(f"{BASELINE_NAMES[kind]}: accuracy {[round(s['accuracy'], 4) for s in scores]}")

    global_weights = engine.starting_model()
    if init_instance is not None:
        global_weights = serial_initialization(init_instance, clients, global_weights, engine.client_count, progress)

    records: list[RoundRecord] = []
    for round_index in range(engine.rounds):
        clock = time.perf_counter()
        chosen = engine.participants(round_index)
        try:
            aux_down = ({c: instance.prepare_client(RoundInfo(round_index, engine.rounds, engine.client_count, chosen),
                                                    c, global_weights) for c in chosen}
                        if instance.descriptor.n_aux_down else None)
        except PluginError as err:
            raise ProtocolError(f"round {round_index + 1}: {err}") from None
        updates = clients.train(round_index, chosen, global_weights, aux_down)
        if not updates:
            raise ProtocolError(f"round {round_index + 1}: none of clients {chosen} returned an update")
        failed = sorted(set(chosen) - {u.client for u in updates})
        plugin_updates = [
            Update(client_id=u.client, delta=u.delta, n_samples=u.n_samples,
                   metrics=dict(sorted(u.metrics.items())), coverage=u.coverage, aux_up=u.aux_up)
            for u in updates
        ]
        reported: dict[str, float] = {}
        try:
            if instance.library.function("aggregate_round") is not None:
                context = RoundInfo(round_index, engine.rounds, engine.client_count, chosen, failed)
                global_weights, weights, reported = instance.aggregate_round(context, global_weights, plugin_updates)
            else:
                global_weights, weights = instance.aggregate(round_index, global_weights, plugin_updates)
        except PluginError as err:
            raise ProtocolError(f"round {round_index + 1}: {err}") from None
        bad = np.flatnonzero(~np.isfinite(global_weights))
        if bad.size:
            raise ProtocolError(f"{instance.descriptor.id}: aggregate produced a non-finite element {bad[0]} "
                                f"in round {round_index}")
        evaluations = clients.evaluate(everyone, global_weights)
        record = RoundRecord(round_index + 1, [evaluations[c][0] for c in everyone if c in evaluations],
                             [evaluations[c][1] for c in everyone if c in evaluations], [float(w) for w in weights],
                             [u.client for u in updates], failed, time.perf_counter() - clock, reported)
        records.append(record)
        progress(f"round {record.round}/{engine.rounds}: test loss {fmt(record.test_loss)}, accuracy "
                 f"{fmt(record.test_accuracy)}, weights {fmt(record.weights)}"
                 + "".join(f", {key} {value:.4g}" for key, value in sorted(reported.items()))
                 + (f"; clients {failed} failed and were left out" if failed else ""))

    global_scores = clients.score(everyone, global_weights)
    personalized = clients.personalize(everyone, global_weights) if engine.personalizes else None
    missing = [c for c in everyone if c not in global_scores or (personalized is not None and c not in personalized)]
    result: dict[str, Any] = {
        "seed": engine.seed, "strategyIndex": 0, "name": name,
        "global": [global_scores[c] for c in everyone if not missing],
        "accuracyCurve": [mean(r.test_accuracy) for r in records],
        "lossCurve": [mean(r.test_loss) for r in records],
    }
    metric_keys = sorted({key for r in records for key in r.metrics})
    if metric_keys:
        result["strategyMetrics"] = {key: [r.metrics.get(key) for r in records] for key in metric_keys}
    if missing:
        # The report marks the strategy failed, as host does when a strategy fails mid-run.
        result["failure"] = f"devices {missing} did not answer the final scoring, so the run has no score for them"
        progress(result["failure"])
    elif personalized is not None:
        result["personalized"] = [personalized[c] for c in everyone]
    results = {"strategies": [aggregator], "baselines": baseline_results, "results": [result]}
    return RunOutcome(name, engine.report(title, results), engine.report(title, results, markdown=True), records,
                      global_weights)


def serial_initialization(instance: PluginInstance, clients: Clients, weights: np.ndarray, client_count: int,
                          progress: Callable[[str], None]) -> np.ndarray:
    """Phase 1 on the server: the initializer plugin's serial tour, each visit a message to one client."""
    visits = 0

    def train(client: int, current: np.ndarray, epochs: int) -> tuple[np.ndarray, float]:
        nonlocal visits
        visits += 1
        return clients.serial_train(client, current, epochs, visits)

    def evaluate(client: int, current: np.ndarray) -> tuple[float, float]:
        loss, accuracy = clients.serial_evaluate(client, current)
        progress(f"[phase 1] visit {visits}: client {client} query loss {loss:.4f}, accuracy {accuracy:.4f}")
        return loss, accuracy

    return instance.initialize(weights, client_count, train, evaluate)


def mean(values: Sequence[float]) -> float:
    """The mean as FedHost computes it (left-to-right sum from 0), NaN for none."""
    total = 0.0
    for value in values:
        total += value
    return total / len(values) if values else math.nan


def fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"
