"""The logistic function and its inverse, overflow-safe, in pure Python (scan time needs no numpy)."""

from __future__ import annotations

import math

EPS = 1e-6


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def logit(p: float) -> float:
    """log(p / (1 - p)), with p clipped to [EPS, 1 - EPS] so 0 and 1 stay finite."""
    p = min(1 - EPS, max(EPS, p))
    return math.log(p / (1 - p))
