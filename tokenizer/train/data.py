"""Training audio in memory and seeded, frame-aligned crop batches.

Batch ``step`` depends only on ``(seed, step)``, not on what came before, so a run resumed
from a checkpoint sees exactly the batches an uninterrupted run would have seen. Crops start on
the 320-sample frame grid, so frame ``i`` of a crop is frame ``offset + i`` of its utterance
and per-frame targets of the whole utterance slice straight onto it.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import Utterance
from tokenizer.errors import CorpusError
from tokenizer.windows import FIELD, HOP, n_frames


@dataclass(frozen=True)
class Batch:
    waveforms: torch.Tensor
    """``[B, T]`` float32, zero-padded at the end."""
    lengths: torch.Tensor
    """``[B]`` valid samples."""
    items: list[int]
    """Which utterances (indices into the audio set)."""
    frame_offsets: list[int]
    """First frame of each crop within its utterance."""


def utterance_digest(utts: Sequence[Utterance]) -> str:
    """sha256 of the utterance ids in order: a cache key for per-utterance data."""
    return hashlib.sha256("|".join(u.id for u in utts).encode()).hexdigest()


def load_audio(root: Path, utts: Sequence[Utterance], desc: str = "audio") -> list[np.ndarray]:
    """Every utterance as int16 (half the memory of float32), in manifest order."""
    out = []
    for u in tqdm(utts, desc=desc, unit="utt", file=sys.stderr, leave=False):
        x = decode_audio(u.audio_path(root))
        out.append(np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16))
    if not out:
        raise CorpusError(f"expected training utterances under {root}, found none")
    return out


def crop_batch(
    audio: Sequence[np.ndarray], seed: int, step: int, batch_size: int, max_samples: int
) -> Batch:
    """``batch_size`` utterances drawn with replacement, each cropped to at most
    ``max_samples`` at a random frame-aligned offset."""
    rng = np.random.default_rng([seed, step])
    items = [int(i) for i in rng.integers(0, len(audio), batch_size)]
    max_frames = n_frames(max_samples)
    crops, offsets = [], []
    for i in items:
        total = n_frames(len(audio[i]))
        offset = int(rng.integers(0, total - max_frames + 1)) if total > max_frames else 0
        frames = min(total, max_frames)
        start = offset * HOP
        crops.append(audio[i][start : start + (frames - 1) * HOP + FIELD])
        offsets.append(offset)
    lengths = torch.tensor([len(c) for c in crops])
    waves = torch.zeros(len(crops), int(lengths.max()))
    for row, c in enumerate(crops):
        waves[row, : len(c)] = torch.from_numpy(c.astype(np.float32) / 32767.0)
    return Batch(waves, lengths, items, offsets)
