"""The layer-wise tracer: all pieces of all lines pushed through each layer at once.

State.  The lines ``x_l(t) = x0_l + t d_l``, ``t in [0, 1]``, are cut into *pieces* by vertices,
kept sorted by (line, t); every line starts with its two end points.  For each vertex the engine
holds its line, its ``t``, the step that created it, and the values at that vertex of every tensor
of the network that is still needed (the current layer's input, and e.g. a residual block's input
until the block's sum).  Invariant: on every piece, every tensor computed so far is affine in ``t``
(the pieces refine the linear regions of the layers passed so far).

Per step (:mod:`smp._trace_graph` order):

* affine steps (Linear, Conv2d, BatchNorm, pooling by average, Flatten, sums of tensors) run the
  real torch operation on the values at all vertices at once: an affine map of affine functions is
  affine, so the pieces need no change;
* ReLU / LeakyReLU: its input is affine on each piece, so unit ``u`` changes sign inside the piece
  ``(a, b)`` iff its values at the ends have strictly opposite signs, at the fraction
  ``f = a_u / (a_u - b_u)`` of the piece (exact up to rounding: linear interpolation of an affine
  function).  All crossings of all units of all pieces are found in one vectorised step and
  inserted as new vertices whose values are the linear interpolation of every live tensor (exact
  for the same reason), the crossing unit set to exactly 0.  Then the activation runs on all
  vertices;
* MaxPool2d (any kernel, stride, padding, dilation, ceil_mode): on a piece every window element is
  affine, ``v + s f``; the argmax just after the piece's start is the argmax of
  ``v + s * merge_tol / length`` (ties go to the larger slope), and the window's first switch is the
  smallest ``(v_a - v_j) / (s_j - s_a)`` over elements climbing faster than the argmax ``a``.  Every
  window's first switch in every piece is inserted at once; the pieces after a new vertex are
  examined again, until no piece has a switch (at most ``k*k - 1`` rounds per window: the upper
  envelope of ``k*k`` lines has at most that many breaks).  Then the real max pooling runs.

New vertices are merged into their lines without a global re-sort: only the new crossings are
sorted (by piece, then fraction), and every new vertex lands at ``piece + rank + 1``.  Only the
1-d ``order`` (the row of each vertex) is merged: the rows of the live tensors never move, the
new vertices' rows are appended after them, in place when the tensor's storage has room (outputs
of Linear layers and convolutions are allocated with room), and large buffers are kept from one
call to the next (:class:`_Buffers`; :func:`release_buffers`).  The 1-d bookkeeping runs in
numpy (a call costs ~1 us against 5-10 us for torch, and its float comparisons and
``flatnonzero`` are several times faster here): on narrow MLPs the few dozen such operations
per layer, not the arithmetic, are most of the cost.

A ReLU whose only reader is a Linear layer runs with it as one step (:func:`_relu_linear`): the
matrix product runs at the old vertices, and the Linear's values at the new vertices of a piece
are the interpolation of its values at the piece's ends plus a small correction over the units
that cross inside the piece (exact up to rounding: every other unit is affine on the piece).
Crowded pieces (the first ReLU's, where a whole line is one piece) are first cut at every
:data:`ANCHOR_EVERY`-th crossing (:func:`_split_crowded`), so that the correction covers them
too.  The first ReLU of a CNN and the max pooling of its output run per line as one step
(:func:`_first_relu_pool`): the ReLU's output is never formed at the vertices.

At the end, vertices closer than ``merge_tol`` (in t) to their predecessor on the same line are
merged into it (the same rule as the event walker: events closer than ``merge_tol`` form one
breakpoint whose slope jump is the sum of theirs).  The output slope of each region is the
difference quotient of the output values at its ends when the region is longer than
:data:`SLOPE_BY_DIFFERENCE`; shorter regions, where rounding of the values would dominate, get the
slope of the region's own affine map: the network with the masks and argmaxes frozen at the
region's midpoint, evaluated one unit of t apart.
"""

from __future__ import annotations

import math
import threading
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ._trace_graph import Graph, Step

#: regions at least this long (in t) get their slope as a difference quotient of the output values
#: at their ends, whose rounding error is about ``1e-16 |y| / length``: measured at most 3e-11 of
#: the slope scale on 784-256-256-256-1 MLPs (1e-11 on 784-64x3), below the jump tolerance
#: ``DEFAULT_JUMP_RTOL = 1e-10``.  Shorter regions (about 1 % of them on those MLPs) get the slope
#: of their own affine map (:func:`_frozen_slopes`).
SLOPE_BY_DIFFERENCE = 1e-5


class LinePieces(NamedTuple):
    """Raw result for one line (arrays; :func:`smp.trace.trace_lines` wraps them in ``Trace``)."""

    t: np.ndarray  # (n_events,)
    values: np.ndarray  # (n_events + 2, n_outputs): outputs at 0, the events, 1
    slopes: np.ndarray  # (n_events + 1, n_outputs)
    jumps: np.ndarray  # (n_events, n_outputs), rounding noise set to 0
    layer: np.ndarray  # (n_events,) step index that created each event
    smp: np.ndarray  # (n_outputs,) sum of |jumps|
    n_pieces: np.ndarray  # (n_outputs,) 1 + number of nonzero jumps


class _State:
    """Vertices of all lines and the live tensors at them.

    ``order[i]`` is the *row* of the i-th vertex (in (line, t) order) in every live tensor.
    Rows are never moved: a new vertex's values are appended after the existing rows (in place
    when the tensor's storage has room, see :func:`_grow`), and only the 1-d ``order`` is
    merged.  The vertices' ``t``, line and creating step are kept by row too (appended), and
    their sorted views ``tn``, ``linen``, ``srcn`` (numpy) and ``t``, ``line``, ``src`` (torch)
    are gathered on demand: the ReLU steps of an MLP never need them.
    """

    def __init__(self, x0: torch.Tensor, d: torch.Tensor):
        n_lines = self.n_lines = x0.shape[0]
        # the 1-d bookkeeping lives in numpy (a numpy call costs ~1 us, a torch call ~5-10 us:
        # dozens of them per layer are the fixed cost of small networks)
        self._rows(
            np.tile([0.0, 1.0], n_lines),
            np.repeat(np.arange(n_lines), 2),
            np.full(2 * n_lines, -1, dtype=np.int64),
        )
        self._order(np.arange(2 * n_lines))
        ends = torch.stack([x0, x0 + d], dim=1)  # (L, 2, ...)
        self.first_input = ends.reshape((2 * n_lines,) + x0.shape[1:])
        self.env: dict[str, Any] = {}
        self.vertexwise: set[str] = set()

    def _rows(self, t: np.ndarray, line: np.ndarray, src: np.ndarray) -> None:
        """Set the per-row arrays (with as much room again for appended rows)."""
        n = t.shape[0]
        self.t_row = np.empty(2 * n + 64)
        self.line_row = np.empty(2 * n + 64, dtype=np.int64)
        self.src_row = np.empty(2 * n + 64, dtype=np.int64)
        self.t_row[:n], self.line_row[:n], self.src_row[:n] = t, line, src

    def _order(self, order: np.ndarray) -> None:
        self.ordern = order
        self.order = torch.from_numpy(order)
        self._sorted: dict[str, np.ndarray] = {}

    def _append(self, rows: np.ndarray, t, line, src) -> None:
        """Per-row values of new rows (a permutation of ``V .. V+K-1``)."""
        need = rows.shape[0] + self.ordern.shape[0]  # the new order's length
        if need > self.t_row.shape[0]:
            V = self.ordern.shape[0]
            old = self.t_row[:V], self.line_row[:V], self.src_row[:V]
            self._rows(
                np.resize(old[0], need),
                np.resize(old[1], need),
                np.resize(old[2], need),
            )
        self.t_row[rows], self.line_row[rows], self.src_row[rows] = t, line, src

    def _view(self, key: str) -> np.ndarray:
        if key not in self._sorted:
            V = self.ordern.shape[0]
            if key == "gap":
                line = self.linen
                #: piece i (vertices i, i+1) joins two lines: not a piece
                self._sorted[key] = line[1:] != line[:-1]
            else:
                self._sorted[key] = getattr(self, key + "_row")[:V][self.ordern]
        return self._sorted[key]

    tn = property(lambda self: self._view("t"))
    linen = property(lambda self: self._view("line"))
    srcn = property(lambda self: self._view("src"))
    gapn = property(lambda self: self._view("gap"))
    t = property(lambda self: torch.from_numpy(self.tn))
    line = property(lambda self: torch.from_numpy(self.linen))
    src = property(lambda self: torch.from_numpy(self.srcn))

    def reset_rows(self) -> None:
        """Rows renumbered in vertex order (when no live tensor holds rows: the caller fills)."""
        t, line, src = self.tn, self.linen, self.srcn
        self._rows(t, line, src)
        self._order(np.arange(t.shape[0]))

    def pieces(self) -> torch.Tensor:
        """Boolean (V-1,): vertex i and i+1 are on the same line (a piece, not a gap between lines)."""
        return torch.from_numpy(~self.gapn)

    def insert(
        self,
        seg: torch.Tensor | np.ndarray,
        frac: torch.Tensor | np.ndarray,
        step: int | np.ndarray,
        live: list[str],
        transform: dict | None = None,
        rename: dict | None = None,
        new_rows: torch.Tensor | None = None,
    ) -> None:
        """Insert vertices at fraction ``frac`` of the pieces ``seg`` (sorted by (seg, frac)).

        Every live tensor gets the linear interpolation of its values at the piece's ends (exact:
        the tensor is affine on the piece) as new rows after its old ones.
        ``transform[name](full, n_old)`` may rewrite a tensor with its new rows (in place, to save
        a pass) and returns the tensor to store, under ``rename.get(name, name)``.  ``new_rows``
        (with ``live`` empty: the caller fills the tensors) are the rows of the new vertices,
        default ``V, V+1, ...`` in the order of ``seg``.  ``step``: the creating step, one for
        all or one per new vertex.
        """
        seg_n = seg.numpy() if isinstance(seg, torch.Tensor) else seg
        frac_n = frac.numpy() if isinstance(frac, torch.Tensor) else frac
        V, K = self.ordern.shape[0], seg_n.shape[0]
        # the k-th new vertex (in seg order) lands at seg + k + 1 of the merged order
        pos_new = seg_n + np.arange(1, K + 1)
        is_old = np.ones(V + K, dtype=bool)
        is_old[pos_new] = False
        left, right = self.ordern[seg_n], self.ordern[seg_n + 1]
        if new_rows is None:
            new_rows_n = np.arange(V, V + K)
        else:
            new_rows_n = new_rows.numpy()
        ta, tb = self.t_row[left], self.t_row[right]
        self._append(
            new_rows_n,
            # torch.lerp's formula (the new t stays inside the piece)
            np.where(
                frac_n < 0.5, ta + frac_n * (tb - ta), tb - (tb - ta) * (1 - frac_n)
            ),
            self.line_row[left],
            step,
        )
        order = np.empty(V + K, dtype=np.int64)
        order[is_old] = self.ordern
        order[pos_new] = new_rows_n
        self._order(order)
        if not live:
            return
        left_t, right_t = torch.from_numpy(left), torch.from_numpy(right)
        frac_t = (
            torch.from_numpy(frac_n) if not isinstance(frac, torch.Tensor) else frac
        )
        for name in live:
            X = self.env[name]
            others = [T for n, T in self.env.items() if n != name]
            full = _grow(X, K, others)
            new = full[V:]
            torch.index_select(X, 0, left_t, out=new)
            w = frac_t.reshape((-1,) + (1,) * (X.dim() - 1)).to(X.dtype)
            new.lerp_(_gather_rows(X, right_t), w)
            del X
            if transform and name in transform:
                full = transform[name](full, V)
            if rename and name in rename:
                del self.env[name]
                name = rename[name]
            self.env[name] = full


def _grow(X: torch.Tensor, K: int, others: list) -> torch.Tensor:
    """``X`` (V rows) extended by ``K`` uninitialised rows, in place when its storage has room.

    In place (no copy of the old rows) when ``X`` is contiguous, starts its storage, no other live
    tensor shares that storage, and the storage holds ``V + K`` rows.  Otherwise a new buffer with
    as many spare rows again is allocated (its untouched pages cost no memory or time), so that
    the next insertions append in place: copying every old row at every layer, and the page faults
    of a fresh buffer, cost more than the layer's matrix product on wide MLPs.
    """
    V = X.shape[0]
    rows = V + K
    row_bytes = X[0].numel() * X.element_size()
    storage = X.untyped_storage()
    if (
        X.is_contiguous()
        and X.storage_offset() == 0
        and storage.nbytes() >= rows * row_bytes
        and not any(
            isinstance(T, torch.Tensor)
            and T.untyped_storage().data_ptr() == storage.data_ptr()
            for T in others
        )
    ):
        return X.as_strided((rows,) + X.shape[1:], (X[0].numel(),) + X.stride()[1:])
    full = _with_room((rows,) + tuple(X.shape[1:]), X.dtype)
    full[:V] = X
    return full


def _gather_rows(X: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``X.index_select(0, rows)`` into a kept buffer (a scratch tensor, read once)."""
    shape = (rows.shape[0],) + tuple(X.shape[1:])
    n = math.prod(shape)
    if X.dtype != torch.float64 or n * 8 < _Buffers.MIN_BYTES:
        return X.index_select(0, rows)
    return torch.index_select(X, 0, rows, out=_BUFFERS.take(n)[:n].view(shape))


def _with_room(shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised ``shape`` tensor whose storage has room for as many rows again."""
    row = math.prod(shape[1:])
    n = (2 * shape[0] + 64) * row
    if dtype == torch.float64 and n * 8 >= _Buffers.MIN_BYTES:
        buf = _BUFFERS.take(n)
        return buf[: shape[0] * row].view(shape)
    return torch.empty((2 * shape[0] + 64,) + tuple(shape[1:]), dtype=dtype)[: shape[0]]


class _Buffers:
    """Large float64 buffers kept from one call of the engine to the next.

    A fresh buffer of tens of MB costs a page fault per 4 KiB page on first touch (the C library
    maps such allocations freshly every time and unmaps them when freed): measured 0.5 ms per MB
    on the benchmark machine, as much as the layer's matrix product on a 784-256x3 MLP.  Buffers
    taken during a call are owned by it until :meth:`release` at its end returns them; at most
    :attr:`KEEP_BYTES` are kept (largest last taken first dropped), the rest freed.
    :func:`release_buffers` frees them all.
    """

    MIN_BYTES = 1 << 20  # smaller allocations are recycled by the C library's heap
    KEEP_BYTES = 256 << 20

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.free: list[torch.Tensor] = []
        self.taken = threading.local()

    def take(self, n: int) -> torch.Tensor:
        """A 1-d float64 tensor of at least ``n`` elements (uninitialised), owned by this call."""
        with self.lock:
            fits = [b for b in self.free if b.numel() >= n]
            if fits:
                buf = min(fits, key=torch.Tensor.numel)
                self.free = [b for b in self.free if b is not buf]
            else:
                buf = torch.empty(n, dtype=torch.float64)
        taken = getattr(self.taken, "list", None)
        if taken is not None:
            taken.append(buf)
        return buf

    def start(self) -> None:
        self.taken.list = []

    def release(self) -> None:
        """Return the buffers this thread's call took (its results hold none of them)."""
        taken, self.taken.list = getattr(self.taken, "list", None) or [], None
        with self.lock:
            pool = sorted(self.free + taken, key=torch.Tensor.numel)
            kept, size = [], 0
            for b in pool:
                if size + b.numel() * 8 <= self.KEEP_BYTES:
                    kept.append(b)
                    size += b.numel() * 8
            self.free = kept


_BUFFERS = _Buffers()


def release_buffers() -> int:
    """Free the buffers the layer-wise engine keeps between calls (see :class:`_Buffers`);
    returns the bytes freed."""
    with _BUFFERS.lock:
        freed = sum(b.numel() * b.element_size() for b in _BUFFERS.free)
        _BUFFERS.free = []
    return freed


def _is_sorted(seg: np.ndarray, frac: np.ndarray) -> bool:
    """Whether (seg, frac) pairs are in lexicographic order."""
    step = seg[1:] - seg[:-1]
    return bool(np.all((step > 0) | ((step == 0) & (frac[1:] >= frac[:-1]))))


def _sorted_by_piece(seg, frac, *extra):
    """Order crossings by piece, then by fraction within the piece (numpy or torch arrays)."""
    as_torch = isinstance(seg, torch.Tensor)
    if as_torch:
        seg, frac, extra = seg.numpy(), frac.numpy(), tuple(e.numpy() for e in extra)
    if seg.shape[0] > 1 and not _is_sorted(seg, frac):
        # fractions are in [0, 1): seg + frac orders by piece, then by fraction, except for two
        # fractions of one piece closer than its rounding (~1e-16 * seg); checked, else lexsort
        # (stable sorts of a run-sorted key: 5x faster than np.lexsort here)
        order = np.argsort(seg + frac, kind="stable")
        if not _is_sorted(seg[order], frac[order]):
            order = np.lexsort((frac, seg))
        seg, frac, extra = seg[order], frac[order], tuple(e[order] for e in extra)
    out = (seg, frac) + tuple(extra)
    return tuple(torch.from_numpy(v) for v in out) if as_torch else out


def _evaluate(arg: Any, env: dict) -> Any:
    if isinstance(arg, str) and arg in env:
        return env[arg]
    if isinstance(arg, (tuple, list)):
        return type(arg)(_evaluate(a, env) for a in arg)
    if isinstance(arg, dict):
        return {k: _evaluate(v, env) for k, v in arg.items()}
    return arg


def _reads(arg: Any, names: set[str]) -> bool:
    if isinstance(arg, str):
        return arg in names
    if isinstance(arg, (tuple, list)):
        return any(_reads(a, names) for a in arg)
    if isinstance(arg, dict):
        return any(_reads(a, names) for a in arg.values())
    return False


def _live(graph: Graph, index: int, env: dict, vertexwise: set[str]) -> list[str]:
    """Tensors read by step ``index`` or later (the ones new vertices need values for)."""
    return [
        n
        for n, X in env.items()
        if n in vertexwise
        and isinstance(X, torch.Tensor)
        and graph.last_use.get(n, -1) >= index
    ]


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _sign_changes(state: _State, flat: torch.Tensor):
    """Pieces where a unit of ``flat`` (V, units) changes sign strictly: numpy arrays
    ``seg`` (sorted), ``unit``, and the unit's values ``a``, ``b`` at the piece's ends.

    A unit exactly 0 at an end has its kink (if any) at that vertex already, so zeros are
    filtered out.
    """
    fn = flat.numpy()
    n = fn.shape[1]
    # (torch's float comparisons are ~4x slower than numpy's here; its row gather of bytes is
    # ~3x faster than numpy's)
    negative = torch.from_numpy(np.signbit(fn)).index_select(0, state.order).numpy()
    changes = np.flatnonzero(negative[1:] != negative[:-1])
    seg, unit = np.divmod(changes, n)
    order = state.ordern
    left, right = order[seg], order[seg + 1]
    a, b = fn[left, unit], fn[right, unit]
    # strictly opposite signs (a zero end excluded), both ends on the same line
    keep = (a * b < 0) & (state.line_row[left] == state.line_row[right])
    if not keep.all():
        seg, unit, a, b = seg[keep], unit[keep], a[keep], b[keep]
    return seg, unit, a, b


def _relu_step(state: _State, graph: Graph, index: int, step: Step) -> bool:
    name = step.args[0]
    X = state.env[name]
    V = X.shape[0]
    flat = X.reshape(V, -1)
    # strict sign change between the ends of a piece; a unit exactly 0 at an end has its kink (if
    # any) at that vertex already, so zeros are filtered out below
    seg, unit, a, b = _sign_changes(state, flat)
    # the input read by no later step: apply the activation in place, fused with the insertion
    in_place = (
        graph.last_use.get(name, -1) == index
        and X.is_contiguous()
        and not any(
            _shares_memory(X, T)
            for n, T in state.env.items()
            if n != name and isinstance(T, torch.Tensor)
        )
    )
    slope = step.negative_slope

    def activate(T: torch.Tensor) -> torch.Tensor:
        return T.clamp_(min=0.0) if slope == 0.0 else F.leaky_relu_(T, slope)

    if seg.shape[0]:
        frac = a / (a - b)
        seg, frac, unit = _sorted_by_piece(seg, frac, unit)
        if in_place and _fuse_linear(state, graph, index, step):
            if _split_crowded(state, graph, index, step, flat, seg, frac, unit):
                # the crowded pieces now end at anchors: find the other crossings again
                X = state.env[name]
                flat = X.reshape(X.shape[0], -1)
                seg, unit, a, b = _sign_changes(state, flat)
                seg, frac, unit = _sorted_by_piece(seg, a / (a - b), unit)
            seg, frac, unit = (torch.from_numpy(v) for v in (seg, frac, unit))
            _relu_linear(state, graph, index, step, flat, seg, frac, unit, activate)
            return True
        seg, frac, unit = (torch.from_numpy(v) for v in (seg, frac, unit))

        def at_kink(full: torch.Tensor, n_old: int) -> torch.Tensor:
            # the crossing unit is exactly at its kink
            rows = torch.arange(n_old, n_old + seg.numel())
            full.reshape(full.shape[0], -1)[rows, unit] = 0.0
            return activate(full) if in_place else full

        state.insert(
            seg,
            frac,
            index,
            _live(graph, index, state.env, state.vertexwise),
            {name: at_kink},
        )
    out = state.env.pop(name) if in_place else state.env[name]
    if in_place and not seg.shape[0]:
        activate(out)
    elif not in_place:
        # functional, never the module: an nn.ReLU(inplace=True) would overwrite a live tensor
        out = out.clamp(min=0.0) if slope == 0.0 else F.leaky_relu(out, slope)
    state.env[step.name] = out
    return False


#: a piece with at most ``in_features / FORMULA_SHARE`` crossings of a ReLU gets the next Linear's
#: values at its new vertices from the Linear's values at its ends plus a correction over the
#: crossing units (``m**2 * out`` multiply-adds for ``m`` crossings, against ``m * in * out`` for
#: the matrix product at the new vertices); pieces with more crossings (typically the first
#: layer's) go through the matrix product
FORMULA_SHARE = 4

#: rough costs on one core (measured on the 2-core benchmark machine, float64): multiply-adds per
#: ns in a matrix product, ns per element of a memory pass, ns per torch call (dispatch); they
#: decide whether the correction route (a few passes over ``out`` columns and about 12 calls per
#: class of crossing counts) beats the matrix product (``in * out`` multiply-adds per new vertex
#: plus 3 passes over ``in`` columns to interpolate the input)
MACS_PER_NS, NS_PER_ELEMENT, NS_PER_CALL = 20.0, 1.0, 20_000.0


#: crossings per anchor in the crowded pieces (:func:`_split_crowded`): the product at the
#: anchors costs ``in * out / ANCHOR_EVERY`` multiply-adds per crossing, the correction between
#: them about ``ANCHOR_EVERY * out`` (batched small products, slower per multiply-add); on the
#: 784-256x3 MLP the first ReLU's step took 80 ms without anchors, ~40 / ~30 / ~30 / ~28 ms
#: with one every 16 / 8 / 6 / 4 crossings (one loaded run)
ANCHOR_EVERY = 8


def _formula_saves(n_in: int, n_out: int) -> float:
    """Time saved (ns) per new vertex by the correction route (negative on narrow layers)."""
    return (
        n_in * (n_out / MACS_PER_NS + 3 * NS_PER_ELEMENT) - 8 * n_out * NS_PER_ELEMENT
    )


def _split_crowded(
    state: _State,
    graph: Graph,
    index: int,
    step: Step,
    Z: torch.Tensor,
    seg: np.ndarray,
    frac: np.ndarray,
    unit: np.ndarray,
) -> bool:
    """Insert every ``ANCHOR_EVERY``-th crossing of crowded pieces as a vertex (no activation).

    A piece with more than ``in_features / FORMULA_SHARE`` crossings of the ReLU (typically the
    first ReLU's, where a whole segment is one piece) would send all its new vertices through
    the next Linear's matrix product.  Cut at anchors, it becomes sub-pieces of fewer
    crossings, on which the input is still affine: the anchors go through the product, the
    crossings between them through the correction route (:func:`_relu_linear`).  The anchor's
    unit is set to exactly 0 (its kink), so that unit is not found crossing again.  Returns
    whether anchors were inserted (only where the correction route pays).
    """
    V, n_in = Z.shape
    n_out = graph.steps[index + 1].fn.out_features
    if _formula_saves(n_in, n_out) <= 0 or ANCHOR_EVERY * FORMULA_SHARE > n_in:
        return False
    per_piece = np.bincount(seg, minlength=V)
    count = per_piece[seg]
    crowded = count * FORMULA_SHARE > n_in
    if not crowded.any():
        return False
    rank = np.arange(seg.shape[0]) - (np.cumsum(per_piece) - per_piece)[seg]
    anchor = np.flatnonzero(crowded & (rank % ANCHOR_EVERY == ANCHOR_EVERY - 1))
    if not anchor.shape[0]:
        return False
    name = step.args[0]
    anchor_unit = torch.from_numpy(unit[anchor])

    def at_kink(full: torch.Tensor, n_old: int) -> torch.Tensor:
        rows = torch.arange(n_old, n_old + anchor.shape[0])
        full.reshape(full.shape[0], -1)[rows, anchor_unit] = 0.0
        return full

    state.insert(seg[anchor], frac[anchor], index, [name], {name: at_kink})
    return True


def _fuse_linear(state: _State, graph: Graph, index: int, step: Step) -> bool:
    """Whether the ReLU step ``index`` and the Linear after it can run as one step.

    Yes when the ReLU's input is the only live tensor (dies here), the ReLU's output is read
    only by the next step, and that step is an ``nn.Linear`` of a 2-d float64 input.
    """
    if index + 1 >= len(graph.steps) or graph.last_use.get(step.name, -1) != index + 1:
        return False
    nxt = graph.steps[index + 1]
    name = step.args[0]
    return (
        isinstance(nxt.fn, torch.nn.Linear)
        and nxt.args == (step.name,)
        and not nxt.kwargs
        and state.env[name].dim() == 2
        and nxt.fn.weight.dtype == torch.float64
        and _live(graph, index, state.env, state.vertexwise) == [name]
    )


def _relu_linear(
    state: _State,
    graph: Graph,
    index: int,
    step: Step,
    Z: torch.Tensor,
    seg: torch.Tensor,
    frac: torch.Tensor,
    unit: torch.Tensor,
    activate,
) -> None:
    """A ReLU whose input ``Z`` (2-d, dies here) changes sign at the sorted crossings
    (``seg``, ``frac``, ``unit``), and the Linear ``y = W act(z) + b`` after it, at all vertices.

    The matrix product runs at the old vertices (and the new ones of crowded pieces).  At the
    new vertices of a piece ``(a, b)`` with crossings ``f_1 <= ... <= f_m`` of units
    ``u_1 .. u_m``, every unit that does not cross is affine in ``f`` after the activation, so
    ``y(f)`` differs from ``lerp(y_a, y_b, f)`` only through the crossing units.  Unit ``u_i``
    with activation slopes ``s_a`` on the side of ``a`` and ``s_b`` on the side of ``b``
    (``d_i = s_a - s_b``) contributes ``act(z(f)) - lerp(act(z_a), act(z_b), f)``, which is
    ``d_i f z_b`` for ``f <= f_i`` and ``-d_i (1 - f) z_a`` for ``f >= f_i`` (equal at ``f_i``,
    where ``z`` is 0).  Hence

        ``y(f_j) = lerp(y_a, y_b, f_j) + sum_i C_ji W[:, u_i]``,
        ``C_ji = d_i f_j z_b[u_i]`` (``i >= j``), ``d_i (f_j - 1) z_a[u_i]`` (``i < j``),

    one small matrix product per piece (batched over pieces of equal crossing counts).  Exact up
    to rounding, which is that of a sum over the piece's ``m`` crossing units (the matrix product
    sums over all ``in`` units); it skips interpolating ``Z`` at the new vertices and the
    product there.
    """
    lin = graph.steps[index + 1].fn
    V, n_in = Z.shape
    seg_n = seg.numpy()
    left = torch.from_numpy(state.ordern[seg_n])
    right = torch.from_numpy(state.ordern[seg_n + 1])
    n_out = lin.out_features
    K = seg.shape[0]
    # time saved per new vertex by the correction route (negative on narrow layers)
    saved = _formula_saves(n_in, n_out)
    by_formula = None
    if saved * K > 12 * NS_PER_CALL:
        per_piece = torch.bincount(seg, minlength=V)
        count = per_piece[seg]  # crossings in each crossing's piece
        few = count * FORMULA_SHARE <= n_in  # the same for all crossings of a piece
        if few.any():
            n_classes = int(torch.ceil(torch.log2(count[few].max().double()))) + 1
            if saved * int(few.sum()) >= 12 * n_classes * NS_PER_CALL:
                by_formula = few
    if by_formula is None:  # all new vertices through the product
        n_dense, n_formula, new_rows = K, 0, None
        dl, dr, dfrac, du = left, right, frac, unit
    else:
        fi = torch.nonzero(by_formula, as_tuple=True)[0]
        di = torch.nonzero(~by_formula, as_tuple=True)[0]
        n_dense, n_formula = di.shape[0], fi.shape[0]
        dl, dr, dfrac, du = left[di], right[di], frac[di], unit[di]
        # rows: the new vertices of crowded pieces first (through the product), then the others
        new_rows = torch.empty(K, dtype=torch.int64)
        new_rows[di] = torch.arange(V, V + n_dense)
        new_rows[fi] = torch.arange(V + n_dense, V + K)
    if n_formula:
        lf, rf, uf, ff = left[fi], right[fi], unit[fi], frac[fi]
        za, zb = Z[lf, uf], Z[rf, uf]  # before the activation (in place, below)
    full = _grow(Z, n_dense, [T for k, T in state.env.items() if k != step.args[0]])
    if n_dense:
        new = full[V:]
        torch.index_select(Z, 0, dl, out=new)
        new.lerp_(_gather_rows(Z, dr), dfrac[:, None])
        # the crossing unit is exactly at its kink
        new.numpy()[np.arange(n_dense), du.numpy()] = 0.0
    del Z
    activate(full)
    out = _affine(graph.steps[index + 1], {step.name: full}, {})
    del full
    if n_formula:
        y0 = out
        out = _grow(y0, n_formula, [])
        new = out[V + n_dense :]
        torch.index_select(y0, 0, lf, out=new)
        new.lerp_(_gather_rows(y0, rf), ff[:, None])
        del y0
        slope = step.negative_slope
        # (python scalars in torch.where would give float32)
        d = torch.where(za > 0, za.new_tensor(1.0 - slope), za.new_tensor(slope - 1.0))
        dza, dzb = d * za, d * zb
        Wt = lin.weight.t().contiguous()  # rows gathered below
        cf = count[fi]
        # position of each formula crossing in its piece, and where its piece starts (in fi)
        rank = fi - (torch.cumsum(per_piece, 0) - per_piece)[seg[fi]]
        starts = torch.nonzero(rank == 0, as_tuple=True)[0]
        m_of = cf[starts]
        # buckets: exact counts up to 8, then power-of-two classes (padding at most 2x)
        # classes of crossing counts 1, 2, 3-4, 5-8, ...: padded to the class's largest
        bucket = 2 ** torch.ceil(torch.log2(m_of.to(torch.float64))).long()
        for b in torch.unique(bucket).tolist():
            s, m_s = starts[bucket == b], m_of[bucket == b]
            m = int(m_s.max())
            idx = s[:, None] + torch.arange(m)  # (P, m) formula-crossing indices
            padded = bool((m_s < m).any())
            if padded:
                valid = torch.arange(m) < m_s[:, None]
                idx = torch.where(valid, idx, s[:, None])
            f = ff[idx]
            i_ge_j = torch.ones(m, m, dtype=torch.bool).triu()  # [j, i]: i >= j
            C = torch.where(
                i_ge_j,
                f[:, :, None] * dzb[idx][:, None, :],
                (f - 1.0)[:, :, None] * dza[idx][:, None, :],
            )
            if padded:
                # padded crossings: their columns of C are zeroed, their rows dropped
                corr = torch.bmm(C * valid[:, None, :], Wt[uf[idx]])
                new.index_add_(0, idx[valid], corr[valid])
            else:
                corr = torch.bmm(C, Wt[uf[idx]])  # (P, m, out)
                new.index_add_(0, idx.reshape(-1), corr.reshape(-1, corr.shape[-1]))
    state.insert(seg, frac, index, [], new_rows=new_rows)
    del state.env[step.args[0]]
    state.env[graph.steps[index + 1].name] = out


def _first_relu_pool(
    state: _State,
    graph: Graph,
    index: int,
    step: Step,
    merge_tol: float,
    windows: dict,
) -> bool:
    """The first ReLU/LeakyReLU and the max pooling of its output, per line, in one step.

    Applies when no vertex has been inserted yet (every line is one piece, on which the ReLU's
    input ``z`` is affine: ``z(t) = z_0 + t (z_1 - z_0)``), the input is the only live tensor
    and dies here, and the ReLU's output is read only by the next step, a max pooling.  Then
    everything is known per line without materialising the ReLU's output at every vertex:

    * the ReLU's breakpoints are the strict sign changes of each unit, at ``z_0 / (z_0 - z_1)``;
    * the activation is increasing, so the pooled value is ``act(max_e z_e)`` over the window's
      elements and its argmax switches are those of the upper envelope of the window's affine
      ``z_e`` (walked as in :func:`_maxpool_step`, at most ``k*k - 1`` per window and line),
      kept where the envelope's value is not 0 (ReLU: > 0; below 0 all outputs are 0 and tie);
      a switch at value 0 is a ReLU breakpoint already;
    * the pooled output at every vertex is ``act(max_e z_e(t))``, one pass over the windows.

    The same breakpoints as the ReLU step followed by the max-pool step, up to rounding; a
    switch within ``merge_tol`` of a ReLU breakpoint is merged with it at the end instead of
    being skipped.  This replaces the largest tensors of a CNN's first block (the ReLU's output
    at every vertex, ``units`` wide, and its max pooling) by the pooled output alone.
    """
    n_lines = state.n_lines
    if (
        state.tn.shape[0] != 2 * n_lines
        or index + 1 >= len(graph.steps)
        or graph.steps[index + 1].kind != "maxpool"
        or graph.steps[index + 1].args != (step.name,)
        or graph.steps[index + 1].kwargs
        or graph.last_use.get(step.name, -1) != index + 1
    ):
        return False
    name = step.args[0]
    if graph.last_use.get(name, -1) != index or _live(
        graph, index, state.env, state.vertexwise
    ) != [name]:
        return False
    pool_step = graph.steps[index + 1]
    X = state.env[name]
    if X.dim() < 3 or not np.array_equal(state.ordern, np.arange(2 * n_lines)):
        return False
    X4 = X.reshape(X.shape[0], -1, X.shape[-2], X.shape[-1])
    _, C, H, W = X4.shape
    if index + 1 not in windows:
        windows[index + 1] = _Windows(pool_step.pool)
    elems = windows[index + 1].indices(H, W)  # (P, K)
    P_, K_ = elems.shape
    slope = step.negative_slope
    z = X4.reshape(2 * n_lines, C, H * W)
    z0, z1 = z[0::2], z[1::2]  # (L, C, H*W) at t = 0 and t = 1
    # ReLU breakpoints: strict sign changes over the line (a unit 0 at an end has none inside)
    a, b = z0.reshape(n_lines, -1).numpy(), z1.reshape(n_lines, -1).numpy()
    r_line, r_unit = np.nonzero(a * b < 0)
    ra, rb = a[r_line, r_unit], b[r_line, r_unit]
    r_t = ra / (ra - rb)
    # window elements (padding: -inf, never the maximum) at t = 0 and their change over the line
    pad = elems < 0
    cols = elems.clamp(min=0)
    v = z0[:, :, cols].masked_fill(pad, -torch.inf)  # (L, C, P, K)
    s = (z1[:, :, cols] - z0[:, :, cols]).masked_fill(pad, 0.0)
    vf, sf = v.reshape(-1, K_), s.reshape(-1, K_)
    # the envelope's switches, window by window (as in _maxpool_step, on the whole line)
    found_w, found_t = [], []
    for walking, tau, va, sa in _envelope_switches(vf, sf, merge_tol):
        value = (va + sa * tau)[walking]
        w = torch.nonzero(walking, as_tuple=True)[0]
        counts = value > 0 if slope == 0.0 else value != 0
        found_w.append(w[counts])
        found_t.append(tau[walking][counts])
    p_w = torch.cat(found_w).numpy() if found_w else np.zeros(0, dtype=np.int64)
    p_t = torch.cat(found_t).numpy() if found_t else np.zeros(0)
    p_line = p_w // (C * P_)
    # all breakpoints by (line, t); the ReLU's first on ties (stable)
    line = np.concatenate([r_line, p_line])
    t = np.concatenate([r_t, p_t])
    src = np.concatenate(
        [np.full(r_t.shape[0], index), np.full(p_t.shape[0], index + 1)]
    )
    order = np.argsort(line + t, kind="stable")
    if not _is_sorted(line[order], t[order]):
        order = np.lexsort((t, line))
    line, t, src = line[order], t[order], src[order]
    E = t.shape[0]
    V0 = 2 * n_lines
    state.insert(2 * line, t, src, [])
    # the pooled output's rows in vertex order (the ReLU's input, the only other tensor, dies)
    state.reset_rows()
    vK = v.permute(0, 3, 1, 2).reshape(n_lines, -1)  # (L, K * C*P): element-major
    sK = s.permute(0, 3, 1, 2).reshape(n_lines, -1)
    pooled = _with_room((V0 + E, C * P_), torch.float64)
    t_all = state.t
    ends = np.cumsum(np.bincount(state.linen, minlength=n_lines)).tolist()
    start = 0
    for ln, end in enumerate(ends):
        # every window element at every vertex of the line (an outer product, in cache), then
        # the maximum over the elements
        Zl = torch.addr(vK[ln], t_all[start:end], sK[ln])
        torch.amax(Zl.view(end - start, K_, C * P_), dim=1, out=pooled[start:end])
        start = end
    # the activation is increasing: it commutes with the maximum
    if slope == 0.0:
        pooled.clamp_(min=0.0)
    else:
        F.leaky_relu_(pooled, slope)
    Ho_Wo = windows[index + 1].out_shape(H, W)
    del state.env[name]
    state.env[pool_step.name] = pooled.reshape((V0 + E,) + tuple(X.shape[1:-2]) + Ho_Wo)
    return True


class _Windows:
    """The elements of every max-pool window as flat indices into the ``H*W`` plane (-1: padding)."""

    def __init__(self, pool: dict):
        self.pool = pool
        self.cache: dict = {}
        self.shapes: dict = {}

    def indices(self, H: int, W: int) -> torch.Tensor:
        """(n_windows, k*k) int64, windows in the pooling output's row-major order."""
        if (H, W) not in self.cache:
            p = self.pool
            k, st, pd, dl = p["kernel_size"], p["stride"], p["padding"], p["dilation"]
            Ho, Wo = F.max_pool2d(
                torch.zeros(1, 1, H, W), k, st, pd, dl, p["ceil_mode"]
            ).shape[-2:]
            # the padded extent unfold needs for exactly Ho x Wo windows (ceil_mode adds some);
            # a negative extra crops
            extra_h = (Ho - 1) * st[0] + dl[0] * (k[0] - 1) + 1 - H - pd[0]
            extra_w = (Wo - 1) * st[1] + dl[1] * (k[1] - 1) + 1 - W - pd[1]
            plane = torch.arange(H * W, dtype=torch.float64).reshape(1, 1, H, W)
            padded = F.pad(plane, (pd[1], extra_w, pd[0], extra_h), value=-1.0)
            U = F.unfold(padded, k, dilation=dl, stride=st)[0]  # (k*k, Ho*Wo)
            self.cache[(H, W)] = U.T.contiguous().to(torch.int64)
            self.shapes[(H, W)] = (int(Ho), int(Wo))
        return self.cache[(H, W)]

    def out_shape(self, H: int, W: int) -> tuple[int, int]:
        """The pooling output's (Ho, Wo) for an ``H x W`` input."""
        self.indices(H, W)
        return self.shapes[(H, W)]


def _envelope_switches(v: torch.Tensor, s: torch.Tensor, eps):
    """Walk the upper envelope of the lines ``v + s * u`` (one row per window, one column per
    element), ``u`` in [0, 1], from ``u = 0``: each round yields ``(walking, tau, va, sa)``, the
    rows still walking, where their maximum switches next, and the value and slope of the
    element that was the maximum just before.  ``eps`` (a number, or one per row): a switch
    within ``eps`` of ``u = 1`` belongs to the end, and the argmax is taken ``eps`` after the
    current point."""
    now = torch.zeros(v.shape[0], dtype=torch.float64)
    walking = torch.ones_like(now, dtype=torch.bool)
    for _ in range(v.shape[1]):
        arg = (v + s * (now + eps)[:, None]).argmax(dim=1, keepdim=True)
        va, sa = v.gather(1, arg), s.gather(1, arg)
        climbing = s > sa
        tau = torch.where(
            climbing, (va - v) / torch.where(climbing, s - sa, 1.0), torch.inf
        ).amin(dim=1)
        # tau > now guards against rounding sending the walk back
        walking = walking & (tau < 1 - eps) & (tau > now)
        if not walking.any():
            return
        yield walking, tau, va[:, 0], sa[:, 0]
        now = torch.where(walking, tau, now)


def _max_pool(X4: torch.Tensor, pool: dict, indices: bool):
    """``F.max_pool2d`` (with its indices if asked), contiguous results.

    Run on a channels-last copy: torch's float64 max pooling of contiguous (N, C, H, W) input
    goes plane by plane, 2-3x slower than its channels-last kernel plus the two copies on small
    planes (measured on 4x4 and 8x8 planes of the chapter-9 CNN); indices and ties are the same.
    """
    out = F.max_pool2d(
        X4.contiguous(memory_format=torch.channels_last),
        pool["kernel_size"],
        pool["stride"],
        pool["padding"],
        pool["dilation"],
        pool["ceil_mode"],
        return_indices=indices,
    )
    if indices:
        return out[0].contiguous(), out[1].contiguous()
    return out.contiguous()


def _maxpool_step(
    state: _State,
    graph: Graph,
    index: int,
    step: Step,
    merge_tol: float,
    windows: _Windows,
) -> None:
    """Split every piece where a window's argmax changes, then pool.

    The window's maximum is the upper envelope of its elements, affine on the piece: a convex
    function, so an element that is maximal at both ends of the piece is maximal all along it.
    Only windows whose argmax (torch's, at the vertices) differs between the ends of a piece are
    examined.  For them the whole envelope is walked at once on the piece (the input is affine on
    the original piece, so every new vertex is an interpolation of its ends): from the argmax just
    after the current point (ties go to the larger slope), the next switch is the first element
    climbing faster than the argmax to reach it; slopes increase along the envelope, so at most
    ``k*k - 1`` switches per window.  All switches of all windows are inserted in one merge.
    """
    name = step.args[0]
    X = state.env[name]
    X4 = X if X.dim() == 4 else X.reshape(X.shape[0], -1, X.shape[-2], X.shape[-1])
    V, C, H, W = X4.shape
    pool = step.pool
    pooled, arg = _max_pool(X4, pool, True)
    out_shape = X.shape[:-2] + pooled.shape[-2:]
    # sorted by (line, t); window indices < H*W fit 16 bits (a quarter of the gather)
    small = torch.int16 if H * W < 2**15 else torch.int64
    arg = arg.reshape(V, -1).to(small).index_select(0, state.order)
    # pieces on one line, longer than merge_tol (shorter ones are merged into a neighbour at the
    # end), whose ends have different argmaxes in some window
    todo = torch.nonzero(
        state.pieces() & (state.t[1:] - state.t[:-1] > merge_tol), as_tuple=True
    )[0]
    piece, window = torch.nonzero(arg[todo] != arg[todo + 1], as_tuple=True)
    dead = graph.last_use.get(name, -1) == index
    if not piece.numel():
        state.env[step.name] = pooled.reshape(out_shape)
        return
    seg = todo[piece]
    elems = windows.indices(H, W)  # (P, K)
    n_windows = elems.shape[0]
    channel, p = window // n_windows, window % n_windows
    e = elems[p]  # (M, K)
    pad = e < 0
    flat = X4.reshape(V, C, H * W)
    rows, chans, cols = state.order[seg][:, None], channel[:, None], e.clamp(min=0)
    after = state.order[seg + 1][:, None]
    # values at the start of the piece, and their change over it
    v = flat[rows, chans, cols].masked_fill(pad, -torch.inf)
    s = (flat[after, chans, cols] - flat[rows, chans, cols]).masked_fill(pad, 0.0)
    eps = merge_tol / (state.t[seg + 1] - state.t[seg])
    found_seg, found_frac = [], []
    for walking, tau, _, _ in _envelope_switches(v, s, eps):
        found_seg.append(seg[walking])
        found_frac.append(tau[walking])
    if not found_seg:
        state.env[step.name] = pooled.reshape(out_shape)
        return
    seg, frac = _sorted_by_piece(torch.cat(found_seg), torch.cat(found_frac))
    # overlapping windows share elements, so several windows can switch at the same point
    fresh = torch.ones_like(seg, dtype=torch.bool)
    fresh[1:] = (seg[1:] != seg[:-1]) | (frac[1:] != frac[:-1])
    seg, frac = seg[fresh], frac[fresh]
    live = _live(graph, index, state.env, state.vertexwise)
    if dead:
        # the input is read by no later step: merge the pooled values instead of the input

        def pooled_rows(full: torch.Tensor, n_old: int) -> torch.Tensor:
            new4 = full[n_old:].reshape(-1, C, H, W)
            out = _grow(pooled.reshape(out_shape), new4.shape[0], [])
            out[n_old:] = _max_pool(new4, pool, False).reshape(
                (new4.shape[0],) + out_shape[1:]
            )
            return out

        state.insert(seg, frac, index, live, {name: pooled_rows}, {name: step.name})
    else:
        state.insert(seg, frac, index, live)
        state.env[step.name] = step.fn(
            *_evaluate(step.args, state.env), **_evaluate(step.kwargs, state.env)
        )


#: a convolution whose dense matrix has at most this many entries runs as one matrix product
#: (8 MB in float64): on small feature maps a float64 matmul is far faster than torch's float64
#: convolution (measured 5-10x on the chapter-8 CNN), on large ones the convolution wins.
DENSE_CONV_ENTRIES = 2**20


def _affine(step: Step, env: dict, cache: dict) -> Any:
    """Run an affine step; small convolutions as a dense matrix product (built once per shape)."""
    m = step.fn
    if isinstance(m, torch.nn.Conv2d) and m.padding_mode == "zeros":
        X = env[step.args[0]]
        key = (step.name, tuple(X.shape[1:]))
        if key not in cache:
            cache[key] = None
            n_in = X[0].numel()
            out_shape = torch.nn.functional.conv2d(
                X[:1], m.weight, None, m.stride, m.padding, m.dilation, m.groups
            ).shape[1:]
            if n_in * out_shape.numel() <= DENSE_CONV_ENTRIES:
                # the matrix of the convolution without bias: its entries are the weights exactly
                basis = torch.eye(n_in, dtype=X.dtype).reshape(
                    (n_in,) + tuple(X.shape[1:])
                )
                M = F.conv2d(
                    basis, m.weight, None, m.stride, m.padding, m.dilation, m.groups
                ).reshape(n_in, -1)
                bias = (
                    torch.zeros(out_shape, dtype=X.dtype)
                    if m.bias is None
                    else m.bias.reshape(-1, 1, 1).expand(out_shape)
                )
                cache[key] = (M, bias.reshape(-1).contiguous(), out_shape)
        if cache[key] is not None:
            M, bias, out_shape = cache[key]
            out = _with_room((X.shape[0], M.shape[1]), X.dtype)
            torch.addmm(bias, X.reshape(X.shape[0], -1), M, out=out)
            return out.reshape((X.shape[0],) + tuple(out_shape))
    if isinstance(m, torch.nn.Linear) and not step.kwargs and len(step.args) == 1:
        X = env[step.args[0]]
        if X.dim() == 2 and X.dtype == m.weight.dtype:
            # what F.linear computes, into a tensor with room for the next insertions
            out = _with_room((X.shape[0], m.out_features), X.dtype)
            if m.bias is None:
                return torch.mm(X, m.weight.t(), out=out)
            return torch.addmm(m.bias, X, m.weight.t(), out=out)
    return m(*_evaluate(step.args, env), **_evaluate(step.kwargs, env))


def _frozen_slopes(
    graph: Graph, x: torch.Tensor, d: torch.Tensor, cache: dict
) -> torch.Tensor:
    """Output slopes along ``d`` of the linear regions containing the points ``x`` (batch).

    The network with every ReLU mask and max-pool argmax frozen at ``x`` is the region's affine
    map; it is evaluated at ``x`` and ``x + d`` and the outputs subtracted (a difference over a
    unit step in t: rounding ~1e-16 of the outputs, however short the region).
    """
    n = x.shape[0]
    env: dict[str, Any] = {graph.input: torch.cat([x, x + d])}
    for step in graph.steps:
        if step.kind == "relu":
            X = env[step.args[0]]
            active = X[:n] > 0
            factor = (
                active.to(X.dtype)
                if step.negative_slope == 0.0
                # two python scalars in torch.where give float32: 0.2 would be off by 1e-8
                else torch.where(
                    active, X.new_tensor(1.0), X.new_tensor(step.negative_slope)
                )
            )
            env[step.name] = X * torch.cat([factor, factor])
        elif step.kind == "maxpool":
            X = env[step.args[0]]
            X4 = (
                X
                if X.dim() == 4
                else X.reshape(X.shape[0], -1, X.shape[-2], X.shape[-1])
            )
            p = step.pool
            pooled, arg = _max_pool(X4[:n], p, True)
            flat = X4.reshape(2 * n, X4.shape[1], -1)
            idx = arg.reshape(n, X4.shape[1], -1)
            out = flat.gather(2, torch.cat([idx, idx])).reshape(
                (2 * n,) + pooled.shape[1:]
            )
            env[step.name] = out.reshape((2 * n,) + X.shape[1:-2] + pooled.shape[-2:])
        else:
            env[step.name] = _affine(step, env, cache)
    Y = _evaluate(graph.output, env)
    Y = Y.reshape(2 * n, -1)
    return Y[n:] - Y[:n]


def trace_pieces(
    graph: Graph,
    x0: torch.Tensor,
    d: torch.Tensor,
    merge_tol: float,
    jump_rtol: float,
    progress: bool = False,
) -> list[LinePieces]:
    """Every breakpoint of every line ``x0[l] + t d[l]`` through the compiled ``graph``.

    ``x0``, ``d``: float64 tensors of shape ``(n_lines, *sample_shape)``.  Returns one
    :class:`LinePieces` per line, with merged events, exact region slopes and their jumps (those
    below ``jump_rtol`` times the line's largest slope magnitude of that output set to 0).
    """
    _BUFFERS.start()
    try:
        return _trace_pieces(graph, x0, d, merge_tol, jump_rtol, progress)
    finally:
        _BUFFERS.release()


def _trace_pieces(graph, x0, d, merge_tol, jump_rtol, progress) -> list[LinePieces]:
    state = _State(x0, d)
    state.env[graph.input] = state.first_input
    del state.first_input
    windows: dict[int, _Windows] = {}
    dense: dict = {}  # dense matrices of small convolutions
    vertexwise = {
        graph.input
    }  # values with one row per vertex (not parameters, not shapes)
    state.vertexwise = vertexwise
    fused = False
    with torch.no_grad():
        # (a disabled tqdm still costs a tenth of a millisecond, a few % on small networks)
        steps = tqdm(graph.steps, desc="trace layers") if progress else graph.steps
        for index, step in enumerate(steps):
            if fused:
                fused = False  # the Linear ran with the ReLU before it
            elif step.kind == "relu":
                fused = _first_relu_pool(
                    state, graph, index, step, merge_tol, windows
                ) or _relu_step(state, graph, index, step)
            elif step.kind == "maxpool":
                if index not in windows:
                    windows[index] = _Windows(step.pool)
                _maxpool_step(state, graph, index, step, merge_tol, windows[index])
            else:
                state.env[step.name] = _affine(step, state.env, dense)
            if _reads(step.args, vertexwise) or _reads(step.kwargs, vertexwise):
                vertexwise.add(step.name)
            # free what no later step reads
            for n in [
                n
                for n in state.env
                if graph.last_use.get(n, -1) <= index and n != step.name
            ]:
                del state.env[n]
        out = _evaluate(graph.output, state.env)
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"trace: the model must return one tensor, got {type(out).__name__}"
        )
    Y = out.reshape(out.shape[0], -1)
    with torch.no_grad():
        return _assemble(state, Y, graph, x0, d, merge_tol, jump_rtol, dense)


def _assemble(
    state: _State,
    Y: torch.Tensor,
    graph: Graph,
    x0: torch.Tensor,
    d: torch.Tensor,
    merge_tol: float,
    jump_rtol: float,
    dense: dict,
) -> list[LinePieces]:
    t, line, src = state.tn, state.linen, state.srcn
    # rows sorted by (line, t)
    Y = Y.reshape(Y.shape[0], -1).index_select(0, state.order).numpy()
    V = t.shape[0]
    first = np.ones(V, dtype=bool)
    first[1:] = state.gapn
    last = np.ones(V, dtype=bool)
    last[:-1] = state.gapn
    gap = np.zeros(V)
    gap[1:] = t[1:] - t[:-1]
    # merge: a vertex within merge_tol of its predecessor joins it (the end point always stays)
    keep = first | last | (gap > merge_tol)
    kept = np.flatnonzero(keep)
    # the slope of the region ending at a kept vertex is that of its last raw piece (the earlier,
    # merged ones are shorter than merge_tol)
    ends = kept[~first[kept]]
    starts = ends - 1
    length = t[ends] - t[starts]
    slopes = (Y[ends] - Y[starts]) / length[:, None]
    short = np.flatnonzero(length < SLOPE_BY_DIFFERENCE)
    if short.shape[0]:
        mid = torch.from_numpy(0.5 * (t[starts[short]] + t[ends[short]]))
        ln = torch.from_numpy(line[ends[short]])
        shape = (-1,) + (1,) * (x0.dim() - 1)
        x_mid = x0[ln] + mid.reshape(shape) * d[ln]
        slopes[short] = _frozen_slopes(graph, x_mid, d[ln], dense).numpy()
    n_lines = x0.shape[0]
    n_kept = np.bincount(line[kept], minlength=n_lines)
    # regions (and jumps) are sorted by line: per-line sums and maxima by reduceat over the
    # runs of each line (np.ufunc.at and torch's scatter cost ~50x / ~10x more per element)
    region_line = line[ends]
    n_regions = n_kept - 1  # >= 1: every line keeps its two end points
    region_start = np.cumsum(n_regions) - n_regions
    # jumps of consecutive regions of the same line; rounding noise below jump_rtol times the
    # line's largest |slope| of that output set to 0
    scale = np.maximum.reduceat(np.abs(slopes), region_start, axis=0)
    jumps = slopes[1:] - slopes[:-1]
    jumps[np.abs(jumps) <= jump_rtol * scale[region_line[1:]]] = 0.0
    jumps = jumps[region_line[1:] == region_line[:-1]]
    # exact SMP and affine pieces of every output of every line, summed over its jumps
    n_jumps = n_regions - 1
    smp = np.zeros((n_lines, jumps.shape[1]))
    n_pieces = np.ones((n_lines, jumps.shape[1]), dtype=np.int64)
    has = n_jumps > 0
    if has.any():
        jump_start = (np.cumsum(n_jumps) - n_jumps)[has]
        smp[has] = np.add.reduceat(np.abs(jumps), jump_start, axis=0)
        n_pieces[has] += np.add.reduceat(
            (jumps != 0).astype(np.int64), jump_start, axis=0
        )
    # plain slices (np.split costs more than the rest of this function)
    v_end = np.cumsum(n_kept)
    v_start = v_end - n_kept
    values, t_kept, src_kept = Y[kept], t[kept], src[kept]
    return [
        LinePieces(
            t=t_kept[a + 1 : b - 1],
            values=values[a:b],
            slopes=slopes[a - i : b - i - 1],
            jumps=jumps[a - 2 * i : b - 2 * i - 2],
            layer=src_kept[a + 1 : b - 1],
            smp=smp[i],
            n_pieces=n_pieces[i],
        )
        for i, (a, b) in enumerate(zip(v_start.tolist(), v_end.tolist()))
    ]
