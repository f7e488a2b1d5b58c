"""Closed-form models of the expected SMP through network blocks (see each function's docstring).

One private module per block: ``_conv`` (chapter 3), ``_relu`` (chapter 4), ``_maxpool``
(chapter 5) and ``_stack`` for stacks of blocks (chapter 6); every public name is re-exported here,
so ``smp.models.relu`` is the ReLU model function and ``smp.models.dense_stack`` the dense stack.
"""

from . import _conv, _maxpool, _relu, _stack
from ._conv import *  # noqa: F401,F403
from ._maxpool import *  # noqa: F401,F403
from ._relu import *  # noqa: F401,F403
from ._stack import *  # noqa: F401,F403

__all__ = [*_conv.__all__, *_relu.__all__, *_maxpool.__all__, *_stack.__all__]
