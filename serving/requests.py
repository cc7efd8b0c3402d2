"""Request decoding: the audio of a request (an encoded file or raw PCM) to 16 kHz mono float32,
within the :class:`~tokenizer.audio.AudioLimits` of its kind of call."""

from __future__ import annotations

import grpc
import numpy as np

from serving.config import ServeConfig
from serving.pb import tokenizer_pb2 as pb
from serving.status import Abort
from tokenizer.audio import AudioLimits, decode_audio, decode_pcm

ENCODINGS: dict[int, str] = {pb.PCM_S16LE: "pcm16", pb.PCM_F32LE: "f32"}
"""The PCM encodings served, as :func:`~tokenizer.audio.decode_pcm` names them."""


def limits_for(config: ServeConfig, max_seconds: float) -> AudioLimits:
    """The served rate and channel limits, with at most ``max_seconds`` of audio."""
    return AudioLimits(
        max_seconds=max_seconds,
        max_sample_rate=config.max_sample_rate,
        max_channels=config.max_channels,
    )


def read_audio(audio: pb.Audio, limits: AudioLimits) -> np.ndarray:
    """The samples of ``audio``, decoded from its file or PCM."""
    which = audio.WhichOneof("source")
    if which == "file":
        return decode_audio(audio.file, limits=limits)
    if which == "pcm":
        pcm = audio.pcm
        return read_pcm(pcm.data, pcm.sample_rate, pcm.encoding, pcm.channels, limits)
    raise Abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        "expected audio as a file or PCM, found no audio in the request",
    )


def read_pcm(
    data: bytes, rate: int, encoding: int, channels: int, limits: AudioLimits
) -> np.ndarray:
    """The samples of PCM ``data`` at ``rate`` Hz in ``encoding`` (a ``pb.Encoding``), with
    ``channels`` interleaved (0 means 1)."""
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
