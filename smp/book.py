"""Tables for the book's pages: formatted numbers, units in the headers, a numbered caption.

A chapter shows a result table in two places that must agree: the rendered page (a real,
numbered, captioned table) and the notebook's checked text output (what nbval compares on every
test run).  :func:`glue_table` produces both from one DataFrame: it glues the table as MyST
Markdown under a name, for a ``{table}`` directive in the prose, and returns the same table as
text for the cell's output::

    # NBVAL_CHECK_OUTPUT   (the cell tagged remove-cell: the reader sees the numbered table)
    print(book.glue_table("tab-relu", sweep, columns={...}))

    :::{table} Caption.
    :name: tab-relu
    ```{glue:md} tab-relu
    :format: myst
    ```
    :::

Numbers are formatted for reading (:func:`format_number`: three significant digits, thousands
separators, no exponent between 1e-4 and 1e7), a missing value is shown as ``–`` (the caption
says why).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

__all__ = ["format_number", "format_table", "markdown_table", "glue_table", "glue_all"]

Formatter = Callable[[Any], str]
#: what a missing value (NaN, None) shows in a table
MISSING = "–"


def format_number(value: Any, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, for reading: ``16650 -> '16,650'``,
    ``0.0012345 -> '0.00123'``, ``nan -> '–'``; exponent notation only outside [1e-4, 1e7).

    Parameters
    ----------
    value : Any
        a number (integers get thousands separators, never rounding), ``None`` or NaN
        (shown as ``MISSING``), or anything else (shown with ``str``).
    digits : int
        significant digits of a float.

    Returns
    -------
    str
        the text; trailing zeros of the decimals dropped, infinities as ``∞``/``-∞``.

    Example
    -------
    >>> [format_number(v) for v in (16650.0, 0.0012345, 2.0, -0.5, float("nan"), 3e-9)]
    ['16,650', '0.00123', '2', '-0.5', '–', '3.00e-9']
    """
    if (
        not isinstance(digits, numbers.Integral)
        or isinstance(digits, bool)
        or digits < 1
    ):
        raise ValueError(f"digits must be a positive integer, not {digits!r}")
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    value = float(value)  # numpy float32/float16 too: their NaN is not a Python float
    if math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if not 1e-4 <= magnitude < 1e7:
        return f"{value:.{digits - 1}e}".replace("e-0", "e-").replace("e+0", "e+")
    decimals = max(digits - 1 - math.floor(math.log10(magnitude)), 0)
    rounded = round(value, decimals)
    text = f"{rounded:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_table(
    frame: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    formats: Mapping[str, str | Formatter] | None = None,
    *,
    digits: int = 3,
) -> pd.DataFrame:
    """The columns ``columns`` (``{name: header}``, in that order; default all) of ``frame`` as text.

    ``formats`` maps a column name to a format string (``"{:+.1f} %"``) or a function; other
    numeric columns use :func:`format_number` with ``digits`` significant digits.  Headers carry
    their units, e.g. ``{"smp_model": "model SMP (1/t)"}``.

    Parameters
    ----------
    frame : pandas.DataFrame
        the table of numbers.
    columns : mapping of str to str, optional
        ``{column name: header}`` of the columns to show, in order (default: all, under
        their own names).
    formats : mapping of str to str or callable, optional
        per column, a format string or a function of one cell returning its text;
        missing cells (NaN, None) show ``MISSING`` whatever the format.
    digits : int
        significant digits of the columns without a format.

    Returns
    -------
    pandas.DataFrame
        text cells under the headers, with ``frame``'s index.

    Raises
    ------
    ValueError
        a key of ``columns`` is not a column of ``frame``.

    Example
    -------
    >>> frame = pd.DataFrame({"k": [2, 4], "error": [0.0123, -0.004]})
    >>> format_table(frame, {"k": "window K", "error": "error (%)"},
    ...              {"error": lambda e: f"{100 * e:+.1f}"})
      window K error (%)
    0        2      +1.2
    1        4      -0.4
    """
    columns = dict(columns) if columns is not None else {c: c for c in frame.columns}
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"columns must name columns of frame; not found: {missing}")
    formats = dict(formats or {})
    out = {}
    for name, header in columns.items():
        fmt = formats.get(name)
        if fmt is None:
            cells = [format_number(v, digits) for v in frame[name]]
        elif isinstance(fmt, str):
            cells = [MISSING if pd.isna(v) else fmt.format(v) for v in frame[name]]
        else:
            cells = [MISSING if pd.isna(v) else fmt(v) for v in frame[name]]
        out[header] = cells
    return pd.DataFrame(out, index=frame.index)


def markdown_table(text: pd.DataFrame) -> str:
    """A text table (from :func:`format_table`) as a Markdown pipe table, numbers right-aligned.

    Parameters
    ----------
    text : pandas.DataFrame
        a table of text cells (its index is not shown); ``|`` in a cell is escaped.

    Returns
    -------
    str
        the header row, the alignment row (``--:`` for columns whose every cell reads as
        a number, ``:--`` otherwise) and one row per line of ``text``.

    Example
    -------
    >>> print(markdown_table(pd.DataFrame({"K": ["2"], "name": ["max"]})))
    | K | name |
    | --: | :-- |
    | 2 | max |
    """

    def numeric(cell: str) -> bool:
        stripped = (
            cell.replace(",", "").replace("%", "").replace("∞", "1").strip(" +-–")
        )
        try:
            float(stripped.split()[0] if stripped else "0")
        except ValueError:
            return False
        return True

    def escape(cell: str) -> str:
        # a pipe would end the cell and a newline the row
        return " ".join(str(cell).split("\n")).replace("|", "\\|")

    aligns = [
        "--:" if all(numeric(str(c)) for c in text[col]) else ":--"
        for col in text.columns
    ]
    lines = [
        "| " + " | ".join(escape(c) for c in text.columns) + " |",
        "| " + " | ".join(aligns) + " |",
    ]
    for _, row in text.iterrows():
        lines.append("| " + " | ".join(escape(c) for c in row) + " |")
    return "\n".join(lines)


def glue_table(
    name: str,
    frame: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    formats: Mapping[str, str | Formatter] | None = None,
    *,
    digits: int = 3,
) -> str:
    """Glue ``frame`` as a Markdown table under ``name`` and return it as text (for nbval).

    The page shows it through a ``{table}`` directive holding ``{glue:md}`` ``name`` with
    ``:format: myst`` (module docstring); the returned text is what the checked cell prints.

    Parameters
    ----------
    name : str
        the glue key the page cites.
    frame, columns, formats, digits
        as in :func:`format_table`.

    Returns
    -------
    str
        the formatted table as plain text, without the index.

    Example
    -------
    Outside a notebook the glue goes nowhere; the text is returned all the same:

    >>> frame = pd.DataFrame({"k": [2, 4], "smp": [1.23456, 16650.0]})
    >>> print(glue_table("demo_table", frame, {"k": "window K", "smp": "SMP (1/t)"}))
    window K SMP (1/t)
           2      1.23
           4    16,650
    """
    from IPython.display import Markdown
    from myst_nb import glue

    text = format_table(frame, columns, formats, digits=digits)
    glue(name, Markdown(markdown_table(text)), display=False)
    return text.to_string(index=False)


def glue_all(values: Mapping[str, Any], prefix: str = "") -> None:
    """Glue every ``name: value`` of ``values`` (as ``prefix + name``), without displaying them.

    One line in a chapter glues an experiment's whole summary; the prose then cites each number
    with ``{glue:text}`name:format```.

    Parameters
    ----------
    values : mapping of str to Any
        the numbers (or any values ``myst_nb.glue`` takes) by name.
    prefix : str
        put before every name, e.g. the chapter's topic.

    Returns
    -------
    None
        the values are glued for the page (outside a notebook, nowhere); nothing is
        displayed.

    Example
    -------
    The prose then cites ``{glue:text}`dense_worst_error:.1%```:

    >>> glue_all({"worst_error": 0.0137, "n_networks": 36}, prefix="dense_")
    """
    from myst_nb import glue

    for name, value in values.items():
        glue(prefix + name, _plain(value), display=False)


def _plain(value: Any) -> Any:
    """A numpy scalar (or 0-d array) as the Python number it holds: ``{glue:text}`x:.2f``` formats
    the glued text form, and numpy 2 writes ``np.float64(0.5)`` there."""
    if isinstance(value, np.generic) or (
        isinstance(value, np.ndarray) and value.ndim == 0
    ):
        return value.item()
    return value
