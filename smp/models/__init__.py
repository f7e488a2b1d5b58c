"""Closed-form models of the expected SMP through network blocks (see each function's docstring).

One module per block: ``conv`` (chapter 3), ``relu`` (chapter 4), ``maxpool`` (chapter 5) and
``stack`` for stacks of blocks (chapter 6).  Every public name of the four is re-exported here.
"""

from . import conv as _conv
from . import maxpool as _maxpool
from . import relu as _relu
from . import stack as _stack
from .conv import *  # noqa: F401,F403
from .maxpool import *  # noqa: F401,F403
from .relu import *  # noqa: F401,F403
from .stack import *  # noqa: F401,F403

__all__ = [*_conv.__all__, *_relu.__all__, *_maxpool.__all__, *_stack.__all__]
from ._conditional import *  # noqa: F401,F403
