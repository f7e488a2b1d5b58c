"""Trained networks, second network: chapter 8's landmark CNN measured through training.

The network.  :func:`smp.networks.landmark_net` ``("relu")``: ``3 x [Conv3x3 -> ReLU ->
MaxPool 2] -> Flatten -> Linear(72, 16) -> ReLU -> Linear(16, 2)``, trained as chapter 8 trains
it (:func:`smp.experiments._landmark.train_landmark_net`: Adam, one-cycle learning rate, peak
3e-3, batch 128 of fresh random blob centres, float32) but for ``STEPS`` steps, with float64
checkpoints at ``LANDMARK_CHECKPOINTS``.

The paths (the same seeded paths at every checkpoint):

* ``train``: straight lines ``x(t) = (1-t) a + t b``, ``t in [0, 1]``, between two images of the
  first ``TRAIN_IMAGES`` training centres (the first batches the optimiser saw);
* ``held_out``: the same between images of centres drawn from another seed (never trained on);
* ``circle``: random great circles ``x(t) = r (cos t u + sin t v)``, ``t in [0, 2 pi]``, ``u, v``
  orthonormal Gaussian directions in image space, ``r`` the root-mean-square norm of the
  training images.

The measurement: exact per-layer SMP by breakpoints.  The layer-wise tracer
(:func:`smp.trace.trace_lines`) finds every breakpoint of the network along a line (every pattern
change of every ReLU and pooling window, also those that do not reach the output); the path is
then sampled at the midpoints between consecutive breakpoints (and both ends), so that every
sampling interval holds exactly one kink event, and the frozen-pattern jumps
(:func:`smp._exact_smp.iter_frozen`) of every unit in every interval are its exact slope jumps.  A
great circle is traced as ``CHORDS`` chords; the breakpoints found on the chords are mapped to the
circle's angle and the circle itself is sampled between them; every interval is checked
(:func:`smp._exact_smp._pattern_changes`) and the number holding more than one pattern change is
stored (``multi``: a coincidence the chords did not separate).  Births and pass-through are split
per unit as in :mod:`smp._exact_smp`; at a max pooling, a *birth* is a switch of the argmax
between two positive inputs, and a change of the window's maximum to or from 0 (the ReLU birth of
the window's maximum) counts as passed through.

The predictions, each block fed with the measured statistics of its own input over the ensemble
of paths of one kind (per unit and per t on a grid of ``N_STAT`` times; SMP per unit t):

* Conv2d / Linear: the layer's actual weights on the measured per-unit input SMP, assuming kink
  times distinct across inputs (chapter 3's identity ``sum_i |w_i| SMP(x_i)``: the conv of
  ``|W|`` with the input's SMP map), and, *shared*, random signs within each measured event
  (``sqrt(2/pi) sqrt(sum_i w_i^2 J_i^2)`` per output unit and event, J the measured input jump
  vector);
* ReLU: Gaussian conditional births (``(z, z')`` jointly Gaussian over paths at every t) and
  pass-through ``Phi(mu/sigma)`` times the measured input jumps (:mod:`smp.models._conditional`);
* MaxPool2d (after a ReLU): :func:`smp.models.relu_maxpool_window` per window and per t, with
  the measured mean, std and derivative std of every pre-activation in the window and the measured
  input jumps (independent inputs assumed).

Retraining and remeasuring: ``.venv/bin/python scripts/train_landmark_checkpoints.py``.
"""

from __future__ import annotations

import time
from functools import partial

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .. import data as _data
from .. import models
from .._exact_smp import _pattern_changes, iter_frozen
from .._threads import torch_threads
from .._validation import check_choice, check_int
from ..networks import landmark_net
from ..trace import trace_lines
from ._landmark import IMAGE_SIZE, _random_centres, render
from ._landmark import test_error as _test_error
from ._parallel import run_units

__all__ = [
    "CHORDS",
    "LANDMARK_CHECKPOINTS",
    "LANDMARK_PATH_KINDS",
    "LANDMARK_LAYER_NAMES",
    "LandmarkPaths",
    "landmark_step_table",
    "landmark_summary",
    "summarise_landmark",
    "N_STAT",
    "STEPS",
    "breakpoint_grids",
    "first_relu_check",
    "landmark_predictions",
    "load_landmark_checkpoints",
    "measure_landmark",
    "run_landmark",
    "train_landmark_checkpoints",
    "write_landmark_tables",
    "KERNEL_TIMES",
    "event_sums",
    "kernel_landmark",
    "refined_predictions",
    "refined_summary",
    "run_refined",
]

#: training steps (the one-cycle schedule spans all of them)
STEPS = 3000

#: the steps at which the weights are stored (0: the initialisation; the last: the end)
LANDMARK_CHECKPOINTS = (0, 30, 300, 3000)

#: training batch size and peak learning rate (chapter 8's)
BATCH, LR = 128, 3e-3

#: the three kinds of path
LANDMARK_PATH_KINDS = ("train", "held_out", "circle")

#: training images the ``train`` lines join: the first ten batches of the training stream
TRAIN_IMAGES = 10 * BATCH

#: images the ``held_out`` lines join, from the seed of chapter 8's test error (never trained on)
HELD_OUT_IMAGES, HELD_OUT_SEED = 1000, 123

#: chords a great circle is traced as (its breakpoints are then located on the circle itself)
CHORDS = 2048

#: times of the common grid on which the per-unit statistics of the ensemble are taken
N_STAT = 101

#: Monte-Carlo draws per window and pair of chapter 5's correlated window model
WINDOW_DRAWS = 100

#: the pooling models are evaluated on every POOL_STEP-th time of the common grid
POOL_STEP = 10

#: torch threads of the training (scripts/train_landmark_checkpoints.py and make data alike)
TRAINING_THREADS = 1

#: samples per frozen-pattern batch (memory: about 50 kB per sample through the network)
CHUNK = 256


def train_landmark_checkpoints(
    *,
    steps: int = STEPS,
    checkpoints=LANDMARK_CHECKPOINTS,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict[int, dict[str, torch.Tensor]], pd.DataFrame]:
    """Train the ReLU landmark CNN as chapter 8 does, keeping float64 state dicts on the way.

    The loop of :func:`smp.experiments._landmark.train_landmark_net` (Adam, one-cycle learning
    rate over ``steps`` steps, peak ``LR``, ``BATCH`` fresh centres per step from a generator
    seeded with ``seed``, float32), with the weights copied in float64 after ``step`` updates
    for every ``step`` in ``checkpoints``.

    Returns
    -------
    states : ``{step: float64 state dict}``.
    errors : one row per checkpoint: ``step``, ``test_rmse_px`` (root-mean-square error in pixels
        on 2000 held-out centres, :func:`smp.experiments._landmark.test_error`), ``seconds``
        (training time so far).

    Example
    -------
    >>> states, errors = train_landmark_checkpoints(steps=3, checkpoints=(0, 3), progress=False)
    >>> sorted(states), states[3]["0.weight"].dtype
    ([0, 3], torch.float64)
    """
    steps = check_int("steps", steps)
    checkpoints = sorted({check_int("checkpoints", int(c), 0) for c in checkpoints})
    if checkpoints[-1] > steps:
        raise ValueError(f"checkpoints must be <= steps={steps}, got {checkpoints[-1]}")
    net = landmark_net("relu", seed=seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    half = (IMAGE_SIZE - 1) / 2
    states, rows = {}, []
    start = time.perf_counter()

    def keep(step: int) -> None:
        states[step] = {
            k: v.detach().to(torch.float64).clone() for k, v in net.state_dict().items()
        }
        rows.append({"step": step, "seconds": time.perf_counter() - start})

    if 0 in checkpoints:
        keep(0)
    bar = tqdm(range(1, steps + 1), disable=not progress, desc="training landmark CNN")
    for step in bar:
        c = _random_centres(BATCH, IMAGE_SIZE, gen)
        loss = ((net(render(c)) - (c - half) / half) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step in checkpoints:
            keep(step)
        if step % 100 == 0:
            bar.set_postfix(rmse_px=f"{(2 * loss.item()) ** 0.5 * half:.3f}")
    errors = pd.DataFrame(rows)
    errors["test_rmse_px"] = [_test_error(_as_net(states[s])) for s in errors["step"]]
    return states, errors


def _as_net(state: dict[str, torch.Tensor]) -> nn.Sequential:
    net = landmark_net("relu").double()
    net.load_state_dict(state)
    return net.eval()


def load_landmark_checkpoints(packed=None) -> dict[int, nn.Sequential]:
    """The stored checkpoints as networks (float64, eval mode), ``{step: net}``.

    ``packed`` defaults to ``smp.data.load("trained_landmark")``.

    Example
    -------
    >>> sorted(load_landmark_checkpoints())
    [0, 30, 300, 3000]
    """
    packed = _data.load("trained_landmark") if packed is None else packed
    states: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in packed.items():
        step, name = key.split("/", 1)
        states.setdefault(int(step), {})[name] = tensor
    return {step: _as_net(states[step]) for step in sorted(states)}


def _training_centres(seed: int) -> torch.Tensor:
    # the first TRAIN_IMAGES centres of the training stream, drawn batch by batch as in training
    gen = torch.Generator().manual_seed(seed)
    return torch.cat(
        [_random_centres(BATCH, IMAGE_SIZE, gen) for _ in range(TRAIN_IMAGES // BATCH)]
    )


class LandmarkPaths:
    """``P`` seeded paths of one kind through the landmark task's image space (module docstring).

    ``paths(index, t)`` with ``index`` (M,) and ``t`` (M, K) returns ``(x, dx)``, each
    ``(M, K, 1, 24, 24)`` float64.  ``segments(index)`` gives the straight pieces the tracer
    follows: ``(x0, d, owner, t0, t1)`` (a line is one segment; a circle ``CHORDS`` chords), with
    the path each belongs to and the t-range it spans.  ``t_length``: 1 for lines, ``2 pi`` for
    circles.

    Example
    -------
    >>> paths = LandmarkPaths("held_out", 3)
    >>> x, dx = paths(torch.arange(3), torch.zeros(3, 2, dtype=torch.float64))
    >>> tuple(x.shape), paths.t_length
    ((3, 2, 1, 24, 24), 1.0)
    """

    def __init__(self, kind: str, n_paths: int, *, seed: int = 0, train_seed: int = 0):
        self.kind = check_choice("kind", kind, LANDMARK_PATH_KINDS)
        self.n_paths = check_int("n_paths", n_paths)
        gen = torch.Generator().manual_seed(seed)
        train = render(_training_centres(train_seed).double())
        if kind == "circle":
            self.radius = float(train.flatten(1).pow(2).sum(1).mean().sqrt())
            u = torch.randn(n_paths, IMAGE_SIZE**2, generator=gen, dtype=torch.float64)
            v = torch.randn(n_paths, IMAGE_SIZE**2, generator=gen, dtype=torch.float64)
            u = u / u.norm(dim=1, keepdim=True)
            v = v - (v * u).sum(1, keepdim=True) * u
            v = v / v.norm(dim=1, keepdim=True)
            shape = (n_paths, 1, IMAGE_SIZE, IMAGE_SIZE)
            self.u, self.v = u.reshape(shape), v.reshape(shape)
            self.t_length, self.images = 2 * np.pi, None
        else:
            if kind == "train":
                images = train
            else:
                held = _random_centres(
                    HELD_OUT_IMAGES,
                    IMAGE_SIZE,
                    torch.Generator().manual_seed(HELD_OUT_SEED),
                    torch.float64,
                )
                images = render(held)
            i = torch.randint(len(images), (n_paths,), generator=gen)
            j = (i + torch.randint(1, len(images), (n_paths,), generator=gen)) % len(
                images
            )  # j != i
            self.a, self.d = images[i], images[j] - images[i]
            self.t_length, self.images = 1.0, images

    def __call__(self, index, t):
        t = t[..., None, None, None]
        if self.kind == "circle":
            u, v = self.u[index][:, None], self.v[index][:, None]
            c, s = torch.cos(t), torch.sin(t)
            return self.radius * (c * u + s * v), self.radius * (-s * u + c * v)
        a, d = self.a[index][:, None], self.d[index][:, None]
        return a + t * d, d.expand(-1, t.shape[1], -1, -1, -1)

    def segments(self, index: torch.Tensor):
        if self.kind != "circle":
            zeros = torch.zeros(len(index), dtype=torch.float64)
            return (
                self.a[index],
                self.d[index],
                torch.arange(len(index)),
                zeros,
                zeros + 1,
            )
        m = len(index)
        edges = torch.linspace(0, 2 * np.pi, CHORDS + 1, dtype=torch.float64)
        t = edges[None].expand(m, -1)
        x, _ = self(index, t)  # (m, CHORDS + 1, 1, H, W)
        x0 = x[:, :-1].reshape(m * CHORDS, *x.shape[2:])
        d = (x[:, 1:] - x[:, :-1]).reshape(x0.shape)
        owner = torch.arange(m).repeat_interleave(CHORDS)
        return x0, d, owner, edges[:-1].repeat(m), edges[1:].repeat(m)


def breakpoint_grids(net: nn.Module, paths: LandmarkPaths, index) -> list[np.ndarray]:
    """Per path of ``index``: the sample times ``[0, midpoints between breakpoints, end]``.

    The breakpoints are every pattern change of the network (:func:`smp.trace.trace_lines`);
    on a chord of a circle, the chord's parameter ``s`` is mapped to the angle of its point,
    ``t0 + atan2(s sin D, 1 - s + s cos D)`` (``D`` the chord's angle).  Sampling between them
    puts exactly one kink event into every interval (on a circle, up to the chords' deviation
    from the arc, checked by the caller).

    Example
    -------
    >>> net = load_landmark_checkpoints()[0]
    >>> grid = breakpoint_grids(net, LandmarkPaths("train", 2), torch.arange(2))[0]
    >>> bool(grid[0] == 0 and grid[-1] == 1 and (np.diff(grid) > 0).all())
    True
    """
    index = torch.as_tensor(index)
    x0, d, owner, t0, t1 = paths.segments(index)
    traces = trace_lines(net, x0, d)
    found: list[list[np.ndarray]] = [[] for _ in range(len(index))]
    for k, tr in enumerate(traces):
        s = tr.t
        if paths.kind == "circle":
            span = float(t1[k] - t0[k])
            s = float(t0[k]) + np.arctan2(s * np.sin(span), 1 - s + s * np.cos(span))
        found[int(owner[k])].append(s)
    grids = []
    for parts in found:
        knots = np.concatenate([[0.0], *parts, [paths.t_length]])
        knots = np.unique(knots)
        grids.append(np.concatenate([[0.0], (knots[1:] + knots[:-1]) / 2, [knots[-1]]]))
    return grids


def _chunks(grids: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut every grid into rows of ``CHUNK`` samples that overlap by one sample (the interval
    between two rows is counted once, in the second); pad a short row by repeating its last
    time (zero-width intervals: no jump, no change).  Returns ``(owner (G,), t (G, CHUNK))``."""
    owners, rows = [], []
    for p, grid in enumerate(grids):
        start = 0
        while True:
            row = grid[start : start + CHUNK]
            rows.append(np.pad(row, (0, CHUNK - len(row)), mode="edge"))
            owners.append(p)
            if start + CHUNK >= len(grid):
                break
            start += CHUNK - 1
    return torch.tensor(owners), torch.tensor(np.array(rows))


#: layers whose per-unit statistics (moments on the common grid, binned jumps) the models need:
#: the inputs of the ReLUs and of the max poolings that follow them
def _pre_activation(layers: list[nn.Module], index: int) -> bool:
    nxt = index + 1
    return nxt < len(layers) and isinstance(layers[nxt], nn.ReLU)


def measure_landmark(
    state: dict[str, torch.Tensor],
    kind: str,
    index,
    n_paths: int,
    seed: int,
    *,
    events: bool = False,
) -> dict:
    """Exact per-layer SMP and the models' ingredients on the paths ``index`` (one unit of work).

    ``state`` a checkpoint's state dict, ``kind``/``n_paths``/``seed`` define the
    :class:`LandmarkPaths`.  Returns sums over these paths, to be added over units: per layer
    ``smp_path``, ``births_path``, ``pass_path``, ``shared_path`` (per path, ``(M,)``),
    ``smp_unit`` (per unit, summed over paths), and for the inputs of ReLUs ``binned``
    (``(N_STAT, U)`` summed |jump| in the grid interval ending at each time) and ``moments``
    (``(5, N_STAT, U)`` sums of ``z, z^2, z', z'^2, z z'``); ``multi`` (per path, intervals with
    more than one pattern change) and ``samples`` (per path).  ``events=True`` adds, for every
    conv and linear layer fed by kinks, the sums over events of their input jump vectors'
    second moments (:func:`smp.experiments._landmark_trained_refined.event_sums`).
    """
    net = _as_net(state)
    layers = list(net)
    paths = LandmarkPaths(kind, n_paths, seed=seed)
    index = torch.as_tensor(index)
    m = len(index)
    grids = breakpoint_grids(net, paths, index)
    owner, t = _chunks(grids)
    stat = torch.linspace(0, paths.t_length, N_STAT, dtype=torch.float64)
    out: dict = {"multi": np.zeros(m), "samples": np.array([len(g) for g in grids])}
    per_call = max(1, 2048 // CHUNK)
    for start in range(0, len(t), per_call):
        rows = slice(start, start + per_call)
        g_owner, g_t = owner[rows], t[rows]
        g = len(g_t)
        x, dx = paths(index[g_owner], g_t)
        changes = _pattern_changes(layers, x.reshape(-1, *x.shape[2:]), g)[:, 1:]
        out["multi"] += np.bincount(g_owner, (changes > 1).sum(1).numpy(), minlength=m)
        bins = torch.searchsorted(stat, g_t.reshape(-1)).clamp(max=N_STAT - 1)
        before = None
        for layer in iter_frozen(net, x, dx):
            k = layer.index
            size = layer.jump.abs().reshape(g, CHUNK, -1)
            births = layer.changed.reshape(g, CHUNK, -1)
            if layer.name == "MaxPool2d":
                value = layer.value.reshape(g, CHUNK, -1)
                previous = torch.cat([value[:, :1], value[:, :-1]], 1)
                births = births & (value != 0) & (previous != 0)
            b = (size * births).sum(1)  # (g, U)
            total = size.sum(1)
            entry = out.setdefault(
                k,
                {
                    "name": layer.name,
                    "smp_path": np.zeros(m),
                    "births_path": np.zeros(m),
                    "shared_path": np.zeros(m),
                    "smp_unit": np.zeros(total.shape[1]),
                },
            )
            entry["smp_path"] += np.bincount(g_owner, total.sum(1).numpy(), minlength=m)
            entry["births_path"] += np.bincount(g_owner, b.sum(1).numpy(), minlength=m)
            entry["smp_unit"] += total.sum(0).numpy()
            if before is not None and layer.name in ("Conv2d", "Linear"):
                entry["shared_path"] += np.bincount(
                    g_owner, _shared(layers[k], before, g).numpy(), minlength=m
                )
                if events:
                    for name, value in event_sums(
                        layers[k], before, layer.jump
                    ).items():
                        entry[name] = entry.get(name, 0) + value
            if _pre_activation(layers, k):
                binned = torch.zeros(N_STAT, size.shape[2], dtype=torch.float64)
                binned.index_add_(0, bins, size.reshape(g * CHUNK, -1))
                entry["binned"] = entry.get("binned", 0) + binned.numpy()
            before = layer.jump
        del x, dx
    # the ensemble's statistics on the common grid (values and slopes at N_STAT times)
    x, dx = paths(index, stat[None].expand(m, -1))
    for layer in iter_frozen(net, x, dx):
        if _pre_activation(layers, layer.index):
            z = layer.value.reshape(m, N_STAT, -1)
            dz = layer.slope.reshape(m, N_STAT, -1)
            out[layer.index]["moments"] = torch.stack(
                [z.sum(0), (z * z).sum(0), dz.sum(0), (dz * dz).sum(0), (z * dz).sum(0)]
            ).numpy()
            if isinstance(layer_list_get(layers, layer.index + 2), nn.MaxPool2d):
                zw, dw = _windows(layer.value), _windows(layer.slope)  # (m, N, W, 4)
                out[layer.index]["window_zz"] = torch.einsum(
                    "pnwi,pnwj->nwij", zw, zw
                ).numpy()
                out[layer.index]["window_dd"] = torch.einsum(
                    "pnwi,pnwj->nwij", dw, dw
                ).numpy()
    for entry in out.values():
        if isinstance(entry, dict):
            entry["pass_path"] = entry["smp_path"] - entry["births_path"]
    return out


def layer_list_get(layers: list, k: int):
    return layers[k] if k < len(layers) else None


def _windows(a: torch.Tensor) -> torch.Tensor:
    """``(..., C, H, W)`` -> ``(..., C * H/2 * W/2, 4)``: the 2x2 pooling windows' inputs."""
    *lead, c, h, w = a.shape
    a = a.reshape(*lead, c, h // 2, 2, w // 2, 2)
    n = len(lead)
    a = a.permute(*range(n), n, n + 1, n + 3, n + 2, n + 4)
    return a.reshape(*lead, c * (h // 2) * (w // 2), 4)


def _shared(layer: nn.Module, jump_in: torch.Tensor, g: int) -> torch.Tensor:
    """Random signs within each measured event: per row, ``sqrt(2/pi) sum_units
    sqrt(sum_i w_i^2 J_i^2)`` summed over the row's intervals."""
    w2 = layer.weight.to(torch.float64) ** 2
    j2 = jump_in.reshape(-1, *jump_in.shape[2:]) ** 2
    if isinstance(layer, nn.Linear):
        out = (j2.flatten(1) @ w2.T).sqrt()
    else:
        out = torch.nn.functional.conv2d(
            j2, w2, None, layer.stride, layer.padding, layer.dilation, layer.groups
        ).sqrt()
    return np.sqrt(2 / np.pi) * out.reshape(g, -1).sum(1)


def _unit(unit: tuple) -> dict:
    step, state, kind, index, n_paths, seed = unit
    return measure_landmark(state, kind, index, n_paths, seed)


def _combine(parts: list[dict]) -> dict:
    """Add the units' sums (per-path arrays are concatenated in unit order)."""
    out: dict = {}
    for part in parts:
        for key, value in part.items():
            if not isinstance(value, dict):
                out[key] = np.concatenate([out[key], value]) if key in out else value
                continue
            entry = out.setdefault(key, {"name": value["name"]})
            for name, array in value.items():
                if name == "name":
                    continue
                if name.endswith("_path"):
                    entry[name] = (
                        np.concatenate([entry[name], array]) if name in entry else array
                    )
                else:
                    entry[name] = entry[name] + array if name in entry else array
    return out


def _mean_sem(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def _moments(entry: dict, p: int):
    s_z, s_zz, s_d, s_dd, s_zd = entry["moments"]
    mu, dmu = s_z / p, s_d / p
    var = np.maximum(s_zz - p * mu**2, 0) / (p - 1)
    dvar = np.maximum(s_dd - p * dmu**2, 0) / (p - 1)
    cov = (s_zd - p * mu * dmu) / (p - 1)
    return mu, np.sqrt(var), dmu, np.sqrt(dvar), cov, np.sqrt(s_dd / p)


def _predict_layer(net: nn.Sequential, k: int, found: dict, p: int, length: float):
    """The conditional model of layer ``k``: ``(births, pass_through, shared)`` predictions."""
    layers = list(net)
    layer, entry = layers[k], found[k]
    w_t = models.trapezoid_weights(N_STAT, length)
    if isinstance(layer, (nn.Conv2d, nn.Linear)):
        if k == 0:
            return 0.0, 0.0, 0.0  # a smooth input: no kink to pass
        smp_in = found[k - 1]["smp_unit"] / p
        weight = layer.weight.detach().to(torch.float64)
        if isinstance(layer, nn.Linear):
            indep = models.linear_independent(weight.numpy(), smp_in).sum()
        else:
            shape = found[k - 1]["shape"]
            indep = torch.nn.functional.conv2d(
                torch.as_tensor(smp_in).reshape(1, *shape),
                weight.abs(),
                None,
                layer.stride,
                layer.padding,
            ).sum()
        return 0.0, float(indep), float(entry["shared_path"].mean())
    if isinstance(layer, nn.ReLU):
        mu, sigma, dmu, dsigma, cov, _ = _moments(found[k - 1], p)
        slope2 = models.gaussian_conditional_slope2(mu, sigma, dmu, dsigma, cov)
        births = w_t @ (models.gaussian_density_at_zero(mu, sigma) * slope2)
        passed = models.gaussian_pass_through(mu, sigma, found[k - 1]["binned"] / p)
        return float(births.sum()), float(passed.sum()), np.nan
    if isinstance(layer, nn.MaxPool2d):  # the third value: the independent-window model
        pre = found[k - 2]
        mu, sigma, _, _, _, drms = _moments(pre, p)
        jumps = pre["binned"] / p
        c, h, w = pre["shape"]

        def windows(a: np.ndarray) -> np.ndarray:  # (U,) -> (windows, 4)
            a = a.reshape(c, h // 2, 2, w // 2, 2)
            return a.transpose(0, 1, 3, 2, 4).reshape(-1, 4)

        # the pooling models run on every POOL_STEP-th time of the common grid; each interval's
        # measured input jumps go to the nearest of those times
        sub = np.arange(0, N_STAT, POOL_STEP)
        w_sub = models.trapezoid_weights(len(sub), length)
        nearest = np.rint(np.arange(N_STAT) / POOL_STEP).astype(int)
        jumps_sub = np.zeros((len(sub), jumps.shape[1]))
        np.add.at(jumps_sub, nearest, jumps)
        floor = 1e-9 * max(float(sigma.max()), 1e-300)
        zz, dd = pre["window_zz"] / p, pre["window_dd"] / p
        births = passed = cov_births = cov_passed = 0.0
        for j, n in enumerate(sub):
            m_w = windows(mu[n])
            zero, switch, through = models.relu_maxpool_window(
                m_w,
                windows(np.maximum(sigma[n], floor)),
                windows(drms[n]),
                length=w_sub[j],
                smp_in=windows(jumps_sub[j]),
                n_grid=801,
            )
            births += float(switch.sum())
            passed += float(zero.sum() + through.sum())
            # the windows' measured covariances: chapter 5's window model.  Unbiased covariance of
            # the values over paths; the derivatives by their raw second moments (E d'^2)
            cov = (zz[n] - m_w[:, :, None] * m_w[:, None, :]) * p / (p - 1)
            result = models.maxpool_window(
                m_w,
                cov,
                dd[n],
                length=w_sub[j],
                smp_in=windows(jumps_sub[j]),
                relu=True,
                n_draws=WINDOW_DRAWS,
                seed=int(n),
            )
            cov_births += float(result.switch_births.sum())
            cov_passed += float(result.zero_births.sum() + result.passed.sum())
        return cov_births, cov_passed, (births, passed)
    return np.nan, np.nan, np.nan  # Flatten: the identity


def summarise_landmark(
    net: nn.Sequential, parts: list[dict], length: float
) -> pd.DataFrame:
    """One row per layer: the measurement (mean, s.e. over paths) and the conditional models.

    Columns ``layer``, ``name``, ``units``, ``smp``, ``births``, ``pass_through`` with ``*_sem``,
    ``pred_births``, ``pred_pass``, ``conditional`` (their sum; for conv and linear layers the
    independent-times identity with the actual ``|w|``), ``shared`` (random signs within each
    measured event, conv and linear layers), ``multi`` (intervals with more than one pattern
    change, summed over paths) and ``samples`` (mean samples per path).
    """
    found = _combine(parts)
    shapes = _unit_shapes(net)
    for k in shapes:
        found[k]["shape"] = shapes[k]
    p = len(found["multi"])
    rows = []
    for k in sorted(key for key in found if isinstance(key, int)):
        entry = found[k]
        row = {"layer": k, "name": entry["name"], "units": len(entry["smp_unit"])}
        for key, name in (
            ("smp", "smp_path"),
            ("births", "births_path"),
            ("pass_through", "pass_path"),
        ):
            row[key], row[key + "_sem"] = _mean_sem(entry[name])
        births, passed, other = _predict_layer(net, k, found, p, length)
        row["pred_births"], row["pred_pass"] = births, passed
        row["conditional"] = births + passed
        row["shared"] = other if np.isscalar(other) else np.nan
        row["indep_births"], row["indep_pass"] = (
            other if isinstance(other, tuple) else (np.nan, np.nan)
        )
        row["multi"] = int(found["multi"].sum())
        row["samples"] = float(found["samples"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _unit_shapes(net: nn.Sequential) -> dict[int, tuple]:
    shapes, x = {}, torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.float64)
    with torch.no_grad():
        for k, layer in enumerate(net):
            x = layer(x)
            shapes[k] = tuple(x.shape[1:])
    return shapes


def path_batches(
    nets: dict[int, nn.Sequential],
    kinds,
    n_paths: int,
    n_circles: int,
    batch: int,
    circle_batch: int,
    seed: int,
) -> list[tuple]:
    """The paths of :func:`run_landmark` (and of the refined models' run, which must measure
    the same ones): for every checkpoint and kind, ``(step, state, kind, count, kind_seed,
    batches)``, with ``count`` paths of the kind (``n_circles`` circles or ``n_paths`` lines),
    seed ``seed + index of the kind`` at every checkpoint, and ``batches`` the lists of path
    indices of ``batch`` lines (``circle_batch`` circles) each."""
    out = []
    for step in sorted(nets):
        state = {k: v.detach().clone() for k, v in nets[step].state_dict().items()}
        for kind in kinds:
            count = n_circles if kind == "circle" else n_paths
            size = circle_batch if kind == "circle" else batch
            batches = [
                list(range(start, min(start + size, count)))
                for start in range(0, count, size)
            ]
            kind_seed = seed + LANDMARK_PATH_KINDS.index(kind)
            out.append((step, state, kind, count, kind_seed, batches))
    return out


def timed_unit(function, unit) -> dict:
    """``function(unit)`` (a dict of arrays) with its CPU time added as ``seconds``."""
    begin = time.process_time()
    result = function(unit)
    result["seconds"] = np.array([time.process_time() - begin])
    return result


def run_landmark(
    nets: dict[int, nn.Sequential],
    *,
    n_paths: int = 60,
    n_circles: int = 12,
    batch: int = 10,
    circle_batch: int = 3,
    kinds=LANDMARK_PATH_KINDS,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Measure and predict every layer of every checkpoint on every kind of path (one table).

    Units of work: one checkpoint, one kind, ``batch`` paths (``circle_batch`` circles); paths
    of kind ``k`` use seed ``seed + index of k`` at every checkpoint.  Adds to
    :func:`summarise_landmark`'s columns ``step``, ``paths`` (the kind), ``n_paths``,
    ``t_length`` and ``seconds`` (the CPU time of the kind's units).
    """
    units = [
        (step, state, kind, index, count, kind_seed)
        for step, state, kind, count, kind_seed, batches in path_batches(
            nets, kinds, n_paths, n_circles, batch, circle_batch, seed
        )
        for index in batches
    ]
    results = run_units(
        partial(timed_unit, _unit),
        units,
        workers=workers,
        progress=progress,
        desc="landmark units",
    )
    tables = []
    for step, kind, parts, seconds in results_by_kind(
        nets, kinds, results, [(u[0], u[2]) for u in units]
    ):
        table = summarise_landmark(nets[step], parts, path_length(kind))
        tables.append(stamp_table(table, step, kind, n_paths, n_circles, seconds))
    return pd.concat(tables, ignore_index=True)


def results_by_kind(nets, kinds, results, keys):
    """Per checkpoint (sorted) and kind (in order): ``(step, kind, parts, seconds)``, the
    results whose ``keys`` entry is ``(step, kind)`` and their summed CPU time (each result's
    ``seconds``, taken out of it)."""
    for step in sorted(nets):
        for kind in kinds:
            parts = [r for key, r in zip(keys, results) if key == (step, kind)]
            seconds = float(sum(part.pop("seconds").sum() for part in parts))
            yield step, kind, parts, seconds


def path_length(kind: str) -> float:
    """The parameter length of a path of ``kind``: ``t`` in [0, 2 pi] on a circle, [0, 1] on a line."""
    return 2 * np.pi if kind == "circle" else 1.0


def stamp_table(
    table: pd.DataFrame,
    step: int,
    kind: str,
    n_paths: int,
    n_circles: int,
    seconds: float,
) -> pd.DataFrame:
    """Add the columns every landmark table carries (in place, returned): ``step`` and ``paths``
    first, then ``n_paths``, ``t_length`` and ``seconds`` (the CPU time of the kind's units)."""
    table.insert(0, "paths", kind)
    table.insert(0, "step", step)
    table["n_paths"] = n_circles if kind == "circle" else n_paths
    table["t_length"], table["seconds"] = path_length(kind), seconds
    return table


def write_landmark_tables(
    *,
    n_paths: int = 60,
    n_circles: int = 12,
    seed: int = 0,
    workers: int | None = 2,
    progress: bool = True,
    directory: str | None = None,
) -> list:
    """Train, store the checkpoints, measure them and store the tables (the registry's producer).

    Writes ``trained_landmark`` (float64 checkpoints), ``trained_landmark_training`` (test error
    per checkpoint) and ``trained_landmark_smp`` (:func:`run_landmark`) into ``directory``
    (default: the package's ``data/``).
    """
    # float32 training sums in an order that depends on the thread count: the stored
    # checkpoints were trained on TRAINING_THREADS threads, wherever this runs
    with torch_threads(TRAINING_THREADS):
        states, errors = train_landmark_checkpoints(seed=seed, progress=progress)
    packed = {
        f"{step}/{k}": v for step, state in states.items() for k, v in state.items()
    }
    written = [_data.write("trained_landmark", packed, directory)]
    written.append(_data.write("trained_landmark_training", errors, directory))
    # measure what was stored
    nets = load_landmark_checkpoints(_data.load("trained_landmark", directory))
    table = run_landmark(
        nets,
        n_paths=n_paths,
        n_circles=n_circles,
        seed=seed,
        workers=workers,
        progress=progress,
    )
    written.append(_data.write("trained_landmark_smp", table, directory))
    return written


# the chapter's views of the tables live in their own module; imported last because they use
# this module's paths and constants (the import would otherwise be circular)
from ._landmark_trained_refined import (  # noqa: E402
    KERNEL_TIMES,
    event_sums,
    kernel_landmark,
    refined_predictions,
    refined_summary,
    run_refined,
)
from ._landmark_trained_summary import (  # noqa: E402
    LANDMARK_LAYER_NAMES,
    first_relu_check,
    landmark_predictions,
    landmark_step_table,
    landmark_summary,
)
