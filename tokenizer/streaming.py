"""Streaming sessions: audio chunks of any size in, newly final units out.

A session holds only the audio it still needs and counters; the model call is stateless. It
can run in two steps so that a server batches windows of many sessions into one call:
``push`` / ``finish`` return the windows that became complete (``WindowJob``), the caller encodes
their audio with any backend, and ``emit`` turns the window units into the session's newly
final units. ``feed`` / ``flush`` do both steps with one backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokenizer.audio import stream_chunk
from tokenizer.errors import InvalidInputError
from tokenizer.steps import Final
from tokenizer.windows import Encode, Window, WindowSpec, join_units


@dataclass(frozen=True)
class WindowJob:
    audio: np.ndarray
    """The window's samples (float32, at most ``spec.window_samples``)."""
    window: Window


class StreamSession:
    def __init__(self, spec: WindowSpec, max_samples: int | None = None) -> None:
        self.spec = spec
        self.max_samples = max_samples
        self._buffer = np.zeros(0, np.float32)
        self._base = 0  # absolute index of _buffer[0]
        self.received = 0
        self.next_chunk = 0
        self.emitted = 0
        self.finished = False

    def push(self, audio: np.ndarray) -> list[WindowJob]:
        """Append 16 kHz mono float audio; the windows that are now complete."""
        if self.finished:
            raise InvalidInputError("expected audio before finish(), found audio after it")
        audio = stream_chunk(audio, self.received, self.max_samples)
        self._buffer = np.concatenate([self._buffer, audio])
        self.received += len(audio)
        jobs = []
        while self.spec.full_end(self.next_chunk) <= self.received:
            jobs.append(self._job(self.spec.window(self.next_chunk, None)))
            self.next_chunk += 1
        self._trim()
        return jobs

    def resume(self, frame: int, audio_offset: int) -> None:
        """Continue, in this new session, a stream that was cut after ``frame`` final frames;
        the audio pushed from now on starts at sample ``audio_offset`` of that stream, at most
        its ``resume_sample`` then. Units are those of the uncut stream: windows are absolute."""
        if self.received or self.finished:
            raise InvalidInputError("expected to resume a new session, found one with audio")
        _, chunk, _ = self.spec.frames
        if frame < 0 or frame % chunk:
            raise InvalidInputError(
                f"expected resume_frame to be a frame offset that answers give (a multiple of "
                f"the {chunk}-frame chunk), found {frame}"
            )
        need = self.spec.window(frame // chunk, None).start
        if not 0 <= audio_offset <= need:
            raise InvalidInputError(
                f"expected audio_offset from 0 to {need} (the resume_sample of the answer that "
                f"ended at frame {frame}), found {audio_offset}"
            )
        self._base = self.received = audio_offset
        self.next_chunk, self.emitted = frame // chunk, frame

    @property
    def resume_sample(self) -> int:
        """The first sample a stream resumed after the units emitted so far needs again."""
        return self.spec.window(self.next_chunk, None).start

    def finish(self) -> list[WindowJob]:
        """The remaining windows, cut at the end of the audio."""
        self.finished = True
        windows = self.spec.plan(self.received)[self.next_chunk :]
        self.next_chunk += len(windows)
        jobs = [self._job(w) for w in windows]
        self._buffer = np.zeros(0, np.float32)
        return jobs

    def emit(self, jobs: list[WindowJob], units: list[np.ndarray]) -> Final:
        """Newly final units from the jobs' window units (jobs in the order they came)."""
        out = join_units([j.window for j in jobs], units)
        offset = self.emitted
        self.emitted += len(out)
        return Final(out, offset)

    def feed(self, audio: np.ndarray, encode: Encode) -> Final:
        jobs = self.push(audio)
        return self.emit(jobs, encode([j.audio for j in jobs]) if jobs else [])

    def flush(self, encode: Encode) -> Final:
        jobs = self.finish()
        return self.emit(jobs, encode([j.audio for j in jobs]) if jobs else [])

    def _job(self, w: Window) -> WindowJob:
        return WindowJob(self._buffer[w.start - self._base : w.end - self._base].copy(), w)

    def _trim(self) -> None:
        """Drop audio no future window needs (before the next chunk's left context; a resumed
        session may not have reached it yet)."""
        keep_from = min(self.resume_sample, self.received)
        if keep_from > self._base:
            self._buffer = self._buffer[keep_from - self._base :]
            self._base = keep_from
