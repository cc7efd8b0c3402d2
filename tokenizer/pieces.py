"""Acoustic pieces: SentencePiece BPE over deduplicated units (R-Spin's auxiliary targets; the
probe's units-per-piece rows).

Unit ``u`` is written as the character ``chr(0x4E00 + u)`` so that every unit is one symbol;
models are trained in memory with full character coverage and one thread, so the same units
give the same model. :func:`frame_pieces` gives every frame the id of the piece its run of units
falls in: the per-frame targets R-Spin predicts.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from tokenizer.dedup import dedup

_BASE = 0x4E00


def units_text(units: np.ndarray) -> str:
    """Deduplicated ``units`` as one symbol each."""
    return "".join(chr(_BASE + int(u)) for u in dedup(units)[0])


def train_pieces(units: Sequence[np.ndarray], vocab_size: int) -> bytes:
    """A BPE model (serialized) of about ``vocab_size`` pieces over the deduplicated ``units``
    (fewer when the text has fewer merges to offer)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([units_text(u) for u in units if len(u)]),
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
    return model.getvalue()


def processor(model: bytes) -> Any:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=model)


def frame_pieces(sp: Any, units: np.ndarray) -> np.ndarray:
    """The id of the piece each frame of ``units`` belongs to (``[F]`` int64; a piece covers
    the frames of the unit runs it spells)."""
    if not len(units):
        return np.zeros(0, dtype=np.int64)
    _, counts = dedup(units)
    text = units_text(units)
    ids = sp.encode(text)
    spans = [len(p) for p in sp.encode(text, out_type=str)]  # units per piece (unknowns too)
    frames_per_piece = np.add.reduceat(np.asarray(counts), np.cumsum([0, *spans[:-1]]))
    return np.repeat(np.asarray(ids, dtype=np.int64), frames_per_piece)
