"""Summaries of measured samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`th percentile (0-100) of `values`, interpolated linearly between samples."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
