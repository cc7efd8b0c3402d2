"""The gRPC servicer (speechtok.v1.Tokenizer): decodes and checks requests, holds streaming
sessions, calls the model deployments, and maps every failure to a gRPC status whose message
says what was expected and what was found. Nothing a client sends can crash it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np

from serving.coalesce import WindowCoalescer
from serving.config import ServeConfig
from serving.pb import tokenizer_pb2 as pb
from serving.pb import tokenizer_pb2_grpc as pb_grpc
from tokenizer.audio import AudioLimits, decode_audio, decode_pcm
from tokenizer.errors import AudioTooLongError, InvalidInputError
from tokenizer.streaming import StreamSession
from tokenizer.tokenizers import dedup
from tokenizer.windows import WindowSpec
from vocoder.runtime import check_request

log = logging.getLogger(__name__)
T = TypeVar("T")

ENCODINGS: dict[int, str] = {pb.PCM_S16LE: "pcm16", pb.PCM_F32LE: "f32"}


class Abort(Exception):
    """A request to end the call with ``code`` and ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


async def abort_for(e: Exception, context: grpc.aio.ServicerContext) -> None:
    """End the call with the status ``e`` deserves; unexpected errors are logged and answered
    INTERNAL without internals."""
    if isinstance(e, Abort):
        await context.abort(e.code, e.message)
    if isinstance(e, AudioTooLongError):
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
    if isinstance(e, InvalidInputError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
    if isinstance(e, asyncio.CancelledError | grpc.aio.AbortError):
        raise e
    log.exception("unexpected error in a call")
    await context.abort(
        grpc.StatusCode.INTERNAL,
        f"the server failed on this request ({type(e).__name__}); it was logged",
    )


class Model:
    """A served model: its deployment handle, what it told us about itself, and the coalescer
    its stream windows go through."""

    def __init__(self, handle: Any, info: dict[str, Any], windows: WindowCoalescer) -> None:
        self.handle, self.info, self.windows = handle, info, windows
        self.window = WindowSpec(**info["window"])


class ServedVocoder:
    """A served vocoder: its deployment handle and its name, fingerprint, K and speakers."""

    def __init__(self, handle: Any, info: dict[str, Any]) -> None:
        self.handle, self.info = handle, info


class TokenizerServicer(pb_grpc.TokenizerServicer):
    def __init__(
        self,
        config: ServeConfig,
        models: dict[str, Model],
        default: str,
        vocoders: dict[str, ServedVocoder] | None = None,
    ) -> None:
        self.config, self.models, self.default = config, models, default
        self.vocoders = vocoders or {}
        self.streams = 0
        common = {"max_sample_rate": config.max_sample_rate, "max_channels": config.max_channels}
        self.unary_limits = AudioLimits(max_seconds=config.max_request_seconds, **common)
        self.stream_limits = AudioLimits(max_seconds=config.max_stream_seconds, **common)

    # -- helpers ----------------------------------------------------------------------------
    def _model(self, name: str) -> Model:
        name = name or self.default
        if name not in self.models:
            raise Abort(
                grpc.StatusCode.NOT_FOUND,
                f"expected a served model ({', '.join(sorted(self.models))}), found {name!r}",
            )
        return self.models[name]

    async def _guard(self, context: grpc.aio.ServicerContext, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except Exception as e:
            await abort_for(e, context)
        raise AssertionError("unreachable")  # context.abort raises

    def _decode(self, audio: pb.Audio, limits: AudioLimits) -> np.ndarray:
        which = audio.WhichOneof("source")
        if which == "file":
            return decode_audio(audio.file, limits=limits)
        if which == "pcm":
            return self._pcm(
                audio.pcm.data,
                audio.pcm.sample_rate,
                audio.pcm.encoding,
                audio.pcm.channels,
                limits,
            )
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "expected audio as a file or PCM, found no audio in the request",
        )

    @staticmethod
    def _pcm(
        data: bytes, rate: int, encoding: int, channels: int, limits: AudioLimits
    ) -> np.ndarray:
        if encoding not in ENCODINGS:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"expected a PCM encoding (PCM_S16LE or PCM_F32LE), found "
                f"{pb.Encoding.Name(encoding) if encoding in pb.Encoding.values() else encoding}",
            )
        return decode_pcm(
            data,
            sample_rate=rate,
            encoding=ENCODINGS[encoding],
            channels=channels or 1,
            limits=limits,
        )

    def _model_info(self, name: str, model: Model) -> pb.ModelInfo:
        i = model.info
        return pb.ModelInfo(
            name=name,
            kind=i["kind"],
            k=i["K"],
            k2=i["K2"],
            frame_rate=i["frame_rate"],
            window=pb.Window(**i["window"]),
            fingerprint=i["fingerprint"],
            default=name == self.default,
        )

    # -- RPCs -------------------------------------------------------------------------------
    async def Tokenize(
        self, request: pb.TokenizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TokenizeResponse:
        async def run() -> pb.TokenizeResponse:
            model = self._model(request.options.model)
            audio = await asyncio.to_thread(self._decode, request.audio, self.unary_limits)
            longest = self.config.max_full_utterance_seconds
            if request.options.full_utterance and len(audio) > longest * 16000:
                raise Abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"expected at most {longest:g} s of audio with full_utterance, found "
                    f"{len(audio) / 16000:.1f} s; use canonical windows for long audio",
                )
            units = await model.handle.tokenize.remote(audio, request.options.full_utterance)
            durations: list[int] = []
            if request.options.dedup:
                units, d = dedup(units)
                durations = d.tolist()
            return pb.TokenizeResponse(
                units=units.tolist(),
                durations=durations,
                frame_rate=model.info["frame_rate"],
                model=model.info["name"],
                fingerprint=model.info["fingerprint"],
                audio_seconds=len(audio) / 16000,
            )

        return await self._guard(context, run)

    async def StreamTokenize(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResponse]:
        if self.streams >= self.config.max_streams:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"expected at most {self.config.max_streams} concurrent streams, "
                f"found {self.streams} open; retry later",
            )
        self.streams += 1
        try:
            it = aiter(request_iterator)
            deadline = asyncio.get_running_loop().time() + self.config.stream_deadline_s
            first = await self._next(it, deadline)
            if first is None or first.WhichOneof("message") != "config":
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "expected a StreamConfig as the first message, found "
                    f"{'nothing' if first is None else first.WhichOneof('message')}",
                )
            cfg = first.config
            model = self._model(cfg.model)
            if cfg.sample_rate != 16000:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"expected sample_rate 16000 for streams (resample on the client), "
                    f"found {cfg.sample_rate}",
                )
            max_samples = int(self.config.max_stream_seconds * 16000)
            session = StreamSession(model.window, max_samples=max_samples)
            meta = {"model": model.info["name"], "fingerprint": model.info["fingerprint"]}
            while True:
                msg = await self._next(it, deadline)
                if msg is None:
                    break
                if msg.WhichOneof("message") != "audio":
                    raise Abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "expected audio chunks after the config, found another config",
                    )
                if not msg.audio:
                    continue
                try:
                    chunk = self._pcm(
                        msg.audio, cfg.sample_rate, cfg.encoding, cfg.channels, self.stream_limits
                    )
                    jobs = session.push(chunk)
                except AudioTooLongError as e:
                    raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e)) from e
                if jobs:
                    final = session.emit(jobs, await model.windows.encode([j.audio for j in jobs]))
                    yield pb.StreamResponse(units=final.units.tolist(), offset=final.offset, **meta)
            jobs = session.finish()
            final = session.emit(jobs, await model.windows.encode([j.audio for j in jobs]))
            yield pb.StreamResponse(
                units=final.units.tolist(), offset=final.offset, final=True, **meta
            )
        except Exception as e:
            await abort_for(e, context)
        finally:
            self.streams -= 1

    async def _next(
        self, it: AsyncIterator[pb.StreamRequest], deadline: float
    ) -> pb.StreamRequest | None:
        """The next message, None at the end; DEADLINE_EXCEEDED after ``idle_timeout_s`` of
        silence or past the stream's wall-clock deadline."""
        left = deadline - asyncio.get_running_loop().time()
        wait = min(self.config.idle_timeout_s, left)
        try:
            return await asyncio.wait_for(anext(it), max(wait, 0.0))
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

    async def GetModelInfo(
        self, request: pb.ModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        async def run() -> pb.ModelInfo:
            return self._model_info(request.model or self.default, self._model(request.model))

        return await self._guard(context, run)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[self._model_info(n, m) for n, m in sorted(self.models.items())]
        )

    async def Synthesize(
        self, request: pb.SynthesizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.SynthesizeResponse:
        async def run() -> pb.SynthesizeResponse:
            name = request.model or next(iter(self.vocoders), "")
            if name not in self.vocoders:
                raise Abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"expected a served vocoder ({', '.join(sorted(self.vocoders)) or 'none'}), "
                    f"found {name!r}",
                )
            voc = self.vocoders[name]
            units, speaker, durations = check_request(
                list(request.units),
                request.speaker,
                list(request.durations) or None,
                voc.info["K"],
                voc.info["speakers"],
            )
            audio = await voc.handle.synthesize.remote(
                units.tolist(),
                speaker,
                None if durations is None else durations.tolist(),
                request.deduplicated,
            )
            rate = voc.info["sample_rate"]
            return pb.SynthesizeResponse(
                audio=pb.Pcm(
                    data=np.asarray(audio, "<f4").tobytes(),
                    sample_rate=rate,
                    encoding=pb.PCM_F32LE,
                    channels=1,
                ),
                model=name,
                fingerprint=voc.info["fingerprint"],
                audio_seconds=len(audio) / rate,
            )

        return await self._guard(context, run)
