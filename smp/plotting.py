"""The book's figure style: one theme, one palette, units on every axis, text readable on the page.

Chapters call :func:`set_style` once and use the named colours, so that *model* and *measurement*
are always the same two colours across the book.  Figures are drawn at most :data:`MAX_WIDTH`
inches wide with at most two panels per row (:func:`panel_grid`), one legend outside the data
(:func:`legend_below`), and shown as PNG at twice the resolution of their displayed size
("retina"), so that lines stay sharp without the page scaling them.

Text size on the page.  The book's column shows a figure at most :data:`PAGE_WIDTH_PX` CSS pixels
wide (the content column of the Jupyter Book theme at a 1280 px window, measured in Chromium); a figure wider
than that is scaled down, and its text with it.  :func:`smallest_text_px` gives the smallest text
of a figure in CSS pixels as displayed; the book's rule is at least :data:`MIN_TEXT_PX`.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = [
    "set_style",
    "MODEL_COLOR",
    "MEASURED_COLOR",
    "PALETTE",
    "MAX_WIDTH",
    "PAGE_WIDTH_PX",
    "MIN_TEXT_PX",
    "panel_grid",
    "legend_below",
    "smallest_text_px",
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

#: widest figure of the book (inches); with :data:`DPI` it is about the page's column width
MAX_WIDTH = 7.5
#: width of the page's content column (CSS px) at a 1280 px window, the narrowest of the book's
#: widths 1024/1280/1400 (from 1280 px the page-contents sidebar takes room); figures wider are
#: scaled down, and their text with them
PAGE_WIDTH_PX = 672
#: smallest text on a figure, in CSS px as displayed
MIN_TEXT_PX = 9.0
#: CSS px per inch of the displayed figure (the PNG carries twice as many pixels: "retina")
DPI = 96


def set_style(formats: str = "retina") -> None:
    """Seaborn whitegrid theme, readable sizes, figures 7 in wide at 96 CSS px per inch.

    ``formats`` is the inline output format of IPython figures (``"retina"``: PNG at twice the
    resolution, displayed at its logical size; ``"svg"`` for figures without long sampled
    signals; ``"png"``); outside IPython it is ignored.  Changes ``matplotlib.rcParams``
    globally (call once per notebook).

    Parameters
    ----------
    formats : str
        ``"retina"`` (default), ``"png"`` or ``"svg"``.

    Returns
    -------
    None

    Example
    -------
    >>> set_style()
    >>> fig, ax = plt.subplots()
    >>> bool(smallest_text_px(fig) >= MIN_TEXT_PX)
    True
    >>> plt.close(fig)
    """
    if formats not in ("retina", "png", "svg"):
        raise ValueError(f"formats must be 'retina', 'png' or 'svg', not {formats!r}")
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.95)
    plt.rcParams.update(
        {
            "figure.dpi": DPI,
            "savefig.dpi": 2 * DPI,
            "figure.figsize": (7.0, 3.8),
            "axes.titlesize": "medium",
            "legend.frameon": True,
            "legend.framealpha": 0.9,
            "figure.constrained_layout.use": True,
        }
    )
    try:
        from IPython import get_ipython
    except ImportError:  # plotting outside IPython: nothing to configure
        return
    if get_ipython() is not None:
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats(formats)


def panel_grid(
    n_panels: int,
    *,
    columns: int = 2,
    width: float = 7.0,
    panel_height: float = 2.6,
    **subplots_options,
) -> tuple[Figure, np.ndarray]:
    """A figure of ``n_panels`` panels, at most two per row, ``width`` inches wide.

    Returns ``(fig, axes)`` with ``axes`` a flat array of the ``n_panels`` axes in reading order
    (a panel missing from the last row is removed).  ``subplots_options`` go to
    :func:`matplotlib.pyplot.subplots` (``sharex``, ``sharey``, ``height_ratios``, ...).

    Example
    -------
    >>> fig, axes = panel_grid(3, sharey=True)
    >>> axes.shape, fig.get_size_inches().tolist()
    ((3,), [7.0, 5.2])
    >>> plt.close(fig)
    """
    if not isinstance(n_panels, int) or isinstance(n_panels, bool) or n_panels < 1:
        raise ValueError(f"n_panels must be a positive integer, not {n_panels!r}")
    if columns not in (1, 2):
        raise ValueError(
            f"columns must be 1 or 2 (text stays readable), not {columns!r}"
        )
    if not 0 < width <= MAX_WIDTH:
        raise ValueError(f"width must be in (0, {MAX_WIDTH}] inches, not {width!r}")
    columns = min(columns, n_panels)
    rows = -(-n_panels // columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(width, panel_height * rows),
        squeeze=False,
        **subplots_options,
    )
    axes = axes.ravel()
    for ax in axes[n_panels:]:
        fig.delaxes(ax)
    return fig, axes[:n_panels]


def legend_below(
    fig: Figure, handles=None, labels=None, *, columns: int = 2, **options
):
    """One legend for the whole figure, below the panels (outside the data).

    By default it collects the labelled artists of every axis once (the first of equal labels).
    Needs constrained layout (set by :func:`set_style`) to make room.
    """
    if handles is None:
        seen = {}
        for ax in fig.axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(label, handle)
        labels, handles = list(seen), list(seen.values())
    elif labels is None:
        labels = [h.get_label() for h in handles]
    return fig.legend(
        handles, labels, loc="outside lower center", ncol=columns, **options
    )


def smallest_text_px(fig: Figure, page_width_px: float = PAGE_WIDTH_PX) -> float:
    """Smallest visible text of ``fig`` in CSS pixels when shown at most ``page_width_px`` wide.

    A figure is displayed at ``width_in * dpi`` CSS px, scaled down to the page's column if
    wider; a text of ``s`` points then measures ``s / 72 * min(dpi, page_width_px / width_in)``
    px.  Texts that are empty or invisible (e.g. hidden tick labels) are ignored; ``inf`` if none.

    Example
    -------
    >>> fig = plt.figure(figsize=(7.0, 3.0), dpi=100)
    >>> _ = fig.text(0.5, 0.5, "nine points", fontsize=9)
    >>> round(smallest_text_px(fig, page_width_px=700), 2)  # 9 pt at 100 px per inch
    12.5
    >>> plt.close(fig)
    """
    fig.canvas.draw()  # tick labels exist only once drawn
    px_per_inch = min(fig.dpi, page_width_px / fig.get_figwidth())
    sizes = [
        t.get_fontsize()
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and _shown(t)
    ]
    return min(sizes) / 72 * px_per_inch if sizes else float("inf")


def _shown(text: Text) -> bool:
    """Whether a text is drawn: its axis (if any) is visible and it lies inside the figure."""
    axes = text.axes
    if axes is not None and not axes.get_visible():
        return False
    box = text.get_window_extent()
    fig_box = text.get_figure().bbox
    return (
        box.x1 > fig_box.x0
        and box.x0 < fig_box.x1
        and box.y1 > fig_box.y0
        and box.y0 < fig_box.y1
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
    legend: bool = True,
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
    legend : bool
        draw the legend (``False`` leaves it to the caller, e.g. :func:`legend_below`).

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
    if legend:
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
    """``|D[n]|`` against t, the samples that clear the detector's threshold ringed in red.

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

    y = np.asarray(y)
    # D in float64 for the plot; the threshold from y as given: its rounding floor follows the
    # dtype (a float32 signal's floor is float32's)
    abs_d = np.abs(second_difference(y.astype(np.float64)))
    core = abs_d > threshold(y, **detector_options)
    line_color = MEASURED_COLOR if color is None else color
    ax.plot(t[1:-1], abs_d, color=line_color, lw=0.9, label=label)
    ax.plot(
        t[1:-1][core],
        abs_d[core],
        "o",
        mfc="none",
        mec=MODEL_COLOR,
        ms=5,
        label="detected peaks",
    )
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
