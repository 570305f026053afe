"""Shared fixtures: where the plugins are, fake Flower replies, a fake Grid, C stub plugins."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, Metadata, MessageType, MetricRecord, RecordDict

REPO = Path(__file__).resolve().parents[3]
PLUGIN_DIR = Path(os.environ.get("FEDHOST_PLUGIN_DIR", REPO / ".build" / "release"))
HEADER_DIR = REPO / "Sources" / "PluginAPI" / "include"


def plugin_path(name: str) -> Path:
    """``lib<name>.so`` in $FEDHOST_PLUGIN_DIR; a missing plugin fails the test (CI builds them)."""
    path = PLUGIN_DIR / f"lib{name}.so"
    if not path.is_file():
        pytest.fail(f"{path} not found: build the plugins (swift build -c release) or set FEDHOST_PLUGIN_DIR")
    return path


def reply(node_id: int, arrays: Mapping[str, np.ndarray], metrics: Mapping[str, float]) -> Message:
    """A train reply as a SuperNode would send it: one ArrayRecord, one MetricRecord."""
    metadata = Metadata(
        run_id=1, message_id=f"m{node_id}", src_node_id=node_id, dst_node_id=0, reply_to_message_id="i",
        group_id="1", created_at=time.time(), ttl=60.0, message_type=MessageType.TRAIN,
    )
    content = RecordDict({
        "arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()}),
        "metrics": MetricRecord(dict(metrics)),
    })
    return Message(content, metadata=metadata)


class FakeGrid:
    """Just enough of flwr.serverapp.Grid for configure_train: the connected node ids."""

    def __init__(self, node_ids: list[int]) -> None:
        self.node_ids = node_ids

    def get_node_ids(self) -> list[int]:
        return list(self.node_ids)


def random_model(rng: np.random.Generator, scale: float = 1.0) -> dict[str, np.ndarray]:
    """A small model with several shapes (conv kernel, bias, dense), float32."""
    shapes = {"conv.w": (4, 3, 3, 3), "conv.b": (4,), "fc.w": (10, 36), "fc.b": (10,)}
    return {k: (rng.normal(0, scale, s)).astype(np.float32) for k, s in shapes.items()}


@pytest.fixture
def federation() -> tuple[dict[str, np.ndarray], list[Message]]:
    """A global model and 4 client replies with different sample counts and query losses."""
    rng = np.random.default_rng(7)
    global_model = random_model(rng)
    replies = [
        reply(
            node_id=1000 + k,
            arrays={n: a + rng.normal(0, 0.1, a.shape).astype(np.float32) for n, a in global_model.items()},
            metrics={"num-examples": n, "query_loss": 0.2 + 0.1 * k, "train_loss": 0.5 - 0.05 * k},
        )
        for k, n in enumerate([30, 120, 7, 55])
    ]
    return global_model, replies


STUB_SOURCE = r"""
#include "fedhost_plugin.h"
static const fhp_descriptor desc = {sizeof(fhp_descriptor), STUB_MAJOR, 0, FHP_KIND_AGGREGATOR,
  "org.test.stub", "Stub", "0.0.1", "test stub", 0, 0, 0};
static fhp_status create(const fhp_host *h, const char *c, fhp_instance **o) { *o = (fhp_instance *)1; return FHP_OK; }
static void destroy(fhp_instance *i) {}
static const char *last_error(const fhp_instance *i) { return ""; }
static fhp_status aggregate(fhp_instance *i, uint32_t r, const float *g, uint64_t n, const fhp_update *u,
                            uint32_t k, float *og, double *ow) { return FHP_E_INTERNAL; }
/* struct_size STUB_VT_SIZE may stop before aggregate: the bridge must then ignore the pointer. */
static const fhp_vtable vt = {STUB_VT_SIZE, 0, create, destroy, last_error, 0, aggregate};
#ifndef STUB_NO_ENTRY
FHP_EXPORT fhp_status fedhost_plugin_entry(uint32_t major, uint32_t minor, const fhp_descriptor **d,
                                           const fhp_vtable **v) {
  *d = &desc; *v = &vt;
  return major == STUB_MAJOR ? FHP_OK : FHP_E_VERSION;
}
#endif
"""


@pytest.fixture(scope="session")
def stub_plugin(tmp_path_factory: pytest.TempPathFactory):
    """Compile a C stub plugin with the given -D flags; skips when no C compiler is present."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler for the stub plugins")
    directory = tmp_path_factory.mktemp("stubs")
    source = directory / "stub.c"
    source.write_text(STUB_SOURCE)

    def build(name: str, major: int = 1, vt_size: str = "sizeof(fhp_vtable)", no_entry: bool = False) -> Path:
        out = directory / f"lib{name}.so"
        flags = [f"-DSTUB_MAJOR={major}u", f"-DSTUB_VT_SIZE={vt_size}"] + (["-DSTUB_NO_ENTRY"] if no_entry else [])
        subprocess.run([cc, "-shared", "-fPIC", "-O1", "-I", str(HEADER_DIR), *flags, "-o", str(out), str(source)],
                       check=True)
        return out

    return build


@pytest.fixture(autouse=True)
def serverapp_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a running ServerApp has set: Message() for instructions needs run/node/task ids."""
    from flwr.supercore.task_identity import TaskIdentity

    for attr in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)
