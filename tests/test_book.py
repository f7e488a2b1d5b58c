"""smp.book (numbers and tables for the pages) and the layout helpers of smp.plotting."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from smp import book, plotting  # noqa: E402

# ---------------------------------------------------------------- format_number


@pytest.mark.parametrize(
    "value, text",
    [
        (16650.0, "16,650"),
        (1234567, "1,234,567"),
        (0.0012345, "0.00123"),
        (2.0, "2"),
        (-0.5, "-0.5"),
        (0.0, "0"),
        (9.996, "10"),  # rounding to 3 digits carries into a new digit
        (99.96, "100"),
        (1e-4, "0.0001"),  # the lower end of the plain range
        (9.99e-5, "9.99e-5"),  # just below it: exponent, without the padding zero
        (3e-9, "3.00e-9"),
        (2.5e7, "2.50e+7"),
        (float("inf"), "∞"),
        (float("-inf"), "-∞"),
        ("max pool", "max pool"),
        (True, "True"),  # a flag is not the number 1
    ],
)
def test_format_number(value, text):
    assert book.format_number(value) == text


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_format_number_numpy_floats(dtype):
    assert book.format_number(dtype(0.0012345)) == "0.00123"
    assert (
        book.format_number(dtype(1234.5)) == "1,234"
    )  # 3 digits; integers part kept whole
    # a float32 NaN is not a Python float: it must still show as the missing mark
    assert book.format_number(dtype("nan")) == book.MISSING


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA, np.nan])
def test_format_number_missing(missing):
    assert book.format_number(missing) == "–"


def test_format_number_integers_and_digits():
    assert book.format_number(np.int64(36)) == "36"
    assert book.format_number(np.int32(-16650)) == "-16,650"
    assert book.format_number(np.pi, digits=5) == "3.1416"
    assert book.format_number(np.pi, digits=1) == "3"
    with pytest.raises(ValueError, match="digits"):
        book.format_number(1.0, digits=0)


# ---------------------------------------------------------------- format_table


@pytest.fixture
def sweep():
    return pd.DataFrame(
        {
            "network": ["ReLU + max pool", "softplus + avg pool"],
            "k": [2, 4],
            "smp_model": [113.6123, np.nan],
            "error": [0.0123, -0.004],
        }
    )


def test_format_table_headers_order_and_formats(sweep):
    text = book.format_table(
        sweep,
        {"error": "error (%)", "network": "network", "smp_model": "model SMP (1/rad)"},
        {"error": lambda e: f"{100 * e:+.1f}"},
    )
    assert list(text.columns) == ["error (%)", "network", "model SMP (1/rad)"]
    assert text["error (%)"].tolist() == ["+1.2", "-0.4"]
    assert text["model SMP (1/rad)"].tolist() == [
        "114",
        "–",
    ]  # NaN shows as the missing mark


def test_format_table_format_string_and_default(sweep):
    text = book.format_table(sweep, formats={"smp_model": "{:.1f}"})
    assert list(text.columns) == list(sweep.columns)  # default: every column, own names
    assert text["smp_model"].tolist() == ["113.6", "–"]
    assert text["k"].tolist() == ["2", "4"]


def test_format_table_unknown_column(sweep):
    with pytest.raises(ValueError, match="not found: \\['smp'\\]"):
        book.format_table(sweep, {"smp": "SMP"})


# ---------------------------------------------------------------- markdown_table


def test_markdown_table_alignment(sweep):
    text = book.format_table(
        sweep,
        {"network": "network", "k": "K", "smp_model": "SMP", "error": "error (%)"},
        {"error": lambda e: f"{100 * e:+.1f} %"},
    )
    lines = book.markdown_table(text).splitlines()
    assert lines[0] == "| network | K | SMP | error (%) |"
    # text left, numbers right; a column of numbers and missing marks is numeric
    assert lines[1] == "| :-- | --: | --: | --: |"
    assert lines[2] == "| ReLU + max pool | 2 | 114 | +1.2 % |"
    assert lines[3] == "| softplus + avg pool | 4 | – | -0.4 % |"
    assert len(lines) == 4


def test_markdown_table_numeric_forms():
    text = pd.DataFrame(
        {
            "auc": ["0.930 [0.883, 0.969]", "0.5 [0.5, 0.5]"],  # value with an interval
            "big": ["16,650", "∞"],
            "tiny": ["3.00e-9", "-∞"],
            "mixed": ["2", "two"],  # one word is enough for text alignment
        }
    )
    assert book.markdown_table(text).splitlines()[1] == "| --: | --: | --: | :-- |"


def test_markdown_table_escapes_pipes_and_newlines():
    text = pd.DataFrame({"a|b": ["x|y"], "c": ["two\nlines"]})
    lines = book.markdown_table(text).splitlines()
    assert lines[0] == "| a\\|b | c |"
    assert lines[2] == "| x\\|y | two lines |"
    assert len(lines) == 3  # the newline did not start a row


# ---------------------------------------------------------------- glue_table / glue_all


@pytest.fixture
def glued(monkeypatch):
    import myst_nb

    store = {}

    def fake_glue(name, value, display=True):
        assert display is False  # the book's glue cells never display
        store[name] = value

    monkeypatch.setattr(myst_nb, "glue", fake_glue)
    return store


def test_glue_table_glues_markdown_and_returns_the_same_cells(sweep, glued):
    columns = {"network": "network", "k": "K", "smp_model": "SMP (1/rad)"}
    text = book.glue_table("tab-test", sweep, columns)
    markdown = glued["tab-test"].data
    assert markdown == book.markdown_table(book.format_table(sweep, columns))
    # the text nbval checks holds the same headers and cells as the page's table
    lines = text.splitlines()
    assert lines[0].split() == ["network", "K", "SMP", "(1/rad)"]
    assert lines[1].split() == ["ReLU", "+", "max", "pool", "2", "114"]
    assert lines[2].split()[-2:] == ["4", "–"]


def test_glue_all_prefixes_and_plain_numbers(glued):
    book.glue_all(
        {"worst": np.float64(0.0137), "n": np.int64(36), "a": np.array(2.5), "s": "x"},
        prefix="dense_",
    )
    assert glued == {
        "dense_worst": 0.0137,
        "dense_n": 36,
        "dense_a": 2.5,
        "dense_s": "x",
    }
    # numpy scalars became Python numbers: their text form is a plain number
    assert type(glued["dense_worst"]) is float and type(glued["dense_n"]) is int


# ---------------------------------------------------------------- plotting layout


@pytest.fixture
def styled():
    plotting.set_style()
    yield
    plt.close("all")


def test_panel_grid_shapes(styled):
    fig, axes = plotting.panel_grid(3, panel_height=2.0, sharex=True)
    assert axes.shape == (3,)
    assert len(fig.axes) == 3  # the empty fourth slot was removed
    assert fig.get_size_inches().tolist() == [7.0, 4.0]
    fig, axes = plotting.panel_grid(1)
    assert axes.shape == (1,) and fig.get_size_inches()[1] == pytest.approx(2.6)
    fig, axes = plotting.panel_grid(2, columns=1)
    assert fig.get_size_inches().tolist() == [7.0, 5.2]


@pytest.mark.parametrize(
    "options, match",
    [
        ({"n_panels": 0}, "n_panels"),
        ({"n_panels": 2.0}, "n_panels"),
        ({"n_panels": 3, "columns": 3}, "columns"),
        ({"n_panels": 2, "width": 10.0}, "width"),
    ],
)
def test_panel_grid_rejects_unreadable_layouts(styled, options, match):
    with pytest.raises(ValueError, match=match):
        plotting.panel_grid(**options)


def test_legend_below_collects_each_label_once(styled):
    fig, axes = plotting.panel_grid(2)
    for ax in axes:
        ax.plot([0, 1], [0, 1], label="model")
        ax.plot([0, 1], [1, 0], label="measured")
    legend = plotting.legend_below(fig)
    assert [t.get_text() for t in legend.get_texts()] == ["model", "measured"]
    fig.canvas.draw()
    # below the panels: the legend's top edge is under every axis' bottom edge
    top = legend.get_window_extent().y1
    assert all(top <= ax.get_window_extent().y0 + 1 for ax in axes)


def test_smallest_text_px_scales_with_the_displayed_width(styled):
    fig = plt.figure(figsize=(7.0, 3.0))
    fig.text(0.5, 0.5, "nine", fontsize=9)
    fig.text(0.5, 0.2, "", fontsize=2)  # empty: ignored
    hidden = fig.text(0.5, 0.8, "hidden", fontsize=3)
    hidden.set_visible(False)
    # 96 px per inch on a 700 px column: 7 in fit unscaled
    assert plotting.smallest_text_px(fig) == pytest.approx(9 / 72 * 96)
    # a column of 350 px halves the figure, and its text
    assert plotting.smallest_text_px(fig, page_width_px=350) == pytest.approx(
        9 / 72 * 50
    )


def test_book_style_text_readable_on_the_page(styled):
    # the densest figure the rules allow: 2 x 2 panels at the widest size, titles, a "small"
    # legend below, log axes; every text must measure at least MIN_TEXT_PX as displayed
    fig, axes = plotting.panel_grid(4, width=plotting.MAX_WIDTH, sharex=True)
    t = np.linspace(0, 6, 200)
    for ax in axes:
        ax.plot(t, np.exp(t), label="a curve")
        ax.set(yscale="log", xlabel="t (rad)", ylabel="y (units)", title="a title")
    plotting.legend_below(fig, fontsize="small")
    assert plotting.smallest_text_px(fig) >= plotting.MIN_TEXT_PX
    # the check can fail: a figure twice as wide shrinks its text below the limit
    wide = plt.figure(figsize=(15.0, 3.0))
    ax = wide.add_subplot()
    ax.plot([0, 1], label="x")
    ax.legend(fontsize="small")
    assert plotting.smallest_text_px(wide) < plotting.MIN_TEXT_PX


def test_set_style_rejects_unknown_format():
    with pytest.raises(ValueError, match="formats"):
        plotting.set_style(formats="jpeg")
