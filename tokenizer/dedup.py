"""Run-length deduplication of unit sequences: the form SLMs and the vocoder's duration model
read (units without repeats, and how many frames each lasted)."""

from __future__ import annotations

import numpy as np


def dedup(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse runs of equal units: (units, durations in frames)."""
    units = np.asarray(units)
    if len(units) == 0:
        return units, np.zeros(0, np.int32)
    starts = np.flatnonzero(np.concatenate([[True], units[1:] != units[:-1]]))
    return units[starts], np.diff(np.append(starts, len(units))).astype(np.int32)
