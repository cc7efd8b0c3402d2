"""Training data for the vocoder: a corpus split's audio (int16) and the units model's units,
cached once in ``RUN/cache`` as flat arrays, and batches of random unit-aligned segments
(``segment_frames`` units and their ``320 x segment_frames`` samples) seeded by (seed, step)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import load_corpus
from tokenizer.dedup import dedup
from tokenizer.features import HOP
from tokenizer.protocol import Tokenizer


@dataclass
class UnitAudio:
    audio: np.ndarray
    """All utterances' audio, int16, concatenated."""
    units: np.ndarray
    """All utterances' units, int32, concatenated."""
    speaker: np.ndarray
    """Speaker index per utterance."""
    audio_start: np.ndarray
    unit_start: np.ndarray
    """Offsets of each utterance in ``audio`` / ``units`` (one more entry than utterances)."""

    @property
    def n_utterances(self) -> int:
        return len(self.speaker)

    def utterance_units(self, i: int) -> np.ndarray:
        return self.units[self.unit_start[i] : self.unit_start[i + 1]]


def build_cache(
    corpus: Path,
    split: str,
    tok: Tokenizer,
    speakers: list[str],
    full_utterance: bool,
    cache: Path,
) -> UnitAudio:
    """Tokenize ``split`` once (or load the cache made for the same model and split)."""
    key = {"fingerprint": tok.fingerprint, "split": split, "full_utterance": full_utterance}
    meta = cache / "cache.json"
    if meta.is_file() and json.loads(meta.read_text()) == key:
        arrays = np.load(cache / "cache.npz")
        return UnitAudio(**{k: arrays[k] for k in arrays.files})
    root, utts = load_corpus(corpus, split)
    index = {s: i for i, s in enumerate(speakers)}
    audio, units, spk = [], [], []
    for u in tqdm(utts, desc="vocoder units", unit="utt", file=sys.stderr):
        x = decode_audio(u.audio_path(root))
        audio.append(np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16))
        units.append(tok.tokenize(x, full_utterance=full_utterance).astype(np.int32))
        spk.append(index[u.speaker or ""])
    data = UnitAudio(
        audio=np.concatenate(audio),
        units=np.concatenate(units),
        speaker=np.array(spk, np.int64),
        audio_start=np.cumsum([0] + [len(a) for a in audio]),
        unit_start=np.cumsum([0] + [len(u) for u in units]),
    )
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cache / "cache.npz", **data.__dict__)
    meta.write_text(json.dumps(key))
    return data


def corpus_speakers(corpus: Path, split: str) -> list[str]:
    _, utts = load_corpus(corpus, split)
    return sorted({u.speaker or "" for u in utts})


def segment_batch(
    data: UnitAudio, batch_size: int, frames: int, seed: int, step: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(units [B, frames], speaker [B], audio [B, 320 frames]) of random segments; utterances
    shorter than ``frames`` units are skipped."""
    rng = np.random.default_rng([seed, step])
    lengths = np.diff(data.unit_start)
    eligible = np.flatnonzero(lengths >= frames)
    picks = rng.choice(eligible, size=batch_size)
    units, audio = [], []
    for i in picks:
        first = int(rng.integers(0, lengths[i] - frames + 1))
        u0, a0 = data.unit_start[i] + first, data.audio_start[i] + first * HOP
        units.append(data.units[u0 : u0 + frames])
        seg = data.audio[a0 : a0 + frames * HOP].astype(np.float32) / 32767
        audio.append(np.pad(seg, (0, frames * HOP - len(seg))))
    return (
        torch.from_numpy(np.stack(units).astype(np.int64)),
        torch.from_numpy(data.speaker[picks]),
        torch.from_numpy(np.stack(audio)),
    )


def duration_batch(
    data: UnitAudio, batch_size: int, seed: int, step: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Whole utterances' deduplicated units, durations (frames), speakers and a mask, padded."""
    rng = np.random.default_rng([seed, step, 1])
    picks = rng.choice(data.n_utterances, size=batch_size)
    pairs = [dedup(data.utterance_units(int(i))) for i in picks]
    n = max(len(u) for u, _ in pairs)
    units = np.zeros((batch_size, n), np.int64)
    durations = np.ones((batch_size, n), np.float32)
    mask = np.zeros((batch_size, n), bool)
    for b, (u, d) in enumerate(pairs):
        units[b, : len(u)], durations[b, : len(u)], mask[b, : len(u)] = u, d, True
    return (
        torch.from_numpy(units),
        torch.from_numpy(data.speaker[picks]),
        torch.from_numpy(durations),
        torch.from_numpy(mask),
    )
