"""The book's figure style: one theme, one palette, units on every axis.

Chapters call :func:`set_style` once and use the named colours, so that *model* and *measurement*
are always the same two colours across the book.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = [
    "set_style",
    "MODEL_COLOR",
    "MEASURED_COLOR",
    "PALETTE",
    "model_vs_measurement",
    "plot_second_difference",
    "plot_signal_and_peaks",
]

_colors = sns.color_palette("colorblind")
#: the colour of every model (closed form, prediction) curve in the book
MODEL_COLOR = _colors[3]
#: the colour of every Monte-Carlo / measured point in the book
MEASURED_COLOR = _colors[0]
#: further categorical colours, for variants (never reuse the two above for something else)
PALETTE = [_colors[i] for i in (0, 1, 2, 4, 5, 7, 8, 9)]


def set_style() -> None:
    """Seaborn whitegrid theme, readable sizes, figures at 110 dpi, PNG output."""
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.95)
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "figure.figsize": (7.0, 4.0),
            "axes.titlesize": "medium",
            "legend.frameon": True,
            "legend.framealpha": 0.9,
            "figure.constrained_layout.use": True,
        }
    )


def model_vs_measurement(
    ax: plt.Axes,
    x: Sequence[float],
    model: Sequence[float],
    measured: Sequence[float],
    sem: Sequence[float],
    *,
    model_label: str = "model",
    measured_label: str = "measured (mean ± 2 s.e.)",
    model_x: Sequence[float] | None = None,
) -> None:
    """Model as a line (optionally on a finer ``model_x`` grid), measurement as points with 2-s.e. bars."""
    mx = x if model_x is None else model_x
    ax.plot(mx, model, color=MODEL_COLOR, lw=2, label=model_label, zorder=2)
    ax.errorbar(
        x,
        measured,
        yerr=2 * np.asarray(sem, dtype=float),
        fmt="o",
        ms=4,
        capsize=3,
        color=MEASURED_COLOR,
        label=measured_label,
        zorder=3,
    )
    ax.legend()


def plot_second_difference(
    ax: plt.Axes,
    t: np.ndarray,
    y: np.ndarray,
    *,
    color=None,
    label: str | None = r"$|D[n]|$",
    log: bool = True,
    **detector_options,
) -> None:
    """``|D[n]|`` against t, with the samples that clear the detector's threshold ringed in the model colour.

    ``t`` are the sample times of ``y``; ``D[n]`` is drawn at ``t[n]`` (n = 1 .. N-2).  Detector
    options go to :func:`smp.feature.threshold`.
    """
    from .feature import second_difference, threshold

    y = np.asarray(y, dtype=np.float64)
    abs_d = np.abs(second_difference(y))
    core = abs_d > threshold(y, **detector_options)
    ax.plot(t[1:-1], abs_d, color=MEASURED_COLOR if color is None else color, lw=0.9, label=label)
    ax.plot(t[1:-1][core], abs_d[core], "o", mfc="none", mec=MODEL_COLOR, ms=5, label="detected peaks")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(r"$|D[n]|$ (units of y)")


def plot_signal_and_peaks(
    axes: Sequence[plt.Axes],
    t: np.ndarray,
    y: np.ndarray,
    *,
    t_unit: str = "t",
    y_label: str = "y",
    color=None,
    **detector_options,
) -> None:
    """Top axis: the signal ``y(t)``; bottom axis: :func:`plot_second_difference` (log scale)."""
    ax_y, ax_d = axes
    ax_y.plot(t, y, color=MEASURED_COLOR if color is None else color, lw=1.2)
    ax_y.set_ylabel(y_label)
    plot_second_difference(ax_d, t, y, color=color, **detector_options)
    ax_d.set_xlabel(t_unit)
