"""Closed-form models of the expected SMP through network blocks (see each function's docstring).

One module per block: ``conv``, ``relu``, ``maxpool``; ``stack`` for stacks of blocks.
"""

from .conv import ConvKinks, conv, conv_kinks, conv_shared
from .maxpool import maxpool, maxpool_switch_integral
from .relu import relu, relu_births, relu_pass_through, relu_sinusoid  # chapter 4

__all__ = ["conv", "relu", "maxpool", "maxpool_switch_integral"]
from .stack import conv_stack, dense_growth, dense_stack  # noqa: E402  (chapter 6)
__all__ += ["dense_stack", "dense_growth", "conv_stack"]
__all__ += ["relu_births", "relu_pass_through", "relu_sinusoid"]  # chapter 4
from .maxpool import maxpool_correlated, maxpool_identity, relu_maxpool, relu_maxpool_parts, relu_maxpool_window  # noqa: E402,F401  (chapter 5)
