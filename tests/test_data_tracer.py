"""data/09_trace_speed.csv (chapter 9): the stored speed table's claims, and its breakpoint counts
reproduced by a fresh trace (the timings are machine-dependent; the counts are not)."""

from __future__ import annotations

import numpy as np

from smp import data
from smp.experiments import _trace_speed
from smp.trace import trace_lines


def test_every_line_agrees_with_its_reference():
    table = data.load("trace_speed")
    assert (table.lines_differ == 0).all()
    assert (table.lines == 50).all()
    assert set(table.reference) == {"regioncam", "event walker", "one line per call"}


def test_mlp_breakpoint_counts_reproduce_with_a_fresh_trace():
    table = data.load("trace_speed").set_index("network")
    n_in, width, depth = _trace_speed.SPEED_MLPS[
        1
    ]  # the 100-32x6-1 MLP: quick to trace
    net = _trace_speed.speed_mlp(n_in, width, depth)
    x0, d = _trace_speed._segments((n_in,), 50)
    # the benchmark traces the float32 segments it gives regioncam, converted to float64
    x0, d = (
        x0.astype(np.float32).astype(np.float64),
        d.astype(np.float32).astype(np.float64),
    )
    events = sum(len(tr.t) for tr in trace_lines(net, x0, d))
    assert events == table.loc[f"MLP {n_in}-{width}x{depth}-1", "events"]
