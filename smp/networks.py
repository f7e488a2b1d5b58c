"""Small seeded torch networks used across the book (float64, random He-style initialisation)."""

from __future__ import annotations

import copy
import numbers
from typing import Sequence

import torch
from torch import nn

from ._validation import check_choice, check_real

__all__ = [
    "float64_model",
    "conv_net",
    "dense_net",
    "random_conv2d",
    "landmark_net",
    "res_net",
    "ResidualBlock",
    "ResNet",
    "ACTIVATIONS",
    "POOLINGS",
    "LANDMARK_WIDTHS",
    "LANDMARK_HIDDEN",
    "LANDMARK_KINDS",
]

#: the activations by name (``activation`` argument of the constructors)
ACTIVATIONS = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}
#: the poolings by name (``pooling`` argument of :func:`conv_net`)
POOLINGS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def _init(
    layer: nn.Module,
    fan_in: int,
    weight_gain: float,
    bias_std: float,
    gen: torch.Generator,
) -> None:
    """``w ~ N(0, weight_gain**2 * 2 / fan_in)`` (He init at gain 1), ``b ~ N(0, bias_std**2)``."""
    with torch.no_grad():
        layer.weight.normal_(0.0, weight_gain * (2.0 / fan_in) ** 0.5, generator=gen)
        if bias_std > 0:
            layer.bias.normal_(0.0, bias_std, generator=gen)
        else:
            layer.bias.zero_()


def _check_common(weight_gain: float, bias_std: float) -> None:
    check_real("weight_gain", weight_gain, minimum=0)  # 1 is He initialisation
    check_real("bias_std", bias_std, minimum=0, strict=False)


def conv_net(
    channels: Sequence[int] = (1, 8, 16, 16),
    *,
    kernel_size: int = 3,
    pool_size: int = 2,
    activation: str = "relu",
    pooling: str = "max",
    head: int | None = None,
    input_size: int | None = None,
    weight_gain: float = 1.0,
    bias_std: float = 0.0,
    seed: int = 0,
) -> nn.Sequential:
    """Blocks ``Conv2d(k, padding=k//2) -> activation -> pool`` for each pair of ``channels``.

    With ``head`` outputs (and ``input_size``, the square input's side) a
    ``Flatten -> Linear`` head is appended.  Weights
    ``N(0, weight_gain**2 * 2 / fan_in)``, ``fan_in = C_in k k``; biases
    ``N(0, bias_std**2)``.  float64, eval mode.

    Parameters
    ----------
    channels : sequence of int
        channel counts, input first (at least 2): one block per consecutive pair.
    kernel_size : int
        ``k``, the side of every convolution kernel (odd keeps the map size).
    pool_size : int
        side and stride of every pooling window.
    activation : {"relu", "softplus", "gelu", "identity"}
        the nonlinearity, a key of ``ACTIVATIONS``.
    pooling : {"max", "avg"}
        the pooling, a key of ``POOLINGS``.
    head : int, optional
        number of outputs of a linear head; ``None`` for none.
    input_size : int, optional
        side of the square input; required with ``head``.
    weight_gain : float
        weight standard deviation in units of He initialisation (> 0).
    bias_std : float
        bias standard deviation (>= 0; 0 gives zero biases).
    seed : int
        seed of the ``torch.Generator`` that draws all parameters.

    Returns
    -------
    torch.nn.Sequential
        the network, float64, in eval mode.

    Example
    -------
    Two blocks halve an 8 x 8 input twice; the head maps 8 x 2 x 2 features to 3
    outputs:

    >>> import torch
    >>> net = conv_net((1, 4, 8), head=3, input_size=8, seed=0)
    >>> net(torch.zeros(5, 1, 8, 8, dtype=torch.float64)).shape
    torch.Size([5, 3])
    >>> net[-1].in_features
    32
    """
    act = check_choice("activation", activation, ACTIVATIONS)
    pool = check_choice("pooling", pooling, POOLINGS)
    _check_common(weight_gain, bias_std)
    if len(channels) < 2 or any(
        not isinstance(c, numbers.Integral) or c < 1 for c in channels
    ):
        raise ValueError(
            f"channels must list >= 2 positive integers (input first), got {channels!r}"
        )
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        conv = nn.Conv2d(
            c_in, c_out, kernel_size, padding=kernel_size // 2, dtype=torch.float64
        )
        _init(conv, c_in * kernel_size**2, weight_gain, bias_std, gen)
        layers += [conv, act(), pool(pool_size)]
    if head is not None:
        if input_size is None:
            raise ValueError(
                "input_size (the side of the square input) is needed to size the linear head"
            )
        side = input_size // pool_size ** (len(channels) - 1)
        fan_in = channels[-1] * side * side
        linear = nn.Linear(fan_in, head, dtype=torch.float64)
        # the head has no ReLU after it: variance-preserving (gain 1/2 of He) would also do; keep He
        _init(linear, fan_in, weight_gain, bias_std, gen)
        layers += [nn.Flatten(), linear]
    return nn.Sequential(*layers).eval()


def dense_net(
    in_features: int = 64,
    width: int = 256,
    depth: int = 6,
    *,
    activation: str = "relu",
    weight_gain: float = 1.0,
    bias_std: float = 0.0,
    seed: int = 0,
) -> nn.Sequential:
    """``depth`` blocks ``Linear(width) -> activation``.

    Weights ``N(0, weight_gain**2 * 2 / fan_in)`` (He initialisation at gain 1), biases
    ``N(0, bias_std**2)``.  float64, eval mode.

    Parameters
    ----------
    in_features : int
        input dimension.
    width : int
        output features of every linear layer.
    depth : int
        number of ``Linear -> activation`` blocks.
    activation : {"relu", "softplus", "gelu", "identity"}
        the nonlinearity, a key of ``ACTIVATIONS``.
    weight_gain : float
        weight standard deviation in units of He initialisation (> 0).
    bias_std : float
        bias standard deviation (>= 0; 0 gives zero biases).
    seed : int
        seed of the ``torch.Generator`` that draws all parameters.

    Returns
    -------
    torch.nn.Sequential
        the network, float64, in eval mode.

    Example
    -------
    The first layer's weights have the He standard deviation ``sqrt(2 / 64)``:

    >>> import torch
    >>> net = dense_net(64, 256, 2, seed=0)
    >>> net(torch.zeros(3, 64, dtype=torch.float64)).shape
    torch.Size([3, 256])
    >>> round(float(net[0].weight.detach().std()), 2), round((2 / 64) ** 0.5, 2)
    (0.18, 0.18)
    """
    act = check_choice("activation", activation, ACTIVATIONS)
    _check_common(weight_gain, bias_std)
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    fan_in = in_features
    for _ in range(depth):
        linear = nn.Linear(fan_in, width, dtype=torch.float64)
        _init(linear, fan_in, weight_gain, bias_std, gen)
        layers += [linear, act()]
        fan_in = width
    return nn.Sequential(*layers).eval()


def random_conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    weight_std: float,
    *,
    bias_std: float = 1.0,
    seed: int = 0,
) -> nn.Conv2d:
    """A float64 ``nn.Conv2d`` (no padding, stride 1) with i.i.d. Gaussian parameters.

    Weights ``N(0, weight_std**2)`` and biases ``N(0, bias_std**2)`` from a seeded
    ``torch.Generator`` (the bias shifts y, not its kinks).

    Parameters
    ----------
    in_channels, out_channels : int
        channel counts.
    kernel_size : int
        side of the square kernel.
    weight_std : float
        standard deviation of every weight (``sigma_w`` in the book).
    bias_std : float
        standard deviation of every bias.
    seed : int
        seed of the generator.

    Returns
    -------
    torch.nn.Conv2d
        the layer, float64, in eval mode.

    Example
    -------
    Without padding a 3 x 3 kernel shrinks a 6 x 6 map to 4 x 4:

    >>> import torch
    >>> conv = random_conv2d(2, 5, 3, weight_std=0.5, seed=0)
    >>> conv(torch.zeros(1, 2, 6, 6, dtype=torch.float64)).shape
    torch.Size([1, 5, 4, 4])
    >>> bool(torch.equal(conv.weight, random_conv2d(2, 5, 3, 0.5, seed=0).weight))
    True
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, dtype=torch.float64)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        conv.weight.normal_(0.0, float(weight_std), generator=gen)
        conv.bias.normal_(0.0, float(bias_std), generator=gen)
    return conv.eval()


#: channels of the three conv blocks of :func:`landmark_net`, the same for both networks
LANDMARK_WIDTHS = (4, 8, 8)

#: width of the hidden dense layer of :func:`landmark_net`
LANDMARK_HIDDEN = 16


#: the two networks: activation and pooling
LANDMARK_KINDS = {"relu": ("relu", "max"), "smooth": ("gelu", "avg")}


def landmark_net(kind: str, *, size: int = 24, seed: int = 0) -> nn.Sequential:
    """The landmark regressor of the forensics chapter (a small CNN with 2 outputs).

    Layers: 3 x [Conv3x3 -> act -> pool 2] -> Flatten -> Linear(HIDDEN) -> act ->
    Linear(2).

    ``kind`` is ``"relu"`` (ReLU, max pooling) or ``"smooth"`` (GELU, average pooling); widths
    ``LANDMARK_WIDTHS``/``LANDMARK_HIDDEN`` are shared.  The output is the centre in
    normalised units ``(c - (size-1)/2) / ((size-1)/2)``;
    :func:`smp.experiments.forensics.predict` converts to pixels.  float32 (training).

    Parameters
    ----------
    kind : {"relu", "smooth"}
        a key of ``LANDMARK_KINDS``.
    size : int
        side of the square input image (pixels), divisible by 8.
    seed : int
        seed of the initial weights (the caller's global torch random state is kept).

    Returns
    -------
    torch.nn.Sequential
        the untrained network, float32, in training mode.

    Example
    -------
    >>> import torch
    >>> net = landmark_net("smooth", seed=0)
    >>> net(torch.zeros(4, 1, 24, 24)).shape
    torch.Size([4, 2])
    >>> type(net[1]).__name__, type(net[2]).__name__
    ('GELU', 'AvgPool2d')
    """
    activation, pooling = check_choice("kind", kind, LANDMARK_KINDS)
    act, pool = ACTIVATIONS[activation], POOLINGS[pooling]
    # nn layers draw their initial weights from the global generator: seed it inside a fork, so the
    # weights depend on seed alone and the caller's random state is left as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in LANDMARK_WIDTHS:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), act(), pool(2)]
            c_in = c_out
        side = size // 2 ** len(LANDMARK_WIDTHS)
        layers += [
            nn.Flatten(),
            nn.Linear(c_in * side * side, LANDMARK_HIDDEN),
            act(),
            nn.Linear(LANDMARK_HIDDEN, 2),
        ]
    return nn.Sequential(*layers)


def float64_model(model: nn.Module) -> nn.Module:
    """``model`` itself if all its parameters and floating buffers are float64, else a float64 copy
    (the original is left alone): measurements along paths run in float64.

    Parameters
    ----------
    model : any torch module.

    Returns
    -------
    nn.Module
        A float64 module computing the same function.

    Example
    -------
    >>> net = nn.Linear(3, 2)  # float32, as torch makes it
    >>> float64_model(net).weight.dtype, net.weight.dtype
    (torch.float64, torch.float32)
    """
    if all(p.dtype == torch.float64 for p in model.parameters()) and all(
        b.dtype == torch.float64 for b in model.buffers() if b.is_floating_point()
    ):
        return model
    return copy.deepcopy(model).to(torch.float64)


class ResidualBlock(nn.Module):
    """A ResNet basic block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    ``conv1`` is 3 x 3 with ``stride``, ``conv2`` 3 x 3; both bias-free, each followed by
    BatchNorm.  The shortcut is the input itself when ``stride == 1`` and the channel count
    is kept, else a strided 1 x 1 convolution and BatchNorm (the projection shortcut).
    With ``inplace`` the sum and the ReLUs run in place, as in torchvision's blocks.

    Parameters
    ----------
    c_in, c_out : int
        input and output channels.
    stride : int
        stride of ``conv1`` and of the projection.
    inplace : bool
        torchvision's in-place ``out += shortcut(x)`` and ``ReLU(inplace=True)``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, inplace: bool = False):
        super().__init__()
        self.inplace = inplace
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        if stride == 1 and c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out),
            )
        self.relu2 = nn.ReLU(inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        if self.inplace:
            out += self.shortcut(x)
        else:
            out = out + self.shortcut(x)
        return self.relu2(out)


class ResNet(nn.Module):
    """Stem ``Conv3x3-BN-ReLU-MaxPool2``, residual blocks, global average pooling, linear head.

    The first block keeps ``channels[0]`` (identity shortcut); every further entry of
    ``channels`` adds a block of stride 2 with a 1 x 1 projection shortcut.  Built by
    :func:`res_net`, which draws the parameters.
    """

    def __init__(
        self,
        channels: Sequence[int] = (4, 8),
        in_channels: int = 1,
        outputs: int = 3,
        inplace: bool = False,
    ):
        super().__init__()
        c = channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        blocks = [ResidualBlock(c, c, 1, inplace)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            blocks.append(ResidualBlock(c_in, c_out, 2, inplace))
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels[-1], outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def res_net(
    channels: Sequence[int] = (4, 8),
    *,
    in_channels: int = 1,
    outputs: int = 3,
    bias_std: float = 0.1,
    inplace: bool = False,
    seed: int = 0,
) -> ResNet:
    """A small residual network (:class:`ResNet`) with seeded random parameters, float64, eval mode.

    Weights ``N(0, 2 / fan_in)`` (He), biases of the stem and head ``N(0, bias_std**2)``.
    BatchNorm in eval mode with random statistics, so that it is a real affine map and not
    the identity: running mean ``0.3 N(0, 1)``, running variance ``U(0.5, 2)``, scale
    ``1 + 0.2 N(0, 1)``, shift ``0.1 N(0, 1)``.  All drawn in module order from one
    ``torch.Generator`` seeded with ``seed``.

    Parameters
    ----------
    channels : sequence of int
        channels of the stem and first block, then of each strided block (at least 1).
    in_channels : int
        channels of the input image.
    outputs : int
        outputs of the linear head.
    bias_std : float
        standard deviation of the stem's and head's biases (>= 0).
    inplace : bool
        in-place sums and ReLUs inside the blocks (torchvision's style); same function.
    seed : int
        seed of all parameters.

    Returns
    -------
    ResNet
        the network, float64, in eval mode.

    Example
    -------
    An 8 x 8 image: the stem halves it, the strided block halves it again:

    >>> net = res_net((4, 8), seed=0)
    >>> net(torch.zeros(2, 1, 8, 8, dtype=torch.float64)).shape
    torch.Size([2, 3])
    >>> type(net.blocks[1].shortcut[0]).__name__, net.blocks[1].shortcut[0].stride
    ('Conv2d', (2, 2))
    """
    check_real("bias_std", bias_std, minimum=0, strict=False)
    if len(channels) < 1 or any(
        not isinstance(c, numbers.Integral) or c < 1 for c in channels
    ):
        raise ValueError(f"channels must list >= 1 positive integers, got {channels!r}")
    model = ResNet(tuple(channels), in_channels, outputs, inplace)
    return _seeded_float64(model, seed, bias_std)


def _seeded_float64(model: nn.Module, seed: int, bias_std: float = 0.1) -> nn.Module:
    """``model`` in float64 and eval mode with He-normal weights (std ``sqrt(2 / fan_in)``),
    normal biases of std ``bias_std`` and random BatchNorm statistics (running mean std 0.3,
    running variance uniform on [0.5, 2], scale 1 +- 0.2, shift std 0.1), drawn from ``seed`` in
    module order: the tracer's test networks, whose BatchNorm must not be the identity."""
    gen = torch.Generator().manual_seed(seed)
    model = model.to(torch.float64)
    f64 = torch.float64
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
                if m.bias is not None:
                    m.bias.normal_(0.0, bias_std, generator=gen)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(0.3 * torch.randn(n, generator=gen, dtype=f64))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen, dtype=f64))
                m.weight.copy_(1.0 + 0.2 * torch.randn(n, generator=gen, dtype=f64))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen, dtype=f64))
    return model.eval()
