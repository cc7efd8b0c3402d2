"""Streaming sessions: each open stream reads a StreamConfig, then PCM chunks, within an idle
timeout and a wall-clock deadline, and answers with units as they become final.

:class:`Streams` counts the open streams against ``max_streams`` and ends a failed one with its
status; :class:`Stream` is one of them, buffering its audio in its model's session (canonical
windows sent through the model's coalescer, or incremental steps run in this process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing

import grpc

from serving.config import ServeConfig
from serving.pb import tokenizer_pb2 as pb
from serving.requests import limits_for, read_pcm
from serving.served import Model, Session
from serving.status import Abort, abort_for
from tokenizer.audio import SAMPLE_RATE, AudioLimits
from tokenizer.steps import Final

FindModel = Callable[[str], Model]
"""The served model of a name (empty: the default); NOT_FOUND for others."""


class Streams:
    """The open streams of one servicer: at most ``config.max_streams`` at once."""

    def __init__(self, config: ServeConfig, find_model: FindModel) -> None:
        self.config, self.find_model = config, find_model
        self.limits = limits_for(config, config.max_stream_seconds)
        self.open = 0
        """Streams open now."""

    async def serve(
        self, requests: AsyncIterator[pb.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[pb.StreamResponse, None]:
        """The answers to one stream, counted as open until it ends; a failure ends the call
        with its status."""
        if self.open >= self.config.max_streams:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"expected at most {self.config.max_streams} concurrent streams, "
                f"found {self.open} open; retry later",
            )
        self.open += 1
        try:
            stream = Stream(self.config, self.limits, requests)
            async with aclosing(stream.answers(self.find_model)) as answers:
                async for answer in answers:
                    yield answer
        except Exception as e:
            await abort_for(e, context)
        finally:
            self.open -= 1


class Stream:
    """One open stream: its requests, each awaited at most ``idle_timeout_s`` and all within
    ``stream_deadline_s`` of the start."""

    def __init__(
        self, config: ServeConfig, limits: AudioLimits, requests: AsyncIterator[pb.StreamRequest]
    ) -> None:
        self.config, self.limits, self.requests = config, limits, aiter(requests)
        self.deadline = asyncio.get_running_loop().time() + config.stream_deadline_s

    async def answers(self, find_model: FindModel) -> AsyncGenerator[pb.StreamResponse, None]:
        """An answer whenever chunks make units final (a window or step completes), and a
        final one (all flushed) once the client closes its side."""
        cfg = await self._config()
        model = find_model(cfg.model)
        if cfg.sample_rate != SAMPLE_RATE:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"expected sample_rate {SAMPLE_RATE} for streams (resample on the client), "
                f"found {cfg.sample_rate}",
            )
        session = model.session(int(self.config.max_stream_seconds * SAMPLE_RATE))
        if cfg.resume_frame or cfg.audio_offset:
            session.resume(cfg.resume_frame, cfg.audio_offset)
        while (msg := await self._next()) is not None:
            if msg.WhichOneof("message") != "audio":
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "expected audio chunks after the config, found another config",
                )
            if not msg.audio:
                continue
            chunk = read_pcm(msg.audio, cfg.sample_rate, cfg.encoding, cfg.channels, self.limits)
            if done := await model.advance(session, chunk):
                yield _answer(model, session, done)
        done = await model.advance(session, None)
        assert done is not None
        yield _answer(model, session, done, final=True)

    async def _config(self) -> pb.StreamConfig:
        """The first message's StreamConfig; INVALID_ARGUMENT if it is anything else."""
        first = await self._next()
        if first is None or first.WhichOneof("message") != "config":
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "expected a StreamConfig as the first message, found "
                f"{'nothing' if first is None else first.WhichOneof('message')}",
            )
        return first.config

    async def _next(self) -> pb.StreamRequest | None:
        """The next message, None at the end; DEADLINE_EXCEEDED after ``idle_timeout_s`` of
        silence or past the stream's wall-clock deadline."""
        left = self.deadline - asyncio.get_running_loop().time()
        wait = min(self.config.idle_timeout_s, left)
        try:
            return await asyncio.wait_for(anext(self.requests), max(wait, 0.0))
        except StopAsyncIteration:
            return None
        except TimeoutError as e:
            if wait < self.config.idle_timeout_s:
                raise Abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"expected streams to end within {self.config.stream_deadline_s:g} s, "
                    f"found this one still open; it was closed",
                ) from e
            raise Abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"expected stream data at least every {self.config.idle_timeout_s:g} s, "
                f"found none for that long; the stream was closed",
            ) from e


def _answer(model: Model, session: Session, done: Final, final: bool = False) -> pb.StreamResponse:
    return pb.StreamResponse(
        units=done.units.tolist(),
        offset=done.offset,
        final=final,
        model=model.info["name"],
        fingerprint=model.info["fingerprint"],
        resume_sample=session.resume_sample,
    )
