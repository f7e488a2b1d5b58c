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
    """Seaborn whitegrid theme, readable sizes, figures at 110 dpi, PNG output.

    Changes ``matplotlib.rcParams`` globally (call once per notebook).

    Returns
    -------
    None

    Example
    -------
    Inside ``plt.rc_context`` the caller's settings come back afterwards:

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> with plt.rc_context():
    ...     set_style()
    ...     plt.rcParams["figure.dpi"], plt.rcParams["figure.constrained_layout.use"]
    (110.0, True)
    """
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
    """Model as a line, measurement as points with 2-s.e. error bars (book colours).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        the axes to draw on (a legend is added).
    x : sequence of float
        abscissae of the measurements (and of the model unless ``model_x`` is given).
    model : sequence of float
        the model's values at ``x`` (or at ``model_x``), drawn in ``MODEL_COLOR``.
    measured, sem : sequence of float
        the measured means and their standard errors, drawn in ``MEASURED_COLOR`` with
        bars of ``+- 2 sem``.
    model_label, measured_label : str
        legend entries.
    model_x : sequence of float, optional
        a finer grid for the model curve.

    Returns
    -------
    None

    Example
    -------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> fig, ax = plt.subplots()
    >>> x, model = [1, 2, 3], [1.0, 2.0, 3.0]
    >>> model_vs_measurement(ax, x, model, [1.1, 1.9, 3.2], sem=[0.1, 0.1, 0.2])
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['model', 'measured (mean ± 2 s.e.)']
    >>> ax.lines[0].get_color() == MODEL_COLOR
    True
    >>> plt.close(fig)
    """
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
    """``|D[n]|`` against t, with the samples that clear the threshold ringed.

    ``t`` are the sample times of ``y``; ``D[n]`` is drawn at ``t[n]`` (n = 1 .. N-2),
    in ``MEASURED_COLOR`` (or ``color``); the core peak samples (``|D|`` above
    :func:`smp.feature.threshold`) are ringed in ``MODEL_COLOR``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        the axes to draw on.
    t : ndarray, shape (N,)
        sample times of ``y``.
    y : ndarray, shape (N,)
        one signal.
    color : matplotlib colour, optional
        colour of the ``|D|`` curve.
    label : str or None
        its legend entry.
    log : bool
        logarithmic y axis.
    **detector_options
        ``kappa``, ``window``, ``floor_eps`` of :func:`smp.feature.threshold`.

    Returns
    -------
    None

    Example
    -------
    The one kink of ``|t - 0.3021|`` is ringed, on the two samples around it:

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> t = np.linspace(0.0, 1.0, 201)
    >>> fig, ax = plt.subplots()
    >>> plot_second_difference(ax, t, np.abs(t - 0.3021) + np.sin(t))
    >>> np.round(ax.lines[1].get_xdata(), 3)
    array([0.3  , 0.305])
    >>> plt.close(fig)
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
    """Top axis: the signal ``y(t)``; bottom axis: :func:`plot_second_difference`.

    Parameters
    ----------
    axes : pair of matplotlib.axes.Axes
        the top (signal) and bottom (second difference) axes.
    t : ndarray, shape (N,)
        sample times of ``y``.
    y : ndarray, shape (N,)
        one signal.
    t_unit : str
        label of the bottom x axis (the unit of t).
    y_label : str
        label of the top y axis.
    color : matplotlib colour, optional
        colour of the signal and of ``|D|``.
    **detector_options
        ``kappa``, ``window``, ``floor_eps`` of :func:`smp.feature.threshold`.

    Returns
    -------
    None

    Example
    -------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> t = np.linspace(0.0, 1.0, 201)
    >>> fig, axes = plt.subplots(2, 1, sharex=True)
    >>> plot_signal_and_peaks(axes, t, np.abs(t - 0.3), t_unit="t (s)", y_label="y (V)")
    >>> axes[0].get_ylabel(), axes[1].get_xlabel(), axes[1].get_yscale()
    ('y (V)', 't (s)', 'log')
    >>> plt.close(fig)
    """
    ax_y, ax_d = axes
    ax_y.plot(t, y, color=MEASURED_COLOR if color is None else color, lw=1.2)
    ax_y.set_ylabel(y_label)
    plot_second_difference(ax_d, t, y, color=color, **detector_options)
    ax_d.set_xlabel(t_unit)
