"""Paths and synthetic signals: Gaussian processes, great circles, line segments, known kinks.

All generators take an explicit ``seed`` and return float64 numpy arrays, with the sample (path)
axis first for input-space paths (so they can be fed to torch as a batch) and last for 1-D signals.

Two private modules, re-exported here: ``_paths`` (smooth paths through input space and
Gaussian processes) and ``_kinks`` (signals with known kinks, the ground truth for the estimator).
"""

from . import _kinks, _paths
from ._kinks import *  # noqa: F401,F403
from ._paths import *  # noqa: F401,F403

__all__ = [*_paths.__all__, *_kinks.__all__]
