"""Client SDK for speechtok.v1: a blocking ``Client`` and an asyncio ``AsyncClient``.

Idempotent calls (Tokenize, GetModelInfo, ListModels, Synthesize) retry on UNAVAILABLE (a
replica or the ingress restarting) with jittered exponential backoff, capped at 2 s a wait and
``retry_window`` seconds in all (30 by default: long enough to outlast a restart), and on
RESOURCE_EXHAUSTED over a quota after the wait the server names; every call has a deadline.
``stream_file`` / ``stream`` send 16 kHz float32 PCM chunks (from a file or any iterator) and
yield the server's answers as units become final; a stream cut by UNAVAILABLE resumes where its
last answer left off, with the units of one uncut stream (:mod:`serving.resume`).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import grpc
import numpy as np

from serving.pb import tokenizer_pb2 as pb
from serving.pb import tokenizer_pb2_grpc as pb_grpc
from serving.quota import RETRY_AFTER
from serving.resume import StreamTail
from tokenizer.audio import SAMPLE_RATE

T = TypeVar("T")
API_KEY_ENV = "SPEECHTOK_API_KEY"


class _Settings:
    """What both clients keep: the stub, call metadata (the API key), deadlines, retries."""

    _aio: ClassVar[bool]

    def __init__(
        self,
        addr: str,
        api_key: str | None = None,
        tls: bool = False,
        root_cert: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 20,
        stream_timeout: float | None = None,
        retry_window: float = 30.0,
    ) -> None:
        """``api_key``: default ``$SPEECHTOK_API_KEY``; ``root_cert``: PEM roots that signed
        the server's certificate (default: the system's); ``client_cert`` / ``client_key``:
        this client's PEM certificate chain and key, for servers that require them;
        ``timeout``: deadline of unary calls (s); ``stream_timeout``: of whole streams (None:
        none; a live stream may run for hours); ``retries`` / ``retry_window``: most retries
        of an idempotent call, and the seconds after its first attempt past which it is not
        retried."""
        api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.metadata = [("authorization", f"Bearer {api_key}")] if api_key else []
        module: Any = grpc.aio if self._aio else grpc
        if tls or client_cert:
            files = (root_cert, client_key, client_cert)
            pem = [Path(f).read_bytes() if f else None for f in files]
            creds = grpc.ssl_channel_credentials(*pem)
            self.channel = module.secure_channel(addr, creds)
        else:
            self.channel = module.insecure_channel(addr)
        self.stub = pb_grpc.TokenizerStub(self.channel)
        self.timeout, self.retries, self.stream_timeout = timeout, retries, stream_timeout
        self.retry_window = retry_window
        self.retried = 0
        """Retries made so far (all calls, stream resumes included)."""
        self.resumed = 0
        """Streams resumed after a cut so far."""

    def _backoff(self, e: grpc.RpcError, attempt: int, started: float) -> float:
        """Seconds to wait before retrying after failure ``attempt`` (0-based) of an idempotent
        call first tried at ``started``; re-raises ``e`` when it is not to be retried."""
        wait = min(2.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0)
        hint = _retry_after(e)
        if hint is not None:  # over a quota: the server says when
            wait = hint * random.uniform(1.0, 1.2)
        late = time.monotonic() - started + wait > self.retry_window
        retryable = e.code() == grpc.StatusCode.UNAVAILABLE or hint is not None
        if not retryable or attempt >= self.retries or late:
            raise e
        self.retried += 1
        return wait

    def _resume_wait(self, tail: StreamTail, e: grpc.RpcError) -> float:
        """Seconds to wait before reopening the stream of ``tail`` that ``e`` cut; re-raises
        ``e`` when it is not to be resumed (as :meth:`_backoff` for idempotent calls, the
        failures counted since the stream's last answer)."""
        if not tail.failures:
            tail.cut_at = time.monotonic()
        wait = self._backoff(e, tail.failures, tail.cut_at)
        tail.failures += 1
        self.resumed += tail.failures == 1
        return wait


def _retry_after(e: grpc.RpcError) -> float | None:
    """Seconds a RESOURCE_EXHAUSTED answer over a quota says to wait (None: not such an answer)."""
    if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    for key, value in e.trailing_metadata() or ():
        if key == RETRY_AFTER:
            return int(value) / 1000
    return None


def _request(
    audio: bytes | str | Path, model: str, dedup: bool, full_utterance: bool
) -> pb.TokenizeRequest:
    data = Path(audio).read_bytes() if isinstance(audio, str | Path) else bytes(audio)
    return pb.TokenizeRequest(
        audio=pb.Audio(file=data),
        options=pb.TokenizeOptions(model=model, dedup=dedup, full_utterance=full_utterance),
    )


def _stream_config(model: str) -> pb.StreamConfig:
    return pb.StreamConfig(model=model, sample_rate=SAMPLE_RATE, encoding=pb.PCM_F32LE, channels=1)


def file_chunks(path: str | Path, chunk_ms: float) -> Iterator[np.ndarray]:
    """A file decoded to 16 kHz mono float32, in chunks of ``chunk_ms``."""
    from tokenizer.audio import decode_audio

    audio = decode_audio(path)
    step = max(1, round(chunk_ms * SAMPLE_RATE / 1000))
    for at in range(0, len(audio), step):
        yield audio[at : at + step]


class Client(_Settings):
    _aio = False

    def _call(self, method: Any, request: Any) -> Any:
        started = time.monotonic()
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout, metadata=self.metadata)
            except grpc.RpcError as e:
                time.sleep(self._backoff(e, attempt, started))
        raise AssertionError("unreachable")

    def tokenize(
        self,
        audio: bytes | str | Path,
        model: str = "",
        dedup: bool = False,
        full_utterance: bool = False,
    ) -> pb.TokenizeResponse:
        """Units of an encoded file (path or bytes, sent as they are; the server decodes)."""
        return self._call(self.stub.Tokenize, _request(audio, model, dedup, full_utterance))

    def stream(
        self, chunks: Iterable[np.ndarray], model: str = "", resume: bool = True
    ) -> Iterator[pb.StreamResponse]:
        """Stream 16 kHz mono float chunks; yields answers as units become final. With
        ``resume``, a stream cut by UNAVAILABLE is reopened where its last answer left off
        (:mod:`serving.resume`; retried like an idempotent call), and the units are those of
        one uncut stream."""
        tail = StreamTail(_stream_config(model), chunks)
        while True:
            call = self.stub.StreamTokenize(
                tail.messages(), timeout=self.stream_timeout, metadata=self.metadata
            )
            try:
                for answer in call:
                    tail.answered(answer)
                    yield answer
                return
            except grpc.RpcError as e:
                if not resume:
                    raise
                time.sleep(self._resume_wait(tail, e))
            finally:
                call.cancel()

    def stream_file(
        self, path: str | Path, chunk_ms: float = 100.0, model: str = ""
    ) -> Iterator[pb.StreamResponse]:
        return self.stream(file_chunks(path, chunk_ms), model)

    def model_info(self, model: str = "") -> pb.ModelInfo:
        return self._call(self.stub.GetModelInfo, pb.ModelInfoRequest(model=model))

    def synthesize(
        self,
        units: Iterable[int],
        speaker: str | int = "",
        durations: Iterable[int] | None = None,
        deduplicated: bool = False,
        model: str = "",
    ) -> tuple[np.ndarray, pb.SynthesizeResponse]:
        """16 kHz float32 speech of units (one per frame, or deduplicated with or without
        durations), and the answer (vocoder name and fingerprint)."""
        r = self._call(
            self.stub.Synthesize,
            pb.SynthesizeRequest(
                units=list(units),
                model=model,
                durations=list(durations or []),
                deduplicated=deduplicated,
                speaker=str(speaker),
            ),
        )
        return np.frombuffer(r.audio.data, dtype="<f4").copy(), r

    def list_models(self) -> pb.ListModelsResponse:
        return self._call(self.stub.ListModels, pb.ListModelsRequest())

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Settings):
    _aio = True

    async def _call(self, method: Any, request: Any) -> Any:
        started = time.monotonic()
        for attempt in range(self.retries + 1):
            try:
                return await method(request, timeout=self.timeout, metadata=self.metadata)
            except grpc.aio.AioRpcError as e:
                await asyncio.sleep(self._backoff(e, attempt, started))
        raise AssertionError("unreachable")

    async def tokenize(
        self,
        audio: bytes | str | Path,
        model: str = "",
        dedup: bool = False,
        full_utterance: bool = False,
    ) -> pb.TokenizeResponse:
        return await self._call(self.stub.Tokenize, _request(audio, model, dedup, full_utterance))

    async def stream(
        self,
        chunks: Iterable[np.ndarray] | AsyncIterable[np.ndarray],
        model: str = "",
        resume: bool = True,
    ) -> AsyncIterator[pb.StreamResponse]:
        """Stream 16 kHz mono float chunks (sync or async iterable); yields answers, and
        resumes a cut stream as :meth:`Client.stream` does."""
        tail = StreamTail(_stream_config(model), chunks)
        while True:
            call = self.stub.StreamTokenize(
                tail.amessages(), timeout=self.stream_timeout, metadata=self.metadata
            )
            try:
                async for answer in call:
                    tail.answered(answer)
                    yield answer
                return
            except grpc.aio.AioRpcError as e:
                if not resume:
                    raise
                await asyncio.sleep(self._resume_wait(tail, e))
            finally:
                call.cancel()

    async def model_info(self, model: str = "") -> pb.ModelInfo:
        return await self._call(self.stub.GetModelInfo, pb.ModelInfoRequest(model=model))

    async def close(self) -> None:
        await self.channel.close()
