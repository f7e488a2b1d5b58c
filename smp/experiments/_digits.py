"""The trained-networks chapter's task: scikit-learn's digits, a ReLU autoencoder, its training.

The data ship inside scikit-learn (``sklearn.datasets.load_digits``: 1,797 8x8 images, nothing
downloaded); the autoencoder is trained with Adam and stored at checkpoints through
:mod:`smp.data`.  Re-exported by :mod:`smp.experiments.trained`, which measures and predicts.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .. import data as _data
from .._validation import check_int

__all__ = [
    "PATH_KINDS",
    "CHECKPOINTS",
    "HELD_OUT",
    "WIDTHS",
    "DigitsSplit",
    "digits_autoencoder",
    "load_checkpoints",
    "load_digits_split",
    "pack_checkpoints",
    "reconstruction_error",
    "train_autoencoder",
]

#: the three kinds of path
PATH_KINDS = ("train", "held_out", "circle")


#: training steps at which the weights are stored (0 = initialisation)
CHECKPOINTS = (0, 30, 300, 3000)


#: layer widths of the autoencoder, input first
WIDTHS = (64, 128, 128, 128, 64)


#: number of images kept out of training
HELD_OUT = 500


class DigitsSplit(NamedTuple):
    """Standardised digits: ``train`` and ``held_out`` images ``(n, 64)`` float64 tensors, and the
    training set's per-pixel ``mean`` and ``std`` used to standardise (``std`` 1 for the pixels
    that are constant over the training set)."""

    train: torch.Tensor
    held_out: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


def load_digits_split(held_out: int = HELD_OUT, *, seed: int = 0) -> DigitsSplit:
    """scikit-learn's digits, split at random (seeded) into training and held-out images.

    Pixels (0..16) are standardised with the training images' per-pixel mean and standard
    deviation, so the held-out images are scaled exactly as the network saw its training data.

    Example
    -------
    >>> split = load_digits_split()
    >>> tuple(split.train.shape), tuple(split.held_out.shape)
    ((1297, 64), (500, 64))
    """
    from sklearn.datasets import load_digits

    images = torch.as_tensor(load_digits().data, dtype=torch.float64)
    held_out = check_int("held_out", held_out)
    if held_out >= len(images) - 1:
        raise ValueError(
            f"held_out must leave at least 2 training images (< {len(images) - 1}), got {held_out}"
        )
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    train, test = images[order[held_out:]], images[order[:held_out]]
    mean, std = train.mean(0), train.std(0)
    std = torch.where(
        std > 0, std, torch.ones_like(std)
    )  # a few border pixels are always 0
    return DigitsSplit((train - mean) / std, (test - mean) / std, mean, std)


def digits_autoencoder(widths=WIDTHS, *, seed: int = 0) -> nn.Sequential:
    """``Linear -> ReLU`` for each hidden width, then a linear output layer; float64.

    Weights ``N(0, 2/fan_in)`` (He), biases 0, drawn from a generator seeded with ``seed``.

    Example
    -------
    >>> net = digits_autoencoder()
    >>> [type(m).__name__ for m in net][:3], net[0].weight.dtype
    (['Linear', 'ReLU', 'Linear'], torch.float64)
    """
    widths = [check_int("widths", w) for w in widths]
    if len(widths) < 2:
        raise ValueError(
            f"widths must list the input width and at least one more, got {widths!r}"
        )
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        linear = nn.Linear(n_in, n_out, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.normal_(0.0, (2.0 / n_in) ** 0.5, generator=gen)
            linear.bias.zero_()
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train_autoencoder(
    split: DigitsSplit,
    *,
    steps: int = CHECKPOINTS[-1],
    checkpoints=CHECKPOINTS,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict[int, dict[str, torch.Tensor]], pd.DataFrame]:
    """Train :func:`digits_autoencoder` by Adam on the training images, keeping checkpoints.

    Each step draws ``batch_size`` training images (with replacement, seeded) and minimises the
    mean squared reconstruction error (float64).  Returns ``{step: state_dict}`` for every step in
    ``checkpoints`` (weights after that many steps; 0 is the initialisation) and a table of the
    training and held-out mean squared error (per pixel, standardised units) at each checkpoint.
    """
    steps = check_int("steps", steps)
    checkpoints = sorted({check_int("checkpoints", c, 0) for c in checkpoints})
    if checkpoints[-1] > steps:
        raise ValueError(
            f"checkpoints must not exceed steps={steps}, got {checkpoints}"
        )
    net = digits_autoencoder(seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    states, rows = {}, []

    def keep(step: int) -> None:
        states[step] = {k: v.detach().clone() for k, v in net.state_dict().items()}
        rows.append(
            {
                "step": step,
                "train_mse": reconstruction_error(net, split.train),
                "held_out_mse": reconstruction_error(net, split.held_out),
            }
        )

    if 0 in checkpoints:
        keep(0)
    for step in tqdm(
        range(1, steps + 1),
        disable=not progress,
        desc="training the digits autoencoder",
    ):
        batch = split.train[
            torch.randint(len(split.train), (batch_size,), generator=gen)
        ]
        loss = ((net(batch) - batch) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in checkpoints:
            keep(step)
    return states, pd.DataFrame(rows)


def reconstruction_error(net: nn.Module, images: torch.Tensor) -> float:
    """Mean squared reconstruction error per pixel (standardised units), float64."""
    with torch.no_grad():
        return float(((net(images) - images) ** 2).mean())


def pack_checkpoints(
    states: dict[int, dict[str, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """One flat state dict ``{"<step>/<name>": tensor}`` for :func:`smp.data.write`."""
    return {
        f"{step}/{name}": t
        for step, state in states.items()
        for name, t in state.items()
    }


def load_checkpoints(
    packed: dict[str, torch.Tensor] | None = None,
) -> dict[int, nn.Sequential]:
    """The stored checkpoints as networks (float64, eval mode), ``{step: net}``.

    ``packed`` defaults to ``smp.data.load("trained_digits")``.

    Example
    -------
    >>> sorted(load_checkpoints())
    [0, 30, 300, 3000]
    """
    packed = _data.load("trained_digits") if packed is None else packed
    states: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in packed.items():
        step, name = key.split("/", 1)
        states.setdefault(int(step), {})[name] = tensor
    nets = {}
    for step in sorted(states):
        net = digits_autoencoder()
        net.load_state_dict(states[step])
        nets[step] = net.eval()
    return nets
