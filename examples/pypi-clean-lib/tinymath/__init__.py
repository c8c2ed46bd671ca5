"""Small numeric helpers."""

import math
import os

__all__ = ["clamp", "mean", "load_numbers"]


def clamp(value, low, high):
    return max(low, min(high, value))


def mean(values):
    values = list(values)
    return math.fsum(values) / len(values) if values else 0.0


def load_numbers(path):
    """Read one number per line; `path` may use ~."""
    with open(os.path.expanduser(path), encoding="utf-8") as fh:
        return [float(line) for line in fh if line.strip()]
