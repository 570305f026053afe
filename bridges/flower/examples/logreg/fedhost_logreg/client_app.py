"""ClientApp: trains on its support split, reports num-examples, train_loss and query_loss."""

from __future__ import annotations

from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from .task import client_data, loss_and_grad, split, train

app = ClientApp()


def _data(context: Context):
    return split(*client_data(int(context.node_config["partition-id"])))


@app.train()
def train_fn(msg: Message, context: Context) -> Message:
    params = {k: a.numpy() for k, a in msg.content["arrays"].items()}
    config = msg.content["config"]
    (x, y), (xq, yq) = _data(context)
    trained, train_loss = train(
        params, x, y,
        epochs=int(context.run_config.get("local-epochs", 20)),
        lr=float(context.run_config.get("learning-rate", 0.3)),
        mu=float(config.get("proximal-mu", 0.0)),
    )
    query_loss, _ = loss_and_grad(trained, xq, yq)
    metrics = MetricRecord({"num-examples": len(y), "train_loss": train_loss, "query_loss": query_loss})
    return Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in trained.items()}), "metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate_fn(msg: Message, context: Context) -> Message:
    params = {k: a.numpy() for k, a in msg.content["arrays"].items()}
    _, (xq, yq) = _data(context)
    loss, _ = loss_and_grad(params, xq, yq)
    metrics = MetricRecord({"num-examples": len(yq), "eval_loss": loss})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
