"""Acoustic pieces: SentencePiece BPE over deduplicated units (as in R-Spin / DC-Spin).

Unit ``u`` is written as the character ``chr(0x4E00 + u)`` so that every unit is one symbol;
the model is trained in memory with full character coverage.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from tokenizer.dedup import dedup

_BASE = 0x4E00


def _text(units: np.ndarray) -> str:
    return "".join(chr(_BASE + int(u)) for u in dedup(units)[0])


def piece_stats(
    train: Sequence[np.ndarray], test: Sequence[np.ndarray], vocab_size: int, frame_rate: float
) -> dict[str, float]:
    """Train BPE with ``vocab_size`` pieces on ``train``; units per piece and pieces per second
    on ``test``."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([_text(u) for u in train if len(u)]),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        hard_vocab_limit=False,
        add_dummy_prefix=False,
        max_sentence_length=100_000,
        minloglevel=2,
        num_threads=1,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    texts = [_text(u) for u in test if len(u)]
    n_pieces = sum(len(sp.encode(t)) for t in texts)
    n_units = sum(len(t) for t in texts)
    seconds = sum(len(u) for u in test) / frame_rate
    return {
        "vocab_size": vocab_size,
        "units_per_piece": n_units / n_pieces if n_pieces else 0.0,
        "pieces_per_s": n_pieces / seconds if seconds else 0.0,
    }
