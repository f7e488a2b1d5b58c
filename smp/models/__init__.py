"""Closed-form models of the expected SMP through network blocks (see each function's docstring).

One private module per block: ``_conv`` (chapter 3), ``_relu`` (chapter 4), ``_maxpool``
(chapter 5), ``_stack`` and ``_conv_stack`` for stacks of blocks (chapter 6), ``_conditional``
for blocks fed with measured statistics (chapter 7) and ``_refined`` for the refined models of
chapter 7's landmark CNN (max pooling by Kac-Rice with measured ingredients, linear maps fed by
events); every public name is re-exported here, so ``smp.models.relu`` is the ReLU model
function and ``smp.models.dense_stack`` the dense stack.
"""

from . import _conditional, _conv, _conv_stack, _maxpool, _refined, _relu, _stack
from ._conditional import *  # noqa: F401,F403
from ._conv import *  # noqa: F401,F403
from ._conv_stack import *  # noqa: F401,F403
from ._maxpool import *  # noqa: F401,F403
from ._refined import *  # noqa: F401,F403
from ._relu import *  # noqa: F401,F403
from ._stack import *  # noqa: F401,F403

__all__ = [
    *_conv.__all__,
    *_relu.__all__,
    *_maxpool.__all__,
    *_stack.__all__,
    *_conv_stack.__all__,
    *_conditional.__all__,
    *_refined.__all__,
]
