"""Retrain the digits autoencoder of the trained-networks chapter and remeasure every checkpoint.

Usage (the one documented retraining command, from the repository root)::

    .venv/bin/python scripts/train_trained.py

Trains the ReLU autoencoder of ``smp.experiments.trained`` on scikit-learn's digits (Adam, 3000
steps, float64, seed 0), stores the checkpoints at steps 0, 30, 300 and 3000 as
``data/trained_digits.pt``, then measures the exact per-layer SMP (births and pass-through) of every
checkpoint on 100 lines between training images, 100 between held-out images and 50 random great
circles (400 grid samples each, every kink event resolved) with the block models' predictions, and
writes ``data/07_trained_training.csv``, ``data/07_trained_weights.csv`` and
``data/07_trained_smp.csv`` through ``smp.data.write``.  About 5 minutes on one thread of a loaded machine.
"""

from __future__ import annotations

import time

import torch

from smp.experiments import trained


def main() -> None:
    # one thread: tiny matrix products, where a second thread on a loaded machine costs more than it
    # saves (measured 40x slower training with 2 threads while another job ran)
    torch.set_num_threads(1)
    start = time.perf_counter()
    for path in trained.write_tables(progress=True):
        print("wrote", path)
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
