"""PyTorch minibatch training of the paper MLP (9-256-128-64-32-16-12-8-1, ReLU, sigmoid + BCE),
one thread, Adam(fused=True): the peer of FedHost's batched training rows.
The batch-size counterpart of ../shared/bench/reference/torch_bench.py (which trains batch 1):
same model, data (common.make_data) and record convention (out/*.json in the working directory).
Usage: N_THREADS=1 python torch_batched.py BATCH [REPS]   (run from any directory; common.py is
imported from ../shared/bench/reference relative to this file's repository)
"""
import os, sys, platform
NT = os.environ.get("N_THREADS", "1")
for k in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]:
    os.environ[k] = NT
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "reference"))
import numpy as np
import torch
torch.set_num_threads(int(NT)); torch.set_num_interop_threads(int(NT))
from torch import nn
from common import DIMS, make_data, timeit_reps, summarize, emit, n_params

def build():
    torch.manual_seed(1)
    layers = []
    for a, b in zip(DIMS[:-2], DIMS[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers += [nn.Linear(DIMS[-2], 1)]
    return nn.Sequential(*layers)

def main():
    batch = int(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    X, y = make_data()
    xs = [torch.from_numpy(X[i:i + batch]).clone() for i in range(0, len(X), batch)]
    ys = [torch.from_numpy(y[i:i + batch]).clone() for i in range(0, len(X), batch)]
    m = build()
    assert sum(p.numel() for p in m.parameters()) == n_params()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-7, fused=True)
    lossf = nn.BCEWithLogitsLoss()  # the sigmoid folded into the loss, as FedHost's head does
    def epoch():
        for xb, yb in zip(xs, ys):
            opt.zero_grad(set_to_none=True)
            lossf(m(xb), yb).backward()
            opt.step()
    res = dict(bench="pytorch_batched", torch=torch.__version__, python=platform.python_version(),
               n_threads=torch.get_num_threads(), batch=batch)
    res["train_adam_fused"] = summarize(timeit_reps(epoch, reps=reps, warmup=1), len(X))
    emit(f"out/torch_batch{batch}.json", res)

if __name__ == "__main__":
    main()
