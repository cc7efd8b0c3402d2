"""How long acoustic pieces are: BPE over deduplicated units (``tokenizer.pieces``) trained on
one split, applied to another (as in R-Spin / DC-Spin)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tokenizer.pieces import processor, train_pieces, units_text


def piece_stats(
    train: Sequence[np.ndarray], test: Sequence[np.ndarray], vocab_size: int, frame_rate: float
) -> dict[str, float]:
    """Train BPE with ``vocab_size`` pieces on ``train``; units per piece and pieces per second
    on ``test``."""
    sp = processor(train_pieces(train, vocab_size))
    texts = [units_text(u) for u in test if len(u)]
    n_pieces = sum(len(sp.encode(t)) for t in texts)
    n_units = sum(len(t) for t in texts)
    seconds = sum(len(u) for u in test) / frame_rate
    return {
        "vocab_size": vocab_size,
        "units_per_piece": n_units / n_pieces if n_pieces else 0.0,
        "pieces_per_s": n_pieces / seconds if seconds else 0.0,
    }
