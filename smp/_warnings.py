"""The warnings of the SMP detector: valid input that cannot support an accurate answer.

Each says what to do (sample finer or coarser, use float64); all derive from :class:`SMPWarning`, so
one filter silences or records them all.  Re-exported by :mod:`smp.feature` and :mod:`smp`.
"""

from __future__ import annotations

__all__ = [
    "SMPWarning",
    "DenseKinksWarning",
    "RoundingLimitWarning",
    "DiscontinuityWarning",
    "CloseKinksWarning",
    "UnderSampledWarning",
]


class SMPWarning(UserWarning):
    """The data cannot support an accurate SMP; the subclass says why and what to do.

    Example
    -------
    Every detector warning is one, so one filter silences them all:

    >>> import warnings
    >>> import numpy as np
    >>> from smp import smp
    >>> noise = np.random.default_rng(0).normal(size=2001)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = smp(noise)
    >>> len(caught) > 0 and all(issubclass(w.category, SMPWarning) for w in caught)
    True
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")  # a warning that got through would raise
    ...     warnings.simplefilter("ignore", SMPWarning)
    ...     _ = smp(noise)
    """


class DenseKinksWarning(SMPWarning):
    """Kinks too dense for the grid, or noise: ``D`` between peaks is not smooth; SMP is underestimated.

    Example
    -------
    >>> import warnings
    >>> import numpy as np
    >>> from smp import smp
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = smp(np.random.default_rng(0).normal(size=2001))  # white noise
    >>> sorted({w.category.__name__ for w in caught})
    ['DenseKinksWarning']
    """


class RoundingLimitWarning(SMPWarning):
    """Kinks' peaks ``dt*|Ds|`` reach down to the rounding noise of ``D``: smaller ones are lost.

    Sample more coarsely (a peak grows like ``dt``) or compute the signal in float64.

    Example
    -------
    A kink of slope jump 0.002 on an offset of 1000, stored in float32 (ulp 6e-5):

    >>> import warnings
    >>> import numpy as np
    >>> from smp import smp
    >>> t = np.linspace(0.0, 1.0, 2001)
    >>> y = (1000.0 + 1e-3 * np.abs(t - 0.3)).astype(np.float32)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = smp(y, dt=t[1])
    >>> RoundingLimitWarning in {w.category for w in caught}
    True
    """


class DiscontinuityWarning(SMPWarning):
    """A step in ``y`` (or two opposite kinks within two samples): its SMP grows like ``1/dt``.

    Example
    -------
    >>> import warnings
    >>> import numpy as np
    >>> from smp import smp
    >>> t = np.linspace(0.0, 1.0, 2001)
    >>> y = t**2 + (t > 0.5)  # a parabola with a unit step at t = 0.5
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = smp(y, dt=t[1])
    >>> sorted({w.category.__name__ for w in caught})
    ['DiscontinuityWarning']
    """


class CloseKinksWarning(SMPWarning):
    """Kinks closer than the grid separates: opposite ones within a grid step cancel; sample finer.

    Example
    -------
    Sixty kinks placed at random on 2001 samples (one every 33 samples on average):

    >>> import warnings
    >>> import numpy as np
    >>> from smp import smp
    >>> t = np.linspace(0.0, 1.0, 2001)
    >>> kinks = np.random.default_rng(0).uniform(size=(60, 1))
    >>> y = np.abs(t - kinks).sum(axis=0)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = smp(y, dt=t[1])
    >>> sorted({w.category.__name__ for w in caught})
    ['CloseKinksWarning']
    """


class UnderSampledWarning(SMPWarning):
    """The smooth part changes within a few samples (or the signal is too short): sample finer.

    Example
    -------
    Three periods of a sine on 41 samples (under 14 samples per period):

    >>> import warnings
    >>> import numpy as np
    >>> from smp import smp
    >>> t = np.linspace(0.0, 1.0, 41)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = smp(np.sin(6 * np.pi * t), dt=t[1])
    >>> sorted({w.category.__name__ for w in caught})
    ['UnderSampledWarning']
    """
