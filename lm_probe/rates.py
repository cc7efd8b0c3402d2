"""Bitrates of a unit stream: nominal (frame rate x log2 K) and entropy-based."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tokenizer.dedup import dedup


def _entropy_bits(seqs: Sequence[np.ndarray]) -> float:
    values = np.concatenate(seqs) if seqs else np.zeros(0, np.int32)
    if len(values) == 0:
        return 0.0
    p = np.bincount(values - values.min()) / len(values)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def bitrates(units: Sequence[np.ndarray], K: int, frame_rate: float) -> dict[str, float]:
    """``nominal_bps`` = frame_rate x log2 K; ``entropy_bps`` = unigram entropy of frames x frame
    rate; ``dedup_entropy_bps`` = unigram entropy of deduplicated units x their rate per second."""
    seconds = sum(len(u) for u in units) / frame_rate
    dd = [dedup(u)[0] for u in units]
    n_dd = sum(len(d) for d in dd)
    return {
        "nominal_bps": frame_rate * math.log2(K),
        "entropy_bps": _entropy_bits(units) * frame_rate,
        "dedup_units_per_s": n_dd / seconds if seconds else 0.0,
        "dedup_entropy_bps": _entropy_bits(dd) * n_dd / seconds if seconds else 0.0,
    }
