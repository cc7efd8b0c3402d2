"""What a streaming client keeps so that a cut stream can resume with the units of one stream.

Every answer says how many frames are final (``offset + len(units)``) and from which sample a
stream resumed after it needs the audio again (``resume_sample``: the left context of the next
window). The client keeps the audio sent from there on; when the call is cut (UNAVAILABLE: the
ingress or a replica restarting) it opens a new one whose ``StreamConfig`` carries
``resume_frame`` and ``audio_offset``, resends what it kept, then goes on with new chunks. The
server's windows are absolute, so the units equal those of an uncut stream.

A :class:`StreamTail` serves one stream and all its attempts: each attempt's requests come
from ``messages()`` (``amessages()`` for asyncio), and every answer goes through ``answered()``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

import numpy as np

from serving.pb import tokenizer_pb2 as pb


def audio_message(chunk: np.ndarray) -> pb.StreamRequest:
    return pb.StreamRequest(audio=np.ascontiguousarray(chunk, dtype="<f4").tobytes())


class StreamTail:
    """One stream's chunks (a sync or async iterable, taken once), the kept audio (every
    sample from ``start``), the frames final so far, and the number of the newest attempt."""

    def __init__(
        self, config: pb.StreamConfig, chunks: Iterable[np.ndarray] | AsyncIterable[np.ndarray]
    ) -> None:
        self.config = config
        self.sync = iter(chunks) if isinstance(chunks, Iterable) else None
        self.async_ = aiter(chunks) if isinstance(chunks, AsyncIterable) else None
        self.kept: list[np.ndarray] = []
        self.start = 0
        """Sample index in the stream of ``kept[0]``."""
        self.frames = 0
        """Frames final so far (the next answer's offset)."""
        self.attempt = 0
        self.failures = 0
        """Attempts that failed since the last answer (the client's backoff counts them)."""
        self.cut_at = 0.0
        """When the first of them failed (the client's retry window starts there)."""
        self.state = threading.Lock()
        """Guards the fields above: answers and requests may run on different threads."""
        self.pull = threading.Lock()
        self.apull = asyncio.Lock()
        """Held while a chunk is taken from ``chunks``, so that a new attempt never begins
        while an old one holds a chunk it has not kept yet."""

    def messages(self) -> Iterator[pb.StreamRequest]:
        """The requests of a new attempt (sync ``chunks``): the config, resuming where the
        last answer left off, the kept audio, then new chunks while it is the newest."""
        assert self.sync is not None, "expected sync chunks (AsyncClient takes async ones)"
        with self.pull:
            attempt, first = self._begin()
        yield from first
        while True:
            with self.pull:
                chunk = next(self.sync, None) if self._current(attempt) else None
            if chunk is None:
                return
            yield self._keep(chunk)

    async def amessages(self) -> AsyncIterator[pb.StreamRequest]:
        """:meth:`messages` for the asyncio client (sync or async ``chunks``)."""
        async with self.apull:
            attempt, first = self._begin()
        for message in first:
            yield message
        while True:
            async with self.apull:
                chunk = None
                if not self._current(attempt):
                    pass
                elif self.async_ is not None:
                    chunk = await anext(self.async_, None)
                elif self.sync is not None:
                    chunk = next(self.sync, None)
            if chunk is None:
                return
            yield self._keep(chunk)

    def answered(self, answer: pb.StreamResponse) -> None:
        """Forget the audio that a resume after ``answer`` no longer needs."""
        with self.state:
            self.failures = 0
            self.frames = answer.offset + len(answer.units)
            drop = answer.resume_sample - self.start
            while self.kept and drop >= len(self.kept[0]):
                drop -= len(self.kept[0])
                self.start += len(self.kept.pop(0))
            if self.kept and drop > 0:
                self.kept[0] = self.kept[0][drop:]
                self.start += drop

    def _begin(self) -> tuple[int, list[pb.StreamRequest]]:
        with self.state:
            self.attempt += 1
            config = pb.StreamConfig()
            config.CopyFrom(self.config)
            config.resume_frame, config.audio_offset = self.frames, self.start
            return self.attempt, [pb.StreamRequest(config=config), *map(audio_message, self.kept)]

    def _current(self, attempt: int) -> bool:
        with self.state:
            return attempt == self.attempt

    def _keep(self, chunk: np.ndarray) -> pb.StreamRequest:
        chunk = np.ascontiguousarray(chunk, dtype="<f4")
        with self.state:
            self.kept.append(chunk)
        return audio_message(chunk)
