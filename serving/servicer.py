"""The gRPC servicer (speechtok.v1.Tokenizer): each RPC finds its model, decodes its request
(:mod:`serving.requests`), calls the deployments and answers; streams run in
:mod:`serving.sessions`, and every failure ends the call with the status :mod:`serving.status`
gives it. Nothing a client sends can crash it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc
import numpy as np

from serving.config import ServeConfig
from serving.pb import tokenizer_pb2 as pb
from serving.pb import tokenizer_pb2_grpc as pb_grpc
from serving.requests import limits_for, read_audio
from serving.served import Model, ServedVocoder
from serving.sessions import Streams
from serving.status import Abort, guarded, quoted
from tokenizer.audio import SAMPLE_RATE
from tokenizer.dedup import dedup
from tokenizer.steps import StepSpec
from vocoder.runtime import check_request


def _steps(spec: StepSpec | None) -> pb.Steps | None:
    if spec is None:
        return None
    lookahead = spec.latency_ms - spec.step_ms
    return pb.Steps(step_ms=spec.step_ms, lookahead_ms=lookahead, latency_ms=spec.latency_ms)


class TokenizerServicer(pb_grpc.TokenizerServicer):
    """speechtok.v1.Tokenizer over the served models (``default`` for requests naming none)
    and vocoders."""

    def __init__(
        self,
        config: ServeConfig,
        models: dict[str, Model],
        default: str,
        vocoders: dict[str, ServedVocoder] | None = None,
    ) -> None:
        self.config, self.models, self.default = config, models, default
        self.vocoders = vocoders or {}
        self.limits = limits_for(config, config.max_request_seconds)
        self.streams = Streams(config, self._model)

    def _model(self, name: str) -> Model:
        name = name or self.default
        if name not in self.models:
            raise Abort(
                grpc.StatusCode.NOT_FOUND,
                f"expected a served model ({', '.join(sorted(self.models))}), found {quoted(name)}",
            )
        return self.models[name]

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
            steps=_steps(model.step_spec),
        )

    @guarded
    async def Tokenize(
        self, request: pb.TokenizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TokenizeResponse:
        model = self._model(request.options.model)
        audio = await asyncio.to_thread(read_audio, request.audio, self.limits)
        longest = self.config.max_full_utterance_seconds
        if request.options.full_utterance and len(audio) > longest * SAMPLE_RATE:
            raise Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"expected at most {longest:g} s of audio with full_utterance, found "
                f"{len(audio) / SAMPLE_RATE:.1f} s; use canonical windows for long audio",
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
            audio_seconds=len(audio) / SAMPLE_RATE,
        )

    async def StreamTokenize(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResponse]:
        # grpc.aio streams the answers of an async generator function, so this is one
        async with aclosing(self.streams.serve(request_iterator, context)) as answers:
            async for answer in answers:
                yield answer

    @guarded
    async def GetModelInfo(
        self, request: pb.ModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        return self._model_info(request.model or self.default, self._model(request.model))

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[self._model_info(n, m) for n, m in sorted(self.models.items())]
        )

    @guarded
    async def Synthesize(
        self, request: pb.SynthesizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.SynthesizeResponse:
        name = request.model or next(iter(self.vocoders), "")
        if name not in self.vocoders:
            raise Abort(
                grpc.StatusCode.NOT_FOUND,
                f"expected a served vocoder ({', '.join(sorted(self.vocoders)) or 'none'}), "
                f"found {quoted(name)}",
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
