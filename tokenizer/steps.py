"""Incremental streaming: encode each frame once, carrying a small state from step to step.

A bounded-context encoder (``EncoderConfig.context_frames``) can run in steps of ``S`` new frames
instead of overlapping windows. Each step takes the samples of its ``S`` new frames and a state
(the positional conv's last input frames, each layer's last ``attention_left +
attention_right`` keys and values and its last ``attention_right`` inputs) and gives the units
of ``S`` frames that lag the new ones by the model's lookahead (``lag`` frames), and the next
state. Steps sit on a fixed grid of the audio (step ``k``'s new frames are ``kS .. kS+S-1``), so
the steps and their inputs do not depend on how a client cut its chunks; the offline path runs
the very same steps (``tokenize_by_steps``), which makes streamed and offline units identical by
construction, and the same as the full-utterance units up to float rounding (the step graph
computes the same function with other shapes).

Each step row also carries ``begin`` and ``end``: keys before ``begin`` or at/after ``end`` are
masked, as the full-utterance encoder masks what lies outside the audio. A fresh stream has
``begin = 0``; the end is unknown (``NO_END``) until the client finishes. A stream resumed after
``e`` final frames restarts ``context`` frames earlier (rounded down to the step grid) with a
zero state and ``begin`` there: every frame from ``e`` on then sees exactly the values of the
uncut stream (each step's rows are computed independently of the other rows), so its units are
the uncut stream's.

This module is numpy only; the step graph is ``step.onnx`` (``tokenizer.encoder.steps`` builds
it in torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tokenizer.audio import stream_chunk
from tokenizer.encoder.config import EncoderConfig
from tokenizer.errors import InvalidInputError
from tokenizer.features import FRAME_MS, HOP, n_frames
from tokenizer.features import WINDOW as FIELD

NO_END = np.iinfo(np.int64).max // 2
"""``end`` of a stream whose length is not known yet."""

State = dict[str, np.ndarray]
"""One stream's state: name -> array (no batch axis)."""


@dataclass(frozen=True)
class StepSpec:
    frames: int
    """New frames per step (S)."""
    lag: int
    """Frames by which a step's units lag its new frames (the model's lookahead)."""
    context: int
    """Frames before its own that a unit depends on (how far a resumed stream starts back)."""

    @property
    def step_ms(self) -> int:
        return self.frames * FRAME_MS

    @property
    def samples(self) -> int:
        """Samples a step reads: its new frames' receptive fields."""
        return HOP * (self.frames - 1) + FIELD

    @property
    def latency_ms(self) -> int:
        """Algorithmic latency: a frame waits for the rest of its step and the lookahead."""
        return (self.frames + self.lag) * FRAME_MS

    def final_at(self, frame: int) -> int:
        """Samples of a stream after which ``frame``'s unit is final (its step complete)."""
        step = (frame + self.lag) // self.frames
        return HOP * (step * self.frames) + self.samples

    def resume_start(self, frame: int) -> int:
        """First frame (on the step grid) of a stream resumed after ``frame`` final frames."""
        return max(0, (frame - self.context) // self.frames) * self.frames


def step_spec(encoder: EncoderConfig, layer: int | None, step_ms: int) -> StepSpec:
    """The steps of a bounded-context encoder read at ``layer`` (None: the last)."""
    if encoder.context_frames is None:
        raise InvalidInputError(
            "expected a bounded-context encoder for incremental steps (layer_norm conv "
            "features and attention_left/right set), found one that sees the whole utterance"
        )
    assert encoder.attention_left is not None and encoder.attention_right is not None
    if step_ms <= 0 or step_ms % FRAME_MS:
        raise InvalidInputError(
            f"expected a step as a positive multiple of {FRAME_MS} ms, found {step_ms}"
        )
    frames = step_ms // FRAME_MS
    if frames < encoder.attention_right:
        raise InvalidInputError(
            f"expected a step of at least attention_right = {encoder.attention_right} frames, "
            f"found {frames}"
        )
    layers = encoder.num_layers if layer is None else layer
    kernel = encoder.pos_conv_kernel
    pos_right = kernel - 1 - kernel // 2
    return StepSpec(
        frames=frames,
        lag=pos_right + layers * encoder.attention_right,
        context=kernel // 2 + layers * encoder.attention_left,
    )


@dataclass(frozen=True)
class StepJob:
    audio: np.ndarray
    """``spec.samples`` float32 samples (zeros past the end of the audio)."""
    start: int
    """The step's first new frame."""
    begin: int
    end: int
    state: State


StepResult = tuple[np.ndarray, State]
"""A step's ``S`` units (int) and the next state."""

RunSteps = Callable[[list[StepJob]], list[StepResult]]
"""A backend's batch call: steps of several streams at once (at most one per stream)."""


@dataclass(frozen=True)
class Final:
    units: np.ndarray
    """Newly final units (int32)."""
    offset: int
    """Frame index of ``units[0]`` in the stream."""


class StepSession:
    """One stream run by steps: chunks of any size in (``push``), steps out (``next_job``),
    their results back in order (``advance``), newly final units from ``take``."""

    def __init__(self, spec: StepSpec, initial: State, max_samples: int | None = None) -> None:
        self.spec, self.initial, self.max_samples = spec, initial, max_samples
        self.state = {k: v.copy() for k, v in initial.items()}
        self._buffer = np.zeros(0, np.float32)
        self._base = 0  # absolute index of _buffer[0]
        self.received = 0
        self.step = 0
        """Index of the next step."""
        self.begin = 0
        self.emitted = 0
        """Frames final so far (units before it were given or, when resumed, were the uncut
        stream's)."""
        self.end: int | None = None
        self._units: list[np.ndarray] = []
        self._offset = 0
        self._running = False

    def push(self, audio: np.ndarray) -> None:
        """Append 16 kHz mono float audio."""
        if self.end is not None:
            raise InvalidInputError("expected audio before finish(), found audio after it")
        audio = stream_chunk(audio, self.received, self.max_samples)
        self._buffer = np.concatenate([self._buffer, audio])
        self.received += len(audio)

    def finish(self) -> None:
        """No more audio: the last steps run with the end known."""
        if self.end is None:
            self.end = n_frames(self.received)

    def resume(self, frame: int, audio_offset: int) -> None:
        """Continue, in this new session, a stream cut after ``frame`` final frames; the audio
        pushed from now on starts at sample ``audio_offset`` of that stream, at most the
        ``resume_sample`` its last answer gave. Units are those of the uncut stream."""
        if self.received or self.end is not None:
            raise InvalidInputError("expected to resume a new session, found one with audio")
        if frame < 0:
            raise InvalidInputError(f"expected resume_frame >= 0, found {frame}")
        start = self.spec.resume_start(frame)
        if not 0 <= audio_offset <= HOP * start:
            raise InvalidInputError(
                f"expected audio_offset from 0 to {HOP * start} (the resume_sample of the answer "
                f"that ended at frame {frame}), found {audio_offset}"
            )
        self._base = self.received = audio_offset
        self.step, self.begin = start // self.spec.frames, start
        self.emitted = self._offset = frame

    @property
    def resume_sample(self) -> int:
        """The first sample a stream resumed after the units final so far needs again."""
        return HOP * self.spec.resume_start(self.emitted)

    @property
    def done(self) -> bool:
        """Every frame of a finished stream is final."""
        return self.end is not None and self.emitted >= self.end

    def next_job(self) -> StepJob | None:
        """The next step if its audio is here (or the stream is finished) and the previous
        step's result came back; None otherwise."""
        spec = self.spec
        if self._running or self.done:
            return None
        first = self.step * spec.frames
        lo = HOP * first
        if self.end is None and lo + spec.samples > self.received:
            return None
        audio = np.zeros(spec.samples, np.float32)
        have = self._buffer[lo - self._base : lo - self._base + spec.samples]
        audio[: len(have)] = have
        self._running = True
        end = NO_END if self.end is None else self.end
        return StepJob(audio, first, self.begin, end, self.state)

    def advance(self, result: StepResult) -> None:
        """The result of the job ``next_job`` gave."""
        units, state = result
        spec = self.spec
        self._running = False
        self.state = state
        first = self.step * spec.frames - spec.lag  # frame of units[0]
        stop = first + spec.frames if self.end is None else min(first + spec.frames, self.end)
        lo = max(first, self.emitted)
        if stop > lo:
            self._units.append(np.asarray(units[lo - first : stop - first], np.int32))
            self.emitted = stop
        self.step += 1
        self._trim()

    def take(self) -> Final:
        """Units that became final since the last ``take``."""
        out = np.concatenate(self._units) if self._units else np.zeros(0, np.int32)
        final = Final(out, self._offset)
        self._units, self._offset = [], self._offset + len(out)
        return final

    def feed(self, audio: np.ndarray, run: RunSteps) -> Final:
        """``push`` and run every step that is ready with ``run``."""
        self.push(audio)
        return self._run(run)

    def flush(self, run: RunSteps) -> Final:
        """``finish`` and run the remaining steps."""
        self.finish()
        return self._run(run)

    def _run(self, run: RunSteps) -> Final:
        while (job := self.next_job()) is not None:
            self.advance(run([job])[0])
        return self.take()

    def _trim(self) -> None:
        keep_from = HOP * self.step * self.spec.frames
        if keep_from > self._base:
            self._buffer = self._buffer[keep_from - self._base :]
            self._base = keep_from


def tokenize_by_steps(
    audios: Sequence[np.ndarray],
    spec: StepSpec,
    initial: State,
    run: RunSteps,
    batch_size: int = 16,
) -> list[np.ndarray]:
    """Units of each of several whole audios by the steps a stream of it would run; the
    audios' steps go in lockstep, ``batch_size`` rows per call."""
    sessions = []
    for audio in audios:
        session = StepSession(spec, initial)
        session.push(audio)
        session.finish()
        sessions.append(session)
    while jobs := [(s, j) for s in sessions if (j := s.next_job()) is not None]:
        for i in range(0, len(jobs), batch_size):
            group = jobs[i : i + batch_size]
            for (session, _), result in zip(group, run([j for _, j in group]), strict=True):
                session.advance(result)
    return [s.take().units for s in sessions]


def stack(jobs: list[StepJob]) -> dict[str, np.ndarray]:
    """The inputs of one step-graph call for ``jobs``: ``audio``, ``start``, ``begin``,
    ``end`` and each state, with a batch axis."""
    feeds = {
        "audio": np.stack([j.audio for j in jobs]),
        "start": np.array([j.start for j in jobs], np.int64),
        "begin": np.array([j.begin for j in jobs], np.int64),
        "end": np.array([j.end for j in jobs], np.int64),
    }
    for name in jobs[0].state:
        feeds[name] = np.stack([j.state[name] for j in jobs])
    return feeds


def unstack(units: np.ndarray, states: dict[str, np.ndarray]) -> list[StepResult]:
    """Per-row results of one step-graph call."""
    return [
        (units[i], {name: value[i] for name, value in states.items()}) for i in range(len(units))
    ]
