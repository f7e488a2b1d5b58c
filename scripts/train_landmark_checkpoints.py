"""Retrain the landmark CNN of the trained-networks chapter and remeasure every checkpoint.

Usage (the one documented retraining command, from the repository root)::

    .venv/bin/python scripts/train_landmark_checkpoints.py

Trains chapter 8's ReLU landmark CNN (``smp.experiments._landmark_trained``: Adam, one-cycle
learning rate, 3000 steps of 128 fresh blob centres, seed 0), stores float64 checkpoints at steps
0, 30, 300 and 3000 as ``data/trained_landmark.pt``, then measures the exact per-layer SMP
(births and pass-through, every breakpoint located by the layer-wise tracer) of every checkpoint
on 60 lines between training images, 60 between held-out images and 12 random great circles,
with the conditional block models' predictions, on 2 worker processes, and writes
``data/07_trained_landmark_training.csv`` and ``data/07_trained_landmark_smp.csv`` through
``smp.data.write``; then measures the new checkpoints again with the refined models
(``smp.experiments._landmark_trained_refined``) into ``data/07_trained_landmark_refined.csv``.
"""

from __future__ import annotations

import time

import torch

from smp.experiments import _landmark_trained, _landmark_trained_refined


def main() -> None:
    # one thread per process: small convolutions on a shared machine
    torch.set_num_threads(1)
    start = time.perf_counter()
    for path in _landmark_trained.write_landmark_tables(progress=True, workers=2):
        print("wrote", path)
    # the refined models' table measures the stored checkpoints: remeasure it on the new ones
    for path in _landmark_trained_refined.write_refined_table(progress=True, workers=2):
        print("wrote", path)
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
