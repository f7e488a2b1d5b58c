"""A piecewise-linear torch model as a graph of supported operations (``torch.fx``).

:func:`compile_graph` traces a model with ``torch.fx.symbolic_trace`` (an ``nn.Sequential``, or any
module whose ``forward`` is a fixed sequence of calls, e.g. residual blocks that add a block's input
to its output) into a list of :class:`Step` objects in execution order.  Each step is either

* ``"affine"``: an operation affine in its tensor inputs (``Linear``, ``Conv2d``, eval-mode
  ``BatchNorm``, ``AvgPool2d``, ``AdaptiveAvgPool2d``, ``Flatten``, ``Identity``, eval-mode
  ``Dropout``, the sum of two tensors, flatten/view/reshape that keep the batch axis, a product
  with a constant), evaluated as it is at the vertices of the pieces;
* ``"relu"``: ``ReLU`` / ``LeakyReLU`` (module or function), affine on each side of 0;
* ``"maxpool"``: ``MaxPool2d`` (module or ``F.max_pool2d``), affine while every window keeps its
  argmax.

Everything else (``GELU``, ``Tanh``, a product of two tensors, ...) raises ``TypeError`` naming it;
so does data-dependent control flow (``if x.sum() > 0``), which ``torch.fx`` cannot trace.
"""

from __future__ import annotations

import copy
import operator
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

#: leaf modules the layer-wise tracer understands
AFFINE_MODULES = (
    nn.Linear,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.Dropout,
)
RELU_MODULES = (nn.ReLU, nn.LeakyReLU)
POOL_MODULES = (nn.MaxPool2d,)
MODULES = AFFINE_MODULES + RELU_MODULES + POOL_MODULES

# functions and tensor methods that are affine in their tensor arguments (with the batch axis kept)
_AFFINE_FUNCTIONS = {
    operator.add: "add",
    operator.sub: "sub",
    operator.neg: "neg",
    operator.mul: "mul",  # checked at run time: one operand must be a constant
    operator.truediv: "div",
    torch.add: "add",
    torch.sub: "sub",
    torch.flatten: "flatten",
    torch.cat: "cat",
    F.avg_pool2d: "avg_pool2d",
    F.adaptive_avg_pool2d: "adaptive_avg_pool2d",
    F.linear: "linear",
    F.conv2d: "conv2d",
    operator.getitem: "getitem",  # only on shapes (x.shape[0]); a tensor index is refused
    getattr: "getattr",  # only x.shape, x.ndim, x.dtype, x.device
}
_RELU_FUNCTIONS = {F.relu: 0.0, torch.relu: 0.0}
_AFFINE_METHODS = {
    "add",
    "sub",
    "view",
    "reshape",
    "flatten",
    "size",
    "contiguous",
    "mul",
    "neg",
}


@dataclass
class Step:
    """One operation of the compiled graph."""

    name: str  # the fx node's name
    kind: str  # "affine", "relu" or "maxpool"
    fn: Callable[..., Any]  # called with the evaluated arguments
    args: tuple  # node names (str) or constants, nested tuples/lists allowed
    kwargs: dict
    negative_slope: float = 0.0  # relu steps
    pool: dict = field(
        default_factory=dict
    )  # maxpool steps: kernel_size, stride, padding, ...
    label: str = ""  # what the user sees in messages


@dataclass
class Graph:
    """A compiled model: input name, steps in execution order, output name, last use of values."""

    input: str
    steps: list[Step]
    output: Any  # node name, or a nested structure of names
    last_use: dict[
        str, int
    ]  # value name -> index of the last step that reads it (len(steps): output)
    module: nn.Module  # the float64 copy that was traced (for forward-mode slopes)


def _check_module(m: nn.Module, name: str) -> None:
    if type(m) not in MODULES:
        names = ", ".join(c.__name__ for c in MODULES)
        raise TypeError(
            f"trace: unsupported layer {type(m).__name__} ({name}: {m!r}); the layer-wise tracer handles {names}, "
            "ReLU/LeakyReLU/max-pool functions, and sums of tensors"
        )
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if m.training:
            raise ValueError(
                f"trace: layer {name} ({type(m).__name__}) is in training mode; call model.eval() first"
            )
        if m.running_mean is None or m.running_var is None:
            raise ValueError(
                f"trace: layer {name} ({type(m).__name__}) has no running statistics (track_running_stats=False): "
                "it normalises with batch statistics, which is not a function of one sample"
            )
    if isinstance(m, nn.Dropout) and m.training and m.p > 0:
        raise ValueError(
            f"trace: layer {name} (Dropout) is in training mode; call model.eval() first"
        )
    if isinstance(m, nn.Flatten) and m.start_dim == 0:
        raise ValueError(
            f"trace: layer {name} (Flatten) has start_dim=0, which would flatten the batch axis"
        )


def _pool_geometry(m_or_kwargs) -> dict:
    pair = nn.modules.utils._pair
    if isinstance(m_or_kwargs, nn.MaxPool2d):
        m = m_or_kwargs
        k, s, p, d, ceil = m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode
        if m.return_indices:
            raise TypeError("trace: MaxPool2d(return_indices=True) is not supported")
    else:
        kw = m_or_kwargs
        k = kw["kernel_size"]
        s = kw.get("stride") or k
        p, d, ceil = (
            kw.get("padding", 0),
            kw.get("dilation", 1),
            kw.get("ceil_mode", False),
        )
    return {
        "kernel_size": pair(k),
        "stride": pair(s if s is not None else k),
        "padding": pair(p),
        "dilation": pair(d),
        "ceil_mode": bool(ceil),
    }


def _names(a: Any) -> Any:
    """fx arguments with nodes replaced by their names."""
    if isinstance(a, torch.fx.Node):
        return a.name
    if isinstance(a, (tuple, list)):
        return type(a)(_names(x) for x in a)
    if isinstance(a, dict):
        return {k: _names(v) for k, v in a.items()}
    return a


def _used(a: Any, out: list[str]) -> None:
    if isinstance(a, torch.fx.Node):
        out.append(a.name)
    elif isinstance(a, (tuple, list)):
        for x in a:
            _used(x, out)
    elif isinstance(a, dict):
        for x in a.values():
            _used(x, out)


def compile_graph(model: nn.Module) -> Graph:
    """Trace ``model`` (a float64 copy of it) into a :class:`Graph` of supported steps.

    Raises ``TypeError`` naming an unsupported layer, function or method, or data-dependent control
    flow; ``ValueError`` for BatchNorm/Dropout in training mode.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module (e.g. an nn.Sequential of supported layers), got {type(model).__name__}"
        )
    for name, m in model.named_modules():
        # a leaf of torch.nn that the tracer does not know: refuse it by name before tracing
        if (
            not list(m.children())
            and m.__module__.startswith("torch.nn")
            and not isinstance(m, nn.Sequential)
        ):
            _check_module(m, name or type(m).__name__)
    net = copy.deepcopy(model).to(torch.float64)
    root = nn.Sequential(net) if type(net) in MODULES else net
    try:
        gm = torch.fx.symbolic_trace(root)
    except torch.fx.proxy.TraceError as exc:
        raise TypeError(
            f"trace: {type(model).__name__} has data-dependent control flow (a Python branch or loop on a tensor "
            f"value), which the tracer cannot follow: {exc}"
        ) from exc
    modules = dict(gm.named_modules())
    steps: list[Step] = []
    input_name, output = None, None
    uses: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if input_name is not None:
                raise TypeError(
                    f"trace: the model takes more than one input ({node.name}); it must take one tensor"
                )
            input_name = node.name
            continue
        if node.op == "output":
            output = _names(node.args[0])
            used: list[str] = []
            _used(node.args[0], used)
            for u in used:
                uses[u] = len(steps)
            continue
        args, kwargs = _names(node.args), _names(node.kwargs)
        label = f"{node.op} {node.target}"
        if node.op == "call_module":
            m = modules[node.target]
            _check_module(m, node.target)
            label = f"{node.target} ({type(m).__name__})"
            if isinstance(m, RELU_MODULES):
                slope = float(m.negative_slope) if isinstance(m, nn.LeakyReLU) else 0.0
                step = Step(
                    node.name,
                    "relu",
                    m,
                    args,
                    kwargs,
                    negative_slope=slope,
                    label=label,
                )
            elif isinstance(m, POOL_MODULES):
                step = Step(
                    node.name,
                    "maxpool",
                    m,
                    args,
                    kwargs,
                    pool=_pool_geometry(m),
                    label=label,
                )
            else:
                step = Step(node.name, "affine", m, args, kwargs, label=label)
        elif node.op == "call_function":
            fn = node.target
            fname = getattr(fn, "__name__", repr(fn))
            if fn in _RELU_FUNCTIONS or fn is F.leaky_relu:
                slope = 0.0
                if fn is F.leaky_relu:
                    slope = float(
                        kwargs.get("negative_slope", args[1] if len(args) > 1 else 0.01)
                    )
                    kwargs = {k: v for k, v in kwargs.items() if k != "inplace"}
                    kwargs["negative_slope"] = slope
                    args = args[:1]
                step = Step(
                    node.name,
                    "relu",
                    fn,
                    args,
                    kwargs,
                    negative_slope=slope,
                    label=fname,
                )
            elif fn is F.max_pool2d or fn is torch.max_pool2d:
                names = ["kernel_size", "stride", "padding", "dilation", "ceil_mode"]
                kw = dict(zip(names, args[1:]))
                kw.update({k: v for k, v in kwargs.items() if k in names})
                if kwargs.get("return_indices"):
                    raise TypeError(
                        "trace: max_pool2d(return_indices=True) is not supported"
                    )
                step = Step(
                    node.name,
                    "maxpool",
                    F.max_pool2d,
                    args[:1],
                    kw,
                    pool=_pool_geometry(kw),
                    label=fname,
                )
            elif fn in _AFFINE_FUNCTIONS:
                step = Step(
                    node.name, "affine", _checked(fn, fname), args, kwargs, label=fname
                )
            else:
                raise TypeError(
                    f"trace: unsupported operation {fname} (node {node.name}); the tracer handles affine layers, "
                    "ReLU/LeakyReLU, max pooling and sums of tensors"
                )
        elif node.op == "call_method":
            if node.target in ("relu", "relu_"):
                step = Step(
                    node.name, "relu", F.relu, args, {}, label=f"Tensor.{node.target}"
                )
            elif node.target in _AFFINE_METHODS:
                step = Step(
                    node.name,
                    "affine",
                    _method(node.target),
                    args,
                    kwargs,
                    label=f"Tensor.{node.target}",
                )
            else:
                raise TypeError(
                    f"trace: unsupported tensor method {node.target} (node {node.name})"
                )
        elif node.op == "get_attr":
            value = gm
            for part in node.target.split("."):
                value = getattr(value, part)
            step = Step(
                node.name,
                "affine",
                lambda v=value: v,
                (),
                {},
                label=f"attribute {node.target}",
            )
        else:  # pragma: no cover - fx has no other node kinds
            raise TypeError(f"trace: unsupported graph node {node.op} {node.target}")
        used = []
        _used(node.args, used)
        _used(node.kwargs, used)
        for u in used:
            uses[u] = len(steps)
        steps.append(step)
    if input_name is None:
        raise TypeError("trace: the model takes no input")
    return Graph(input_name, steps, output, uses, gm.eval())


def _checked(fn: Callable, fname: str) -> Callable:
    if fn is operator.mul:

        def mul(a, b):
            if (
                isinstance(a, torch.Tensor)
                and isinstance(b, torch.Tensor)
                and a.dim() > 0
                and b.dim() > 0
            ):
                raise TypeError(
                    "trace: unsupported operation mul of two tensors (not piecewise linear)"
                )
            return a * b

        return mul
    if fn is operator.truediv:

        def div(a, b):
            if isinstance(b, torch.Tensor) and b.dim() > 0:
                raise TypeError(
                    "trace: unsupported operation div by a tensor (not piecewise linear)"
                )
            return a / b

        return div
    if fn is getattr:

        def attribute(a, name):
            if name not in ("shape", "ndim", "dtype", "device"):
                raise TypeError(
                    f"trace: unsupported attribute access .{name} of a tensor"
                )
            return getattr(a, name)

        return attribute
    if fn is operator.getitem:

        def getitem(a, i):
            if isinstance(a, torch.Tensor):
                raise TypeError(
                    "trace: unsupported operation getitem on a tensor (indexing the batch axis)"
                )
            return a[i]

        return getitem
    return fn


def _method(name: str) -> Callable:
    def call(x, *args, **kwargs):
        if name == "mul" and isinstance(args[0], torch.Tensor) and args[0].dim() > 0:
            raise TypeError(
                "trace: unsupported operation mul of two tensors (not piecewise linear)"
            )
        return getattr(x, name)(*args, **kwargs)

    return call


#: model -> (structure key, graph, [(original tensor, float64 copy)]): tracing with torch.fx and
#: copying the model cost milliseconds, as much as tracing 50 lines through a small MLP
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _structure_key(model: nn.Module) -> tuple:
    """What the compiled graph depends on besides the values of the parameters and buffers."""
    modules = tuple(
        (name, id(m), type(m), m.training, m.extra_repr())
        for name, m in model.named_modules()
    )
    tensors = tuple(
        (name, id(p), tuple(p.shape)) for name, p in model.named_parameters()
    )
    buffers = tuple((name, id(b), tuple(b.shape)) for name, b in model.named_buffers())
    return modules, tensors, buffers


def compiled_graph(model: nn.Module) -> Graph:
    """:func:`compile_graph`, cached per model; the float64 copy is refreshed from the model's
    current parameters and buffers at every call (so in-place changes are always seen)."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module (e.g. an nn.Sequential of supported layers), got {type(model).__name__}"
        )
    key = _structure_key(model)
    hit = _COMPILED.get(model)
    if hit is not None and hit[0] == key:
        graph, pairs = hit[1], hit[2]
        with torch.no_grad():
            for original, copied in pairs:
                copied.copy_(original)
        return graph
    graph = compile_graph(model)
    root = graph.module
    prefix = "0." if isinstance(root, nn.Sequential) and type(model) in MODULES else ""
    copies = dict(root.named_parameters(remove_duplicate=False))
    copies.update(dict(root.named_buffers(remove_duplicate=False)))
    pairs = []
    for name, original in list(model.named_parameters(remove_duplicate=False)) + list(
        model.named_buffers(remove_duplicate=False)
    ):
        copied = copies.get(prefix + name)
        if copied is None or copied.shape != original.shape:
            return graph  # the traced module does not mirror the model's names: do not cache
        pairs.append((original, copied))
    _COMPILED[model] = (key, graph, pairs)
    return graph
