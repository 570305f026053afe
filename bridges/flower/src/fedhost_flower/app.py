"""The FedHost Flower app: a ServerApp that runs a whole FedHost protocol and a ClientApp that
trains its device with FedHost's engine (libFedHostEngine.so, in the ClientApp's process).

Run config keys (``[tool.flwr.app.config]`` of ``examples/fedhost/pyproject.toml``, or
``--run-config``): federation, data-dir, protocol, seed, aggregator, initializer, settings
(``KEY=VALUE;…`` of host's option table), client-hook, baselines, title, result-dir, node-timeout,
round-timeout.  A SuperNode's ``partition-id`` is the index of the device it holds.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from .engine import ClientUpdate, Engine
from .plugin import load_plugin
from .protocol import ProtocolError, run_protocol, strategy_plugins

_log = logging.getLogger("fedhost_flower.app")

DEFAULTS: dict[str, Any] = {
    "federation": "", "data-dir": ".", "protocol": "fl", "seed": 0, "aggregator": "libFedAvg.so",
    "initializer": "auto", "client-hook": "", "settings": "", "baselines": True, "title": "", "result-dir": "",
    "node-timeout": 120.0, "round-timeout": 600.0, "model-dir": "", "fail-device": -1, "fail-round": -1,
}


def run_settings(config: Mapping[str, Any]) -> dict[str, str]:
    """The engine settings of a run config: protocol plus the ``settings`` KEY=VALUE entries."""
    settings = {"protocol": str(config["protocol"])}
    for entry in filter(None, (part.strip() for part in str(config["settings"]).split(";"))):
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ProtocolError(f"run config settings: expected KEY=VALUE, got {entry!r}")
        settings[key.strip()] = value.strip()
    return settings


def open_engine(config: Mapping[str, Any]) -> Engine:
    spec = str(config["federation"]) or None
    return Engine(spec, str(config["data-dir"]), run_settings(config), seed=int(config["seed"]))


def initializer_choice(config: Mapping[str, Any], aggregator: str) -> str | None:
    """``auto``: the aggregator itself when it is an initializer (host compare's rule); ``none``; a plugin."""
    choice = str(config["initializer"])
    if choice == "none" or config["protocol"] == "fl" and choice == "auto":
        return None
    if choice == "auto":
        from .plugin import load_plugin

        return aggregator if "initializer" in load_plugin(aggregator).descriptor.kind_names else None
    return choice


# ---------------------------------------------------------------------------------- client side

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


#: The run config entries the ServerApp sends with every message: the ClientApp opens the same
#: federation, settings and seed (a node's own ``data-dir`` node config wins: its data is local).
ENGINE_KEYS = ("federation", "data-dir", "protocol", "settings", "seed", "fail-device", "fail-round", "model-dir")


def client_engine(msg: Message, context: Context) -> tuple[Engine, int]:
    """This process's engine for the run (opened once, shared by the nodes it serves) and the node's device."""
    config = {**DEFAULTS, **dict(msg.content["engine"])}
    if "data-dir" in context.node_config:
        config["data-dir"] = context.node_config["data-dir"]
    key = json.dumps([config["federation"], config["data-dir"], run_settings(config), int(config["seed"])])
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = open_engine(config)
        engine = _ENGINES[key]
    client = int(context.node_config["partition-id"])
    if not 0 <= client < engine.client_count:
        raise ProtocolError(f"node partition-id {client}: the federation has devices 0..{engine.client_count - 1}")
    return engine, client


def _weights(msg: Message, name: str = "global") -> np.ndarray:
    return msg.content["arrays"][name].numpy()


def _reply(msg: Message, arrays: Mapping[str, np.ndarray] | None = None, **metrics: float) -> Message:
    content = RecordDict({"metrics": MetricRecord({k: float(v) for k, v in metrics.items()})})
    if arrays:
        content["arrays"] = ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})
    return Message(content, reply_to=msg)


def _score_reply(msg: Message, score: Mapping[str, Any]) -> Message:
    return _reply(msg, **{k: v for k, v in score.items()})


client_app = ClientApp()


def _injected_failure(msg: Message, context: Context, round_index: int) -> None:
    """``fail-device``/``fail-round`` in the run config: this node's ClientApp dies in that round
    (tests/test_fedhost_app.py checks that the ServerApp reports it and goes on)."""
    config = {**context.run_config, **dict(msg.content["engine"])}
    device, at = config.get("fail-device", -1), config.get("fail-round", -1)
    if int(context.node_config["partition-id"]) == int(device) and round_index + 1 == int(at):
        raise RuntimeError(f"device {device}: injected failure in round {at}")


@client_app.query("describe")
def describe(msg: Message, context: Context) -> Message:
    engine, client = client_engine(msg, context)
    return _reply(msg, device=client, parameters=engine.parameter_count)


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    engine, client = client_engine(msg, context)
    round_index = int(msg.content["config"]["round"])
    _injected_failure(msg, context, round_index)
    hook = str(msg.content["config"]["client-hook"]) or None
    engine.use_client_hook(hook)
    # A strategy's auxiliary vectors (plugin ABI 1.2): down in the message, up in the reply.
    arrays_in = msg.content["arrays"]
    aux_down = arrays_in["aux-down"].numpy() if "aux-down" in arrays_in else None
    aux_up_vectors = load_plugin(hook).descriptor.n_aux_up if hook else 0
    update = engine.train(client, round_index, _weights(msg), aux_down, aux_up_vectors)
    arrays = {"delta": update.delta}
    if update.coverage is not None:
        arrays["coverage"] = update.coverage.astype(np.uint8)
    if update.aux_up is not None:
        arrays["aux-up"] = update.aux_up
    content = RecordDict({
        "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
        "metrics": MetricRecord({"num-examples": update.n_samples, **update.metrics}),
    })
    return Message(content, reply_to=msg)


@client_app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    engine, client = client_engine(msg, context)
    loss, accuracy = engine.evaluate(client, _weights(msg))
    return _reply(msg, loss=loss, accuracy=accuracy)


@client_app.evaluate("score")
def score(msg: Message, context: Context) -> Message:
    engine, client = client_engine(msg, context)
    return _score_reply(msg, engine.score_global(client, _weights(msg)))


@client_app.train("personalize")
def personalize(msg: Message, context: Context) -> Message:
    """Phase 3 on the device; the personalized model stays there (in model-dir when set)."""
    engine, client = client_engine(msg, context)
    model, result = engine.personalize(client, _weights(msg))
    model_dir = str(msg.content["engine"]["model-dir"])
    if model_dir:
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        engine.save_model(client, model, Path(model_dir) / f"personalized-{engine.client_name(client)}.fhmodel")
    return _score_reply(msg, result)


@client_app.train("serial")
def serial_train(msg: Message, context: Context) -> Message:
    engine, client = client_engine(msg, context)
    config = msg.content["config"]
    trained, loss = engine.serial_train(client, _weights(msg), int(config["epochs"]), int(config["visit"]))
    return _reply(msg, {"weights": trained}, loss=loss)


@client_app.evaluate("serial")
def serial_evaluate(msg: Message, context: Context) -> Message:
    engine, client = client_engine(msg, context)
    loss, accuracy = engine.serial_evaluate(client, _weights(msg))
    return _reply(msg, loss=loss, accuracy=accuracy)


# ---------------------------------------------------------------------------------- server side

class GridClients:
    """The protocol's client work as Flower messages: one node per device (its partition-id)."""

    def __init__(self, grid: Grid, config: Mapping[str, Any], client_count: int, progress: Any = _log.info) -> None:
        self.grid = grid
        self.engine_config = {key: config[key] for key in ENGINE_KEYS}
        round_timeout, node_timeout = float(config["round-timeout"]), float(config["node-timeout"])
        self.timeout = round_timeout
        self.progress = progress
        self.failures: list[str] = []
        self.nodes: dict[int, int] = {}
        self.nodes = self._discover(client_count, node_timeout)
        #: The client hook each train message names (the ClientApps load it).
        self.client_hook = ""

    def _discover(self, client_count: int, node_timeout: float) -> dict[int, int]:
        """device → node id, after waiting (bounded) for one SuperNode per device."""
        deadline = time.monotonic() + node_timeout
        while len(node_ids := list(self.grid.get_node_ids())) < client_count:
            if time.monotonic() > deadline:
                raise ProtocolError(f"the federation has {client_count} devices but {len(node_ids)} SuperNode(s) "
                                    f"connected within {node_timeout:.0f} s: start one SuperNode per device "
                                    f"(simulation: options.num-supernodes = {client_count})")
            time.sleep(1)
        nodes: dict[int, int] = {}
        for node, reply in self._ask(node_ids, "query.describe", lambda _node: RecordDict()):
            if reply is None:
                continue
            device = int(reply.content["metrics"]["device"])
            if device in nodes:
                raise ProtocolError(f"nodes {nodes[device]} and {node} both hold device {device} (partition-id)")
            nodes[device] = node
        missing = [d for d in range(client_count) if d not in nodes]
        if missing:
            raise ProtocolError(f"no SuperNode holds device(s) {missing}: set partition-id 0..{client_count - 1}")
        return nodes

    def _ask(self, nodes: Sequence[int], message_type: str, content: Any) -> Iterable[tuple[int, Message | None]]:
        """Sends one message per node; yields (node, reply or None for a failed node) in `nodes` order."""
        messages = []
        for node in nodes:
            record = content(node)
            record["engine"] = ConfigRecord(dict(self.engine_config))
            messages.append(Message(record, dst_node_id=node, message_type=message_type))
        replies = {reply.metadata.src_node_id: reply
                   for reply in self.grid.send_and_receive(messages, timeout=self.timeout)}
        for node in nodes:
            reply = replies.get(node)
            if reply is None or reply.has_error():
                reason = "no reply within the timeout" if reply is None else reply.error.reason
                device = next((d for d, n in self.nodes.items() if n == node), "?")
                line = f"{message_type}: device {device} (node {node}) failed: {reason.strip().splitlines()[-1]}"
                self.failures.append(line)
                self.progress(line)
                yield node, None
            else:
                yield node, reply

    def _each(self, clients: Sequence[int], message_type: str, weights: np.ndarray,
              config: Mapping[str, Any] | None = None,
              extra_arrays: Mapping[int, Mapping[str, np.ndarray]] | None = None) -> dict[int, Message]:
        by_node = {self.nodes[c]: c for c in clients}

        def content(node: int) -> RecordDict:
            arrays = {"global": np.ascontiguousarray(weights), **(extra_arrays or {}).get(by_node[node], {})}
            record = RecordDict({"arrays": ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})})
            if config:
                record["config"] = ConfigRecord(dict(config))
            return record

        return {by_node[node]: reply for node, reply in self._ask(list(by_node), message_type, content)
                if reply is not None}

    def train(self, round_index: int, clients: Sequence[int], global_weights: np.ndarray,
              aux_down: Mapping[int, np.ndarray] | None = None) -> list[ClientUpdate]:
        replies = self._each(clients, "train", global_weights, {"round": round_index, "client-hook": self.client_hook},
                             {c: {"aux-down": v} for c, v in (aux_down or {}).items()})
        updates = []
        for client in clients:
            if client not in replies:
                continue
            content = replies[client].content
            arrays = content["arrays"]
            metrics = dict(content["metrics"])
            n_samples = int(metrics.pop("num-examples"))
            coverage = arrays["coverage"].numpy().astype(bool) if "coverage" in arrays else None
            updates.append(ClientUpdate(client, arrays["delta"].numpy(), coverage, n_samples,
                                        {k: float(v) for k, v in metrics.items()},
                                        arrays["aux-up"].numpy() if "aux-up" in arrays else None))
        return updates

    def _metrics(self, clients: Sequence[int], message_type: str, weights: np.ndarray) -> dict[int, dict[str, float]]:
        return {c: dict(reply.content["metrics"]) for c, reply in self._each(clients, message_type, weights).items()}

    def evaluate(self, clients: Sequence[int], global_weights: np.ndarray) -> dict[int, tuple[float, float]]:
        return {c: (m["loss"], m["accuracy"]) for c, m in self._metrics(clients, "evaluate", global_weights).items()}

    def score(self, clients: Sequence[int], global_weights: np.ndarray) -> dict[int, dict[str, Any]]:
        return self._metrics(clients, "evaluate.score", global_weights)

    def personalize(self, clients: Sequence[int], global_weights: np.ndarray) -> dict[int, dict[str, Any]]:
        return self._metrics(clients, "train.personalize", global_weights)

    def _one(self, client: int, message_type: str, weights: np.ndarray, config: Mapping[str, Any] | None = None) -> Message:
        reply = self._each([client], message_type, weights, config).get(client)
        if reply is None:
            raise ProtocolError(f"Phase 1 needs device {client}, which failed: {self.failures[-1]}")
        return reply

    def serial_train(self, client: int, weights: np.ndarray, epochs: int, visit: int) -> tuple[np.ndarray, float]:
        reply = self._one(client, "train.serial", weights, {"epochs": epochs, "visit": visit})
        return reply.content["arrays"]["weights"].numpy(), float(reply.content["metrics"]["loss"])

    def serial_evaluate(self, client: int, weights: np.ndarray) -> tuple[float, float]:
        metrics = self._one(client, "evaluate.serial", weights).content["metrics"]
        return float(metrics["loss"]), float(metrics["accuracy"])


def make_server_app(defaults: Mapping[str, Any] | None = None) -> ServerApp:
    """The ServerApp; ``defaults`` sit under the run config (``run_simulation`` passes none)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config = {**DEFAULTS, **(defaults or {}), **context.run_config}
        engine = open_engine(config)
        aggregator = str(config["aggregator"])
        initializer = initializer_choice(config, aggregator)
        client_hook = str(config["client-hook"]) or None
        _, _, hook, _ = strategy_plugins(engine, aggregator, initializer, client_hook)  # refuse before any message
        clients = GridClients(grid, config, engine.client_count, progress=print)
        clients.client_hook = hook or ""
        title = str(config["title"]) or f"FedHost on Flower: {aggregator} ({engine.protocol})"
        outcome = run_protocol(engine, clients, aggregator, initializer, title, bool(config["baselines"]), print,
                               client_hook=client_hook)
        if config["result-dir"]:
            out = Path(str(config["result-dir"]))
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(outcome.report_json + "\n")
            (out / "report.md").write_text(outcome.report_markdown)
            (out / "rounds.json").write_text(json.dumps(
                [{"round": r.round, "clients": r.clients, "failed": r.failed, "weights": r.weights,
                  "test_loss": r.test_loss, "test_accuracy": r.test_accuracy, "seconds": r.seconds,
                  "strategy_metrics": r.metrics} for r in outcome.rounds], indent=1))
            (out / "failures.txt").write_text("".join(line + "\n" for line in clients.failures))
        print(outcome.report_markdown)

    return app


server_app = make_server_app()
