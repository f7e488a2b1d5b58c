"""smp: the sum of the magnitude of peaks (SMP), a measure of the nonsmoothness of neural networks.

Companion package of the book "smp-book", which reproduces and extends
Liu, Wong & Dai, "Modeling the Nonsmoothness of Modern Neural Networks" (arXiv:2103.14731).
The definitions and models here are the book's own; the paper is credited for the question.

Modules: ``feature`` (SMP and peaks), ``signals`` (paths and synthetic inputs), ``models``
(closed forms), ``measure`` (Monte-Carlo runs of torch blocks along paths), ``networks`` (small
torch models), ``plotting`` (the book's figure style).
"""

from .feature import (
    CloseKinksWarning,
    DenseKinksWarning,
    Diagnosis,
    DiscontinuityWarning,
    Peaks,
    RoundingLimitWarning,
    SMPWarning,
    UnderSampledWarning,
    detection_limit,
    diagnose,
    peaks,
    smp,
)

__all__ = [
    "smp",
    "peaks",
    "diagnose",
    "detection_limit",
    "Peaks",
    "Diagnosis",
    "SMPWarning",
    "DenseKinksWarning",
    "RoundingLimitWarning",
    "CloseKinksWarning",
    "DiscontinuityWarning",
    "UnderSampledWarning",
    "__version__",
]
__version__ = "0.1.0"
