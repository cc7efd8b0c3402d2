"""Training audio (held in memory, or read from disk crop by crop), seeded frame-aligned crop
batches, and worker processes that prepare the next batches while a step runs.

Batch ``step`` depends only on ``(seed, step)``, not on what came before, so a run resumed
from a checkpoint sees exactly the batches an uninterrupted run would have seen. Crops start on
the 320-sample frame grid, so frame ``i`` of a crop is frame ``offset + i`` of its utterance
and per-frame targets of the whole utterance slice straight onto it. Reading crops from disk
gives the same samples as holding the corpus in memory (``tests/test_train.py``), so a
1,000-hour corpus trains like a small one.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.corpus.manifest import Utterance
from tokenizer.errors import AudioError, CorpusError, InvalidInputError
from tokenizer.protocol import Tokenizer
from tokenizer.windows import FIELD, HOP, n_frames

T = TypeVar("T")


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

    def frame_labels(self, labels: Sequence[np.ndarray]) -> tuple[list[int], torch.Tensor]:
        """Frames of each crop, and its slice of its utterance's frame ``labels`` as
        ``[B, F]`` int64 (-100 past each crop's end)."""
        frames = [n_frames(int(n)) for n in self.lengths]
        target = torch.full((len(frames), max(frames)), -100, dtype=torch.long)
        for row, (i, off, f) in enumerate(zip(self.items, self.frame_offsets, frames, strict=True)):
            target[row, :f] = torch.from_numpy(labels[i][off : off + f])
        return frames, target


def utterance_digest(utts: Sequence[Utterance]) -> str:
    """sha256 of the utterance ids in order: a cache key for per-utterance data."""
    return hashlib.sha256("|".join(u.id for u in utts).encode()).hexdigest()


def _int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


class TrainAudio(Sequence[np.ndarray]):
    """The training utterances as int16 (half the memory of float32), in manifest order: all
    decoded into memory, or (``in_memory=False``) only their lengths, each crop read from disk
    when asked (16 kHz mono files by seeking; others decoded whole and cut)."""

    def __init__(self, root: Path, utts: Sequence[Utterance], in_memory: bool = True) -> None:
        if not utts:
            raise CorpusError(f"expected training utterances under {root}, found none")
        self.paths = [u.audio_path(root) for u in utts]
        self._memory: list[np.ndarray] | None = None
        if in_memory:
            bar = tqdm(self.paths, desc="audio", unit="utt", file=sys.stderr, leave=False)
            self._memory = [_int16(decode_audio(p)) for p in bar]
            self.lengths = [len(a) for a in self._memory]
        else:
            bar = tqdm(self.paths, desc="audio lengths", unit="utt", file=sys.stderr, leave=False)
            self.lengths = [self._length(p) for p in bar]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        """Utterance ``i``, whole."""
        return self._memory[i] if self._memory is not None else _int16(decode_audio(self.paths[i]))

    def crop(self, i: int, start: int, n: int) -> np.ndarray:
        """Samples ``start .. start + n`` of utterance ``i``."""
        if self._memory is not None:
            return self._memory[i][start : start + n]
        import soundfile as sf

        try:
            with sf.SoundFile(self.paths[i]) as f:
                if f.samplerate != SAMPLE_RATE or f.channels != 1:
                    out = self[i][start : start + n]
                else:
                    f.seek(start)
                    out = _int16(f.read(n, dtype="float32"))
        except (sf.LibsndfileError, OSError) as e:
            raise AudioError(f"expected readable audio at {self.paths[i]}, found {e}") from e
        if len(out) != n:
            raise AudioError(
                f"expected samples {start}..{start + n} of {self.paths[i]}, found {len(out)} "
                f"(the file changed or is truncated)"
            )
        return out

    @staticmethod
    def _length(path: Path) -> int:
        import soundfile as sf

        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, OSError):
            return len(decode_audio(path))  # raises the decoder's clear AudioError
        if info.samplerate == SAMPLE_RATE and info.channels == 1:
            return int(info.frames)
        return len(decode_audio(path))  # resampled length: exactly what decoding gives


def crop(audio: Sequence[np.ndarray], i: int, start: int, n: int) -> np.ndarray:
    """Samples ``start .. start + n`` of utterance ``i`` (read from disk by ``TrainAudio``)."""
    if isinstance(audio, TrainAudio):
        return audio.crop(i, start, n)
    return audio[i][start : start + n]


def engine_weights(utts: Sequence[Utterance]) -> np.ndarray:
    """Drawing probabilities that give every synthesis engine of ``utts`` (the manifest's
    ``engine``; utterances without one are a group of their own) the same share, each
    engine's utterances alike."""
    engines = [u.engine or "" for u in utts]
    counts = Counter(engines)
    weights = np.array([1.0 / (len(counts) * counts[e]) for e in engines])
    return weights / weights.sum()


def draw_utterances(
    rng: np.random.Generator, n: int, size: int, weights: np.ndarray | None
) -> np.ndarray:
    """``size`` of ``n`` utterances drawn with replacement, each with its probability in
    ``weights`` (``TrainConfig.draw_weights``; uniform without)."""
    return rng.integers(0, n, size) if weights is None else rng.choice(n, size, p=weights)


def crop_batch(
    audio: Sequence[np.ndarray],
    seed: int,
    step: int,
    batch_size: int,
    max_samples: int,
    rows: Container[int] | None = None,
    weights: np.ndarray | None = None,
) -> Batch:
    """``batch_size`` utterances drawn with replacement (each with its probability in
    ``weights``; uniform without), each cropped to at most ``max_samples`` at a random
    frame-aligned offset (``TrainAudio`` reads only the crops). With ``rows``, only those rows'
    audio is read (the others are silence of the right length: a data-parallel process needs
    the whole batch's shape but only its own rows)."""
    rng = np.random.default_rng([seed, step])
    items = [int(i) for i in draw_utterances(rng, len(audio), batch_size, weights)]
    max_frames = n_frames(max_samples)
    lengths = audio.lengths if isinstance(audio, TrainAudio) else [len(a) for a in audio]
    crops, offsets = [], []
    for row, i in enumerate(items):
        total = n_frames(lengths[i])
        offset = int(rng.integers(0, total - max_frames + 1)) if total > max_frames else 0
        frames = min(total, max_frames)
        start, n = offset * HOP, (frames - 1) * HOP + FIELD
        skip = rows is not None and row not in rows
        crops.append(np.zeros(n, np.int16) if skip else crop(audio, i, start, n))
        offsets.append(offset)
    sizes = torch.tensor([len(c) for c in crops])
    waves = torch.zeros(len(crops), int(sizes.max()))
    for row, c in enumerate(crops):
        waves[row, : len(c)] = torch.from_numpy(c.astype(np.float32) / 32767.0)
    return Batch(waves, sizes, items, offsets)


class Prefetched(Generic[T]):
    """``make(step)`` for steps ``start, start + 1, ...`` computed ahead by ``workers`` worker
    processes (0: when asked, in this process). ``get(step)`` must be called in step order."""

    def __init__(self, make: Callable[[int], T], start: int, stop: int, workers: int) -> None:
        self.next = start
        if workers == 0:
            self._make: Callable[[int], T] | None = make
            return
        self._make = None
        loader = torch.utils.data.DataLoader(
            _Steps(make, start, stop),
            batch_size=None,
            num_workers=workers,
            multiprocessing_context="fork",
            prefetch_factor=2,
        )
        self._it = iter(loader)

    def get(self, step: int) -> T:
        if step != self.next:
            raise RuntimeError(f"expected step {self.next} from the batch queue, found {step}")
        self.next += 1
        return self._make(step) if self._make is not None else next(self._it)


class _Steps(torch.utils.data.Dataset[T]):
    def __init__(self, make: Callable[[int], T], start: int, stop: int) -> None:
        self.make, self.start, self.stop = make, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, index: int) -> T:
        return self.make(self.start + index)


def compute_targets(
    targets: Tokenizer, utts: list[Utterance], audio: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Full-utterance units of ``targets`` for every utterance: per-frame training targets on
    the 50 Hz encoder grid (HuBERT's targets, Spin's pseudo-labels)."""
    out = []
    for u, a in tqdm(
        list(zip(utts, audio, strict=True)),
        desc="targets",
        unit="utt",
        file=sys.stderr,
        leave=False,
    ):
        units = targets.tokenize(a.astype(np.float32) / 32767.0, full_utterance=True)
        if len(units) != n_frames(len(a)):
            raise InvalidInputError(
                f"expected target units on the 50 Hz encoder grid ({n_frames(len(a))} frames "
                f"for {u.id}), found {len(units)} from {targets.name}"
            )
        out.append(units.astype(np.int64))
    return out
