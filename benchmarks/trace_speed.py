"""Speed of the exact kink tracer (smp.trace.trace_line): events per second.

Two networks, one random segment each:
  * a Conv-ReLU-MaxPool CNN, ``smp.networks.conv_net((1, 8, 16), input_size=16, head=10)``
    (two blocks on a 1x16x16 image, a linear head of 10 outputs);
  * a dense ReLU net, ``smp.networks.dense_net(64, 256, 4)`` with a linear head of 10 outputs.

Baseline, measured in the same run: ``n_events`` plain forward passes of one sample through the
same float64 network -- the least a brute-force search pays (one evaluation per breakpoint).  The
ratio is the tracer's cost per event in forward passes.  Best of ``--repeats`` runs for both, one
torch thread for both (the tracer's default; tiny tensors gain nothing from threads).

Usage: python benchmarks/trace_speed.py [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from torch import nn

from smp import networks
from smp.trace import benchmark


def cases(seed: int):
    rng = np.random.default_rng(seed)
    cnn = networks.conv_net((1, 8, 16), input_size=16, head=10, seed=seed)
    x0 = rng.standard_normal((1, 16, 16))
    d = 2.0 * rng.standard_normal((1, 16, 16))
    yield "Conv-ReLU-MaxPool CNN (1x16x16 -> 8 -> 16 ch, head 10)", cnn, x0 - d / 2, d
    head = nn.Linear(256, 10, dtype=torch.float64)
    with torch.no_grad():
        head.weight.normal_(0.0, (1 / 256) ** 0.5, generator=torch.Generator().manual_seed(seed))
        head.bias.zero_()
    dense = nn.Sequential(networks.dense_net(64, 256, 4, seed=seed), head).eval()
    x0 = rng.standard_normal(64)
    d = 2.0 * rng.standard_normal(64)
    yield "dense ReLU net (64 -> 4 x 256, head 10)", dense, x0 - d / 2, d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; torch {torch.__version__}")
    header = f"{'network':55s} {'events':>7s} {'trace s':>8s} {'events/s':>9s} {'fwd/s':>9s} {'ratio':>6s}"
    print(header)
    print("-" * len(header))
    for name, model, x0, d in cases(args.seed):
        b = benchmark(model, x0, d, repeats=args.repeats)
        print(
            f"{name:55s} {b.n_events:7d} {b.trace_seconds:8.3f} {b.events_per_second:9.0f} "
            f"{b.forwards_per_second:9.0f} {b.ratio:6.1f}"
        )
    print("ratio = tracer time / time of n_events single-sample forward passes (cost per event in forward passes)")


if __name__ == "__main__":
    main()
