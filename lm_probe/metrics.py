"""Phone/unit co-occurrence metrics, with the definitions of fairseq's HuBERT
``measure_teacher_quality``:

- PNMI = I(phone; unit) / H(phone): how much of the phone identity the units carry;
- phone purity = sum over units of max over phones of p(phone, unit): accuracy of labelling each
  unit with its most frequent phone;
- cluster purity = sum over phones of max over units of p(phone, unit).

:func:`phone_losses` splits what PNMI misses by phone: ``1 - PNMI = H(phone | unit) / H(phone)``
and ``H(phone | unit) = sum over phones p of -sum over units u of p(p, u) log p(p | u)``, so each
phone's term says how much of the phone identity is lost on its frames.

Logs are natural; zero cells contribute nothing (fairseq adds 1e-8 inside the log instead,
which changes results by less than 1e-6). With one phone H(phone) = 0 and PNMI is undefined:
it is reported as NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tokenizer.errors import InvalidInputError


@dataclass(frozen=True)
class Contingency:
    counts: np.ndarray
    """``(n_phones, n_units)`` frame counts."""
    phones: list[str]
    units: list[int]


@dataclass(frozen=True)
class PhoneUnitScores:
    pnmi: float
    phone_purity: float
    cluster_purity: float
    mutual_info: float
    """I(phone; unit) in nats."""
    phone_entropy: float
    """H(phone) in nats."""
    unit_entropy: float
    """H(unit) in nats."""


def contingency(phones: Sequence[str], units: Sequence[int] | np.ndarray) -> Contingency:
    """Count (phone, unit) pairs over aligned frames."""
    if len(phones) != len(units):
        raise InvalidInputError(
            f"expected one phone label per unit frame, found {len(phones)} labels for "
            f"{len(units)} units"
        )
    if len(phones) == 0:
        raise InvalidInputError("expected at least one frame, found none")
    phone_names, p_idx = np.unique(
        np.asarray(phones, dtype=object).astype(str), return_inverse=True
    )
    unit_ids, u_idx = np.unique(np.asarray(units), return_inverse=True)
    counts = np.zeros((len(phone_names), len(unit_ids)), dtype=np.int64)
    np.add.at(counts, (p_idx, u_idx), 1)
    return Contingency(counts, phone_names.tolist(), unit_ids.tolist())


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def scores(table: Contingency | np.ndarray) -> PhoneUnitScores:
    """PNMI and purities of a ``(n_phones, n_units)`` count table."""
    counts = table.counts if isinstance(table, Contingency) else np.asarray(table)
    total = counts.sum()
    if total <= 0:
        raise InvalidInputError("expected a count table with at least one frame, found none")
    p_xy = counts / total
    p_x, p_y = p_xy.sum(1), p_xy.sum(0)
    nz = p_xy > 0
    mi = float((p_xy[nz] * np.log(p_xy[nz] / np.outer(p_x, p_y)[nz])).sum())
    h_x = _entropy(p_x)
    return PhoneUnitScores(
        pnmi=mi / h_x if h_x > 0 else float("nan"),
        phone_purity=float(p_xy.max(0).sum()),
        cluster_purity=float(p_xy.max(1).sum()),
        mutual_info=mi,
        phone_entropy=h_x,
        unit_entropy=_entropy(p_y),
    )


def phone_losses(table: Contingency) -> list[dict[str, Any]]:
    """Per phone: its share of the frames, its recall when each unit is read as its most
    frequent phone (phone purity's labelling), the three other phones its frames are most often
    read as (``read_as``: phone -> share of its frames), and ``lost``, its term of
    ``H(phone | unit) / H(phone)`` (the terms sum to ``1 - PNMI``). Empty when PNMI is undefined
    (one phone)."""
    h_x = scores(table).phone_entropy
    if h_x <= 0:
        return []
    total = table.counts.sum()
    p_xy = table.counts / total
    nz = p_xy > 0  # every unit column has a count, so p(unit) > 0 wherever p(phone, unit) is
    terms = np.zeros_like(p_xy)
    terms[nz] = -p_xy[nz] * np.log((p_xy / p_xy.sum(0, keepdims=True))[nz])
    n = len(table.phones)
    read = np.zeros((n, n), dtype=np.int64)  # read[i, j]: frames of phone i on units read as j
    np.add.at(read.T, p_xy.argmax(0), table.counts.T)
    out: list[dict[str, Any]] = []
    for i, phone in enumerate(table.phones):
        frames = table.counts[i].sum()
        others = [j for j in np.argsort(-read[i], kind="stable") if j != i and read[i, j]][:3]
        out.append(
            {
                "phone": phone,
                "share": float(frames / total),
                "recall": float(read[i, i] / frames),
                "read_as": {table.phones[j]: float(read[i, j] / frames) for j in others},
                "lost": float(terms[i].sum() / h_x),
            }
        )
    return out
