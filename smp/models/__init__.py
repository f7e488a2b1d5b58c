"""Closed-form models of the expected SMP through network blocks (see each function's docstring)."""

from .blocks import conv, maxpool, relu

__all__ = ["conv", "relu", "maxpool"]
