"""Canonical windows: the definition of streaming-safe tokenization.

A spec ``[left L | chunk C | right R]`` (milliseconds, multiples of 20 ms) cuts the 50 Hz frame
grid into chunks of C frames. Chunk ``k`` (frames ``kC .. kC+C-1``) is encoded from one window of
audio, frames ``kC-L .. kC+C+R-1`` (samples ``320(kC-L)`` to ``320(kC+C+R-1)+400``), and only its
C frames are kept. Padding at the edges: the first chunks' windows start at sample 0 (less left
context, never zeros in front), the last windows end at the end of the audio (less lookahead);
the encoder masks the padding of shorter windows, so a window's units depend only on its audio.

Because a window is complete as soon as its last sample has arrived, a stream knows exactly when
a chunk's units are final, and any split of the audio into client chunks gives the units of the
whole file tokenized offline with the same windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tokenizer.errors import InvalidInputError
from tokenizer.features import FRAME_MS, HOP, n_frames
from tokenizer.features import WINDOW as FIELD
from tokenizer.steps import State, StepJob, StepResult, StepSpec, tokenize_by_steps

Encode = Callable[[list[np.ndarray]], list[np.ndarray]]
"""Full-utterance units of each of several audio arrays (a backend's batch call)."""


@dataclass(frozen=True)
class Window:
    start: int
    """First sample of the window (absolute)."""
    end: int
    """One past the last sample (absolute)."""
    keep_from: int
    """Index, within the window's frames, of the chunk's first frame."""
    keep: int
    """Frames of the chunk."""
    first_frame: int
    """The chunk's first frame in the whole audio."""


@dataclass(frozen=True)
class WindowSpec:
    left_ms: int
    chunk_ms: int
    right_ms: int

    def __post_init__(self) -> None:
        values = (self.left_ms, self.chunk_ms, self.right_ms)
        if (
            any(not isinstance(v, int) or v < 0 or v % FRAME_MS for v in values)
            or not self.chunk_ms
        ):
            raise InvalidInputError(
                f"expected window left/chunk/right as non-negative multiples of {FRAME_MS} ms "
                f"with chunk > 0, found {values}"
            )

    @property
    def frames(self) -> tuple[int, int, int]:
        return self.left_ms // FRAME_MS, self.chunk_ms // FRAME_MS, self.right_ms // FRAME_MS

    @property
    def window_samples(self) -> int:
        left, chunk, right = self.frames
        return HOP * (left + chunk + right - 1) + FIELD

    @property
    def latency_ms(self) -> int:
        """Algorithmic latency: a frame waits for the rest of its chunk and the lookahead."""
        return self.chunk_ms + self.right_ms

    def full_end(self, k: int) -> int:
        """Sample at which chunk ``k``'s window is complete (absolute, exclusive)."""
        _, chunk, right = self.frames
        return HOP * (k * chunk + chunk + right - 1) + FIELD

    def final_at(self, frame: int) -> int:
        """Samples of a stream after which ``frame``'s unit is final (its window complete)."""
        return self.full_end(frame // self.frames[1])

    def window(self, k: int, total_samples: int | None) -> Window:
        """Chunk ``k``'s window; ``total_samples`` known (the end of the audio) or None
        (a stream: the window must be complete)."""
        left, chunk, _ = self.frames
        first = k * chunk
        start_frame = max(0, first - left)
        end = self.full_end(k)
        if total_samples is None:
            keep = chunk
        else:
            end = min(end, total_samples)
            keep = min(chunk, n_frames(total_samples) - first)
        return Window(HOP * start_frame, end, first - start_frame, keep, first)

    def plan(self, total_samples: int) -> list[Window]:
        """Every window of an audio of ``total_samples``."""
        _, chunk, _ = self.frames
        chunks = -(-n_frames(total_samples) // chunk)
        return [self.window(k, total_samples) for k in range(chunks)]

    def to_dict(self) -> dict[str, int]:
        return {"left_ms": self.left_ms, "chunk_ms": self.chunk_ms, "right_ms": self.right_ms}

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        """``"L,C,R"`` in milliseconds, e.g. ``"320,160,160"``."""
        try:
            left, chunk, right = (int(v) for v in text.split(","))
        except ValueError as e:
            raise InvalidInputError(
                f"expected a window as LEFT,CHUNK,RIGHT ms, found {text!r}"
            ) from e
        return cls(left, chunk, right)


def join_units(windows: Sequence[Window], units: Sequence[np.ndarray]) -> np.ndarray:
    """Consecutive windows' units -> their chunks' units, in order (int32)."""
    parts = [u[w.keep_from : w.keep_from + w.keep] for w, u in zip(windows, units, strict=True)]
    return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)


def cut(audio: np.ndarray, spec: WindowSpec) -> tuple[list[Window], list[np.ndarray]]:
    """The canonical windows of ``audio`` and their samples (none for audio shorter than one
    frame). Encode the samples with any backend, then ``join_units``."""
    plan = spec.plan(len(audio))
    return plan, [audio[w.start : w.end] for w in plan]


def tokenize_windowed(
    audios: Sequence[np.ndarray], spec: WindowSpec, encode: Encode, batch_size: int = 16
) -> list[np.ndarray]:
    """Units of each of several audios by canonical windows; windows of all of them share
    backend calls of ``batch_size`` windows (a window's units do not depend on its batch)."""
    cuts = [cut(a, spec) for a in audios]
    plans = [plan for plan, _ in cuts]
    pieces = [piece for _, audio_pieces in cuts for piece in audio_pieces]
    units: list[np.ndarray] = []
    for i in range(0, len(pieces), batch_size):
        units += encode(pieces[i : i + batch_size])
    out, at = [], 0
    for plan in plans:
        out.append(join_units(plan, units[at : at + len(plan)]))
        at += len(plan)
    return out


class Windowed:
    """``tokenize`` for backends with a full-utterance ``encode_batch``: by the model's
    incremental steps when it has them, else by its canonical windows when it has them, else
    (or with ``full_utterance``) in one pass."""

    window: WindowSpec | None
    steps: StepSpec | None = None

    def run_steps(self, jobs: list[StepJob]) -> list[StepResult]:
        """Steps of several streams in one call (models with ``steps``)."""
        raise NotImplementedError

    def initial_state(self) -> State:
        """The state of a new stream (models with ``steps``)."""
        raise NotImplementedError

    def encode_batch(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def encode_windows(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Units of window-sized audio (at most ``window.window_samples`` each)."""
        return self.encode_batch(audios)

    def tokenize(self, audio: np.ndarray, full_utterance: bool = False) -> np.ndarray:
        """Unit ids (int32), one per 20 ms frame of 16 kHz mono float audio."""
        return self.tokenize_batch([audio], full_utterance)[0]

    def tokenize_batch(
        self, audios: Sequence[np.ndarray], full_utterance: bool = False
    ) -> list[np.ndarray]:
        """``tokenize`` of several audios, their windows batched together."""
        if self.steps is not None and not full_utterance:
            return tokenize_by_steps(audios, self.steps, self.initial_state(), self.run_steps)
        if self.window is None or full_utterance:
            return [
                self.encode_batch([a])[0] if n_frames(len(a)) else np.zeros(0, np.int32)
                for a in audios
            ]
        return tokenize_windowed(audios, self.window, self.encode_windows)
