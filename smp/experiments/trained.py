"""Trained networks: do the block models hold after training, and on paths through real data?

The network.  A ReLU autoencoder on scikit-learn's handwritten digits (1,797 images of 8x8 pixels,
bundled with scikit-learn, no download): ``Linear(64, 128) -> ReLU -> Linear(128, 128) -> ReLU ->
Linear(128, 128) -> ReLU -> Linear(128, 64)``, He initialisation, trained by Adam (batch 64,
learning rate 1e-3, float64) to reproduce its input (mean squared error), with checkpoints at
steps ``CHECKPOINTS``.  Pixels are standardised with the training set's mean and standard
deviation; a fixed seeded split keeps ``HELD_OUT`` images out of training.

The paths (``P`` per kind, ``N`` samples each):

* ``train``: straight lines ``x(t) = (1-t) a + t b``, ``t in [0, 1]``, between two distinct random
  training images (the interpolations an autoencoder is asked to generate);
* ``held_out``: the same between held-out images;
* ``circle``: random great circles ``x(t) = r (cos t u + sin t v)``, ``t in [0, 2 pi]``, ``u, v``
  orthonormal Gaussian directions, ``r`` the root-mean-square norm of the training images.

The measurement at every checkpoint: the exact SMP of every unit of every layer along every path
by frozen activation patterns (:mod:`smp._exact_smp`, float64), ReLU births and pass-through apart,
summed over units; mean and standard error over paths.  SMP is in activation units per unit t
(t in [0, 1] on a line, in [0, 2 pi] on a circle).

The predictions (:mod:`smp.models._conditional`), each block fed with the measured statistics of
its own input over the same ensemble of paths:

* ReLU, *Gaussian conditional*: births from ``(z, z')`` jointly Gaussian at every t (means, stds,
  covariance measured per unit and t), pass-through ``Phi(mu/sigma)`` times the measured input jumps;
* ReLU, *Kac-Rice with measured ingredients*: births from kernel estimates of ``p_t(0)`` and
  ``E[z'^2 | z = 0]``, pass-through with the measured fraction of active paths; and, for the first
  layer on lines between images, births from the pre-activation's distribution over single images
  (:func:`smp.models.pair_births`);
* Linear: the checkpoint's actual weights applied to the measured input SMP, assuming independent
  kink times (``|W| @ smp_in``) or random signs within each measured event (``sqrt(2/pi) ||W_j J||``);
* mean field: chapter 6's recursion with the checkpoint's per-layer weight and bias standard
  deviations (:func:`smp.models.mean_field_dense`).

Retraining and remeasuring: ``.venv/bin/python scripts/train_trained.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .. import data as _data
from .. import models
from .._exact_smp import exact_path_smp
from .._validation import check_int
from . import _landmark_trained as landmark  # noqa: F401  (the second network, re-exported)
from ._digits import (
    CHECKPOINTS,
    HELD_OUT,
    PATH_KINDS,
    WIDTHS,
    DigitsSplit,
    digits_autoencoder,
    load_checkpoints,
    load_digits_split,
    pack_checkpoints,
    reconstruction_error,
    train_autoencoder,
)
from ._trained_summary import (  # noqa: F401  (the chapter's summaries, re-exported)
    HOLD_ERROR,
    HOLD_Z,
    KIND_NAMES,
    LAYER_NAMES,
    births_and_pass,
    holds,
    misses,
    step_table,
    summary,
)

__all__ = [
    "CHECKPOINTS",
    "HELD_OUT",
    "PATH_KINDS",
    "WIDTHS",
    "DigitPaths",
    "DigitsSplit",
    "HOLD_ERROR",
    "HOLD_Z",
    "KIND_NAMES",
    "LAYER_NAMES",
    "alignment_check",
    "births_and_pass",
    "digits_autoencoder",
    "load_checkpoints",
    "load_digits_split",
    "holds",
    "measure_network",
    "misses",
    "pack_checkpoints",
    "predictions",
    "reconstruction_error",
    "run",
    "step_table",
    "summary",
    "train_autoencoder",
    "weight_table",
    "write_tables",
]

#: bootstrap resamples (over paths) for the standard error of the Gaussian births' ratio
BOOTSTRAP = 50


class DigitPaths:
    """``P`` seeded paths of one kind, as a function of (path index, t) (see the module docstring).

    Calling ``paths(index, t)`` with ``index`` (M,) and ``t`` (M, K) returns ``(x, dx)``, each
    ``(M, K, 64)`` float64: the path and its t-derivative.  Attributes: ``kind``, ``n_paths``,
    ``t_length`` (the range of t: 1 for lines, ``2 pi`` for circles), ``input_length`` ``(P,)``
    (each path's Euclidean length in input space), ``images`` (the image set of a line kind, else
    None).  Pairs are ordered pairs of distinct images drawn uniformly.

    Example
    -------
    >>> paths = DigitPaths("train", load_digits_split(), 4)
    >>> x, dx = paths(torch.arange(4), torch.zeros(4, 3, dtype=torch.float64))
    >>> tuple(x.shape), paths.t_length
    ((4, 3, 64), 1.0)
    """

    def __init__(self, kind: str, split: DigitsSplit, n_paths: int, *, seed: int = 0):
        if kind not in PATH_KINDS:
            raise ValueError(f"kind must be one of {PATH_KINDS}, got {kind!r}")
        self.kind, self.n_paths = kind, check_int("n_paths", n_paths, 2)
        gen = torch.Generator().manual_seed(seed)
        if kind == "circle":
            self.radius = float(split.train.pow(2).sum(1).mean().sqrt())
            u = torch.randn(n_paths, 64, generator=gen, dtype=torch.float64)
            v = torch.randn(n_paths, 64, generator=gen, dtype=torch.float64)
            u = u / u.norm(dim=1, keepdim=True)
            v = v - (v * u).sum(1, keepdim=True) * u
            self.u, self.v = u, v / v.norm(dim=1, keepdim=True)
            self.t_length, self.images = 2 * np.pi, None
            self.input_length = np.full(n_paths, 2 * np.pi * self.radius)
        else:
            images = split.train if kind == "train" else split.held_out
            i = torch.randint(len(images), (n_paths,), generator=gen)
            j = (i + torch.randint(1, len(images), (n_paths,), generator=gen)) % len(
                images
            )  # j != i
            self.a, self.d = images[i], images[j] - images[i]
            self.t_length, self.images = 1.0, images
            self.input_length = self.d.norm(dim=1).numpy()

    def grid(self, n_samples: int) -> torch.Tensor:
        """``n_samples`` equally spaced times covering the whole path (both ends included)."""
        return torch.linspace(
            0, self.t_length, check_int("n_samples", n_samples, 3), dtype=torch.float64
        )

    def __call__(
        self, index: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        t = t[..., None]
        if self.kind == "circle":
            u, v = self.u[index][:, None], self.v[index][:, None]
            c, s = torch.cos(t), torch.sin(t)
            return self.radius * (c * u + s * v), self.radius * (-s * u + c * v)
        a, d = self.a[index][:, None], self.d[index][:, None]
        return a + t * d, d.expand(-1, t.shape[1], -1)


def _mean_sem(per_path: np.ndarray) -> tuple[float, float]:
    return float(per_path.mean()), float(per_path.std(ddof=1) / np.sqrt(len(per_path)))


def _gaussian_births_total(z: np.ndarray, dz: np.ndarray, w: np.ndarray) -> float:
    mu, sigma = z.mean(0), z.std(0, ddof=1)
    dmu, dsigma = dz.mean(0), dz.std(0, ddof=1)
    cov = ((z - mu) * (dz - dmu)).sum(0) / (len(z) - 1)
    slope2 = models.gaussian_conditional_slope2(mu, sigma, dmu, dsigma, cov)
    return float((w @ (models.gaussian_density_at_zero(mu, sigma) * slope2)).sum())


def _bootstrap_ratio_sem(
    z: np.ndarray,
    dz: np.ndarray,
    births: np.ndarray,
    w: np.ndarray,
    n_boot: int = BOOTSTRAP,
    seed: int = 0,
) -> float:
    """Bootstrap (over paths, paired) standard error of Gaussian births / measured births.

    The Gaussian prediction is computed from the same paths' moments as the measurement, so the
    two fluctuate together; resampling whole paths keeps that pairing."""
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(z), len(z))
        ratios.append(
            _gaussian_births_total(z[pick], dz[pick], w) / births[pick].mean()
        )
    return float(np.std(ratios, ddof=1))


def measure_network(
    net: nn.Sequential, paths: DigitPaths, n_samples: int, *, kernel: bool = True
) -> pd.DataFrame:
    """Measured and predicted SMP of every layer of ``net`` along ``paths`` (one table).

    The measurement is :func:`smp._exact_smp.exact_path_smp` on a grid of ``n_samples`` times
    (every kink event resolved); the statistics the conditional models need are taken on the
    grid.  ``kernel=False`` skips the kernel estimates.

    Returns one row per layer: ``layer`` (0-based), ``name``, ``units``; measured ``smp``,
    ``births``, ``pass_through``, ``event_l2`` (means over paths, summed over units) with
    ``*_sem``; the predictions ``gauss_births``, ``gauss_pass`` (Gaussian conditional),
    ``births_gauss_ratio_sem`` (bootstrap over paths of ``gauss_births / births``, paired),
    ``kernel_births``, ``indep_pass`` (Kac-Rice with measured ingredients), ``density_births``
    (measured density at zero with the Gaussian conditional slope), ``pair_births`` (first ReLU on
    lines between images), ``linear_indep`` and ``linear_shared`` (linear layers, actual weights);
    the diagnostics ``density_ratio`` (integrated measured density at zero over the Gaussian's)
    and ``p_active`` (mean fraction of active units on the grid).
    """
    p = paths.n_paths
    t = paths.grid(n_samples)
    w = models.trapezoid_weights(n_samples, paths.t_length)
    grid: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    modules = list(net)

    def keep_pre_activation(layer) -> None:
        # the conditional ReLU models need z and z' of the linear layer feeding each ReLU
        nxt = layer.index + 1
        if (
            layer.name == "Linear"
            and nxt < len(modules)
            and isinstance(modules[nxt], nn.ReLU)
        ):
            grid[nxt] = (
                layer.value.reshape(p, n_samples, -1).numpy(),
                layer.slope.reshape(p, n_samples, -1).numpy(),
            )

    measured = exact_path_smp(net, paths, t, p, on_layer=keep_pre_activation)
    rows = []
    for k, m in enumerate(measured):
        row = {"layer": m.index, "name": m.name, "units": m.smp.shape[1]}
        for key, values in (
            ("smp", m.smp.sum(1)),
            ("births", m.births.sum(1)),
            ("pass_through", m.pass_through.sum(1)),
            ("event_l2", m.event_l2),
        ):
            row[key], row[key + "_sem"] = _mean_sem(values)
        if m.name == "ReLU":
            z, dz = grid.pop(m.index)
            mean_jump = measured[k - 1].mean_abs_jump
            mu, sigma = z.mean(0), z.std(0, ddof=1)
            dmu, dsigma = dz.mean(0), dz.std(0, ddof=1)
            cov = ((z - mu) * (dz - dmu)).sum(0) / (p - 1)
            gauss_slope2 = models.gaussian_conditional_slope2(
                mu, sigma, dmu, dsigma, cov
            )
            gauss_density = models.gaussian_density_at_zero(mu, sigma)
            row["gauss_births"] = float((w @ (gauss_density * gauss_slope2)).sum())
            row["births_gauss_ratio_sem"] = _bootstrap_ratio_sem(
                z, dz, m.births.sum(1), w
            )
            row["gauss_pass"] = float(
                models.gaussian_pass_through(mu, sigma, mean_jump).sum()
            )
            p_active = (z > 0).mean(0)
            row["indep_pass"] = float(
                models.independent_pass_through(p_active, mean_jump).sum()
            )
            row["p_active"] = float(p_active.mean())
            if kernel:
                kb = models.kernel_births(z, dz, w)
                row["kernel_births"] = float(kb.births.sum())
                row["density_births"] = float((w @ (kb.density_t * gauss_slope2)).sum())
                row["density_ratio"] = float(
                    kb.density.sum() / kb.gaussian_density.sum()
                )
            if paths.images is not None and k == 1:
                with torch.no_grad():
                    z_images = modules[0](paths.images).numpy()
                row["pair_births"] = float(models.pair_births(z_images).sum())
            del z, dz
        elif m.name == "Linear" and k > 0:
            weight = modules[m.index].weight.detach().to(torch.float64).numpy()
            smp_in = measured[k - 1].smp.mean(0)
            row["linear_indep"] = float(models.linear_independent(weight, smp_in).sum())
            row["linear_shared"] = float(
                models.linear_shared(weight, measured[k - 1].event_l2.mean())
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _kurtosis(values: np.ndarray) -> float:
    centred = values - values.mean()
    return float((centred**4).mean() / (centred**2).mean() ** 2)


def weight_table(nets: dict[int, nn.Sequential]) -> pd.DataFrame:
    """Per checkpoint and linear layer: the weight distribution against a Gaussian's.

    Columns ``weight_rms``, ``weight_mean``, ``abs_ratio`` (mean ``|w|`` over ``sqrt(2/pi)`` times
    the rms: 1 for a zero-mean Gaussian), ``kurtosis`` (3 for a Gaussian), ``bias_mean``,
    ``bias_rms``, and ``he_ratio`` (rms over He's ``sqrt(2/fan_in)``).
    """
    rows = []
    for step, net in nets.items():
        for index, module in enumerate(net):
            if isinstance(module, nn.Linear):
                wv = module.weight.detach().to(torch.float64).numpy().ravel()
                b = module.bias.detach().to(torch.float64).numpy()
                rms = float(np.sqrt((wv**2).mean()))
                rows.append(
                    {
                        "step": step,
                        "layer": index,
                        "fan_in": module.in_features,
                        "weight_rms": rms,
                        "weight_mean": float(wv.mean()),
                        "abs_ratio": float(
                            np.abs(wv).mean() / (np.sqrt(2 / np.pi) * rms)
                        ),
                        "kurtosis": _kurtosis(wv),
                        "bias_mean": float(b.mean()),
                        "bias_rms": float(np.sqrt((b**2).mean())),
                        "he_ratio": rms / np.sqrt(2 / module.in_features),
                    }
                )
    return pd.DataFrame(rows)


def _mean_field(net: nn.Sequential, paths: DigitPaths, n_samples: int) -> pd.DataFrame:
    x, dx = paths(
        torch.arange(paths.n_paths),
        paths.grid(n_samples)[None].expand(paths.n_paths, -1),
    )
    linears = [m for m in net if isinstance(m, nn.Linear)]
    relu_after = [
        isinstance(b, nn.ReLU)
        for a, b in zip(net, list(net)[1:] + [None])
        if isinstance(a, nn.Linear)
    ]
    return models.mean_field_dense(
        [float(m.weight.detach().pow(2).mean().sqrt()) for m in linears],
        [float(m.bias.detach().pow(2).mean().sqrt()) for m in linears],
        [m.out_features for m in linears],
        in_features=linears[0].in_features,
        input_m2=float(x.pow(2).mean()),
        input_dm2=float(dx.pow(2).mean()),
        length=paths.t_length,
        relu_after=relu_after,
    )


def run(
    nets: dict[int, nn.Sequential],
    split: DigitsSplit,
    *,
    n_paths: int = 100,
    n_circles: int = 50,
    n_samples: int = 400,
    kinds=PATH_KINDS,
    seed: int = 0,
    kernel: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Measure and predict every layer of every checkpoint on every kind of path (one long table).

    ``n_paths`` lines per line kind, ``n_circles`` great circles (a circle is 2 pi long and holds
    several times more kink events than a line, so fewer of them give a small standard error).

    The same seeded paths are used at every checkpoint (paths of kind ``k`` use seed
    ``seed + index of k``).  Adds to :func:`measure_network`'s columns ``step``, ``paths`` (the
    kind), ``n_paths``, ``n_samples``, ``t_length``, ``input_length`` (mean Euclidean length of
    the paths in input space) and the mean-field ``mf_births``, ``mf_smp``.
    """
    tables = []
    jobs = [(step, kind) for step in sorted(nets) for kind in kinds]
    for step, kind in tqdm(jobs, disable=not progress, desc="measuring checkpoints"):
        count = n_circles if kind == "circle" else n_paths
        paths = DigitPaths(kind, split, count, seed=seed + PATH_KINDS.index(kind))
        table = measure_network(nets[step], paths, n_samples, kernel=kernel)
        mf = _mean_field(nets[step], paths, n_samples)
        table["mf_births"], table["mf_smp"] = (
            mf["births"].to_numpy(),
            mf["smp"].to_numpy(),
        )
        table.insert(0, "paths", kind)
        table.insert(0, "step", step)
        table["n_paths"], table["n_samples"], table["t_length"] = (
            count,
            n_samples,
            paths.t_length,
        )
        table["input_length"] = float(np.mean(paths.input_length))
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def write_tables(
    *,
    n_paths: int = 100,
    n_circles: int = 50,
    n_samples: int = 400,
    seed: int = 0,
    progress: bool = True,
    directory: str | None = None,
) -> list:
    """Train, store the checkpoints, measure them and store the tables (the registry's producer).

    Writes ``trained_digits`` (the checkpoints), ``trained_digits_training`` (errors),
    ``trained_digits_smp`` (:func:`run`), ``trained_digits_weights`` (:func:`weight_table`), into
    ``directory`` (default: the package's ``data/``).
    """
    split = load_digits_split(seed=seed)
    states, losses = train_autoencoder(split, seed=seed, progress=progress)
    written = [_data.write("trained_digits", pack_checkpoints(states), directory)]
    # measure what was stored
    nets = load_checkpoints(_data.load("trained_digits", directory))
    written.append(_data.write("trained_digits_training", losses, directory))
    written.append(_data.write("trained_digits_weights", weight_table(nets), directory))
    table = run(
        nets,
        split,
        n_paths=n_paths,
        n_circles=n_circles,
        n_samples=n_samples,
        seed=seed,
        progress=progress,
    )
    written.append(_data.write("trained_digits_smp", table, directory))
    return written


def predictions(table: pd.DataFrame) -> pd.DataFrame:
    """The measured table with every layer's predictions combined and their errors.

    Adds, per row of :func:`run`'s table: ``conditional`` (ReLU: Gaussian births + Gaussian
    pass-through; linear layer after a ReLU: :func:`smp.models.linear_shared`; first layer: 0, its
    input being smooth), ``refined`` (ReLU: kernel Kac-Rice births + pass-through with the measured
    P(active); linear: as ``conditional``), ``mean_field`` (``mf_smp``), and for each the relative
    error ``*_error`` (prediction / measured - 1) and the error in standard errors of the
    measurement ``*_z``; for ReLU rows also ``births_gauss_error``, ``births_kernel_error``,
    ``births_pair_error`` (first ReLU on lines), ``pass_gauss_error``, ``slope_ratio`` (measured
    conditional slope over the Gaussian's, weighted by the measured density at zero:
    ``kernel_births / density_births``).
    """
    out = table.copy()
    relu = out["name"] == "ReLU"
    linear = out["name"] == "Linear"
    out["conditional"] = np.where(
        relu,
        out["gauss_births"] + out["gauss_pass"],
        np.where(linear, out["linear_shared"], np.nan),
    )
    out["refined"] = np.where(
        relu, out["kernel_births"] + out["indep_pass"], out["conditional"]
    )
    out["mean_field"] = out["mf_smp"]
    measured = out["smp"].where(out["smp"] > 0)
    for key in ("conditional", "refined", "mean_field"):
        out[key + "_error"] = out[key] / measured - 1
        out[key + "_z"] = (out[key] - measured) / out["smp_sem"]
    births = out["births"].where(relu & (out["births"] > 0))
    out["births_gauss_error"] = out["gauss_births"] / births - 1
    out["births_kernel_error"] = out["kernel_births"] / births - 1
    out["births_pair_error"] = out["pair_births"] / births - 1
    out["births_mf_error"] = out["mf_births"] / births - 1
    out["births_kernel_z"] = (out["kernel_births"] - births) / out["births_sem"]
    out["births_gauss_z"] = (out["gauss_births"] - births) / out["births_sem"]
    # the Gaussian prediction shares the measurement's paths: its error in paired bootstrap s.e.
    out["births_gauss_zb"] = (out["gauss_births"] / births - 1) / out[
        "births_gauss_ratio_sem"
    ]
    passed = out["pass_through"].where(relu & (out["pass_through"] > 0))
    out["pass_gauss_error"] = out["gauss_pass"] / passed - 1
    out["pass_indep_error"] = out["indep_pass"] / passed - 1
    out["slope_ratio"] = out["kernel_births"] / out["density_births"]
    out["birth_share"] = out["births"] / out["smp"].where(relu & (out["smp"] > 0))
    return out


def alignment_check(
    net: nn.Sequential,
    split: DigitsSplit,
    *,
    layer: int = -1,
    kind: str = "held_out",
    n_paths: int = 50,
    n_samples: int = 100,
    seed: int = 7,
) -> dict:
    """Does a linear layer's weights' *arrangement* matter, beyond their distribution?

    Measures the exact SMP of linear layer ``layer`` (index into the Sequential; default the
    output layer) on ``n_paths`` seeded paths, then again after permuting the weights within each
    row (seeded): every row keeps its weights, so :func:`smp.models.linear_shared` predicts the
    same, but any alignment between the weights and the events' jump vectors is destroyed.
    Returns ``measured``, ``permuted`` (means over paths) with ``*_sem``, ``model``
    (:func:`smp.models.linear_shared` with the measured events), and ``ratio`` = mean of
    ``measured / permuted`` with ``ratio_sem``, paired path by path (the same paths, so the
    heavy tail over paths largely cancels in the ratio).
    """
    import copy

    index = range(len(net))[layer]
    if not isinstance(net[index], nn.Linear):
        raise TypeError(
            f"layer must index a Linear layer of net, got {type(net[index]).__name__} at {layer}"
        )
    paths = DigitPaths(kind, split, n_paths, seed=seed)
    permuted = copy.deepcopy(net)
    with torch.no_grad():
        weight = permuted[index].weight
        noise = torch.rand(
            weight.shape,
            generator=torch.Generator().manual_seed(seed),
            dtype=torch.float64,
        )
        weight.copy_(torch.gather(weight, 1, torch.argsort(noise, dim=1)))
    grid = paths.grid(n_samples)
    out, per_path = {}, {}
    for key, model in (("measured", net), ("permuted", permuted)):
        result = exact_path_smp(model[: index + 1], paths, grid, n_paths)
        per_path[key] = result[index].smp.sum(1)
        out[key], out[key + "_sem"] = _mean_sem(per_path[key])
        if key == "measured":
            w = model[index].weight.detach().to(torch.float64).numpy()
            out["model"] = float(
                models.linear_shared(w, result[index - 1].event_l2.mean())
            )
    ratio = per_path["measured"] / per_path["permuted"]
    out["ratio"], out["ratio_sem"] = _mean_sem(ratio)
    return out
