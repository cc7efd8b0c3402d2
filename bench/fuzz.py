"""Malformed input against the real service: a seeded corpus of bad (and some good) requests,
each with the gRPC statuses it may end with, sent over loopback by :func:`run`.

After every case the standard health service must answer SERVING, and every
:data:`CHECK_EVERY` cases (and at the end) a correct Tokenize must answer the units it answered
before the first case; UNKNOWN and INTERNAL are never acceptable answers from the server.

Where a status comes from matters for metadata: gRPC's client library refuses to send metadata
its own rules forbid (upper-case or empty keys, pseudo-headers, values with bytes outside
printable ASCII on keys not ending in ``-bin``) and answers such calls INTERNAL "Invalid
metadata" itself, or raises before sending. Those cases are marked ``client`` (the server never
saw them) and never count as server failures; every other status is the server's.

``python -m bench.fuzz --addr HOST:PORT --api-key K --seed 0 --cases 1200 [--json]``;
``bench/fuzz.sh`` starts ``speechtok serve`` for it and reports the server's memory."""

from __future__ import annotations

import argparse
import io
import json
import re
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import cycle
from typing import Any, cast

import grpc
import numpy as np
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.procs import process_tree, rss_bytes
from serving.config import ServeConfig
from serving.pb import tokenizer_pb2 as pb
from serving.pb import tokenizer_pb2_grpc as pb_grpc
from tokenizer.audio import SAMPLE_RATE
from tokenizer.train.runconfig import load_run_config
from vocoder.runtime import MAX_UNITS

OK, INVALID, TOO_MUCH = "OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"
NOT_FOUND, UNAUTH, IDLE = "NOT_FOUND", "UNAUTHENTICATED", "DEADLINE_EXCEEDED"
CANCELLED = "CANCELLED"
NEVER = frozenset({"UNKNOWN", "INTERNAL"})
"""Statuses the server must never answer, whatever it is sent."""
CHECK_EVERY = 25
"""Cases between two correct-request checks."""
TIMEOUT_S = 120.0
"""Deadline of one case (a just-under-the-limit request takes seconds on 2 cores)."""
CONTAINERS = {
    "WAV": "PCM_16",
    "WAVEX": "PCM_16",
    "RF64": "PCM_16",
    "FLAC": "PCM_16",
    "OGG": "VORBIS",
    "MP3": "MPEG_LAYER_III",
    "AIFF": "PCM_16",
}
"""Every container :func:`~tokenizer.audio.decode_audio` accepts, as soundfile writes it."""
DECLARED_LENGTH = ("WAV", "WAVEX", "RF64", "FLAC", "AIFF")
"""Containers whose header declares the length: any truncation must be refused. OGG and MP3
declare none, so a cut at a page or frame boundary is a shorter valid file."""


@dataclass(frozen=True)
class Case:
    """One request of the corpus and the statuses the server may end it with."""

    name: str
    family: str
    call: str
    """``Tokenize``, ``StreamTokenize``, ``Synthesize`` or ``GetModelInfo``."""
    request: Any
    """The request message; for streams a tuple of StreamRequest messages."""
    allowed: frozenset[str]
    metadata: tuple[tuple[str, str | bytes], ...] = ()
    """Sent after the API key (or instead of it when ``auth`` is false)."""
    auth: bool = True
    cancel_after: int | None = None
    """Streams: the client cancels once this many messages are sent."""
    stall_s: float = 0.0
    """Streams: seconds the client stays silent after its messages, before closing its side."""

    @property
    def slow(self) -> bool:
        """Waits out a server timeout."""
        return self.stall_s > 0

    def key(self) -> tuple[Any, ...]:
        """What makes two cases the same request."""
        messages = self.request if isinstance(self.request, tuple) else (self.request,)
        payload = tuple(m.SerializeToString(deterministic=True) for m in messages)
        return (self.call, payload, self.metadata, self.auth, self.cancel_after, self.stall_s)


def _case(name: str, family: str, request: Any, *allowed: str, **kw: Any) -> Case:
    call = {
        pb.TokenizeRequest: "Tokenize",
        pb.SynthesizeRequest: "Synthesize",
        pb.ModelInfoRequest: "GetModelInfo",
        tuple: "StreamTokenize",
    }[type(request)]
    return Case(name, family, call, request, frozenset(allowed), **kw)


def _file(data: bytes, **options: Any) -> pb.TokenizeRequest:
    return pb.TokenizeRequest(audio=pb.Audio(file=data), options=pb.TokenizeOptions(**options))


def _pcm(
    data: bytes,
    rate: int = SAMPLE_RATE,
    encoding: int = pb.PCM_S16LE,
    channels: int = 1,
    **options: Any,
) -> pb.TokenizeRequest:
    pcm = pb.Pcm(
        data=data, sample_rate=rate, encoding=cast(pb.Encoding, encoding), channels=channels
    )
    return pb.TokenizeRequest(audio=pb.Audio(pcm=pcm), options=pb.TokenizeOptions(**options))


def voice(seconds: float, seed: int = 0) -> np.ndarray:
    """A vowel-like chirp with noise at 16 kHz, in [-0.5, 0.5]: input the models take as speech."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = np.random.default_rng(seed).uniform(-0.05, 0.05, len(t))
    return (0.4 * np.sin(2 * np.pi * (120 + 60 * t) * t) + noise).astype(np.float32)


def encode(x: np.ndarray, container: str, rate: int = SAMPLE_RATE) -> bytes:
    """``x`` written as ``container`` with its :data:`CONTAINERS` subtype."""
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=container, subtype=CONTAINERS[container])
    return _ogg_serial_0(buf.getvalue()) if container == "OGG" else buf.getvalue()


def _ogg_crc(page: bytes | bytearray) -> int:
    """The CRC-32 of an Ogg page (polynomial 0x04C11DB7, not reflected, initial 0)."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def _ogg_serial_0(data: bytes) -> bytes:
    """``data`` with stream serial number 0 on every page (libsndfile draws a random one), so
    that a seed gives the same bytes."""
    out, pos = bytearray(), 0
    while data[pos : pos + 4] == b"OggS":
        segments = data[pos + 26]
        end = pos + 27 + segments + sum(data[pos + 27 : pos + 27 + segments])
        page = bytearray(data[pos:end])
        page[14:18], page[22:26] = bytes(4), bytes(4)
        page[22:26] = _ogg_crc(page).to_bytes(4, "little")
        out += page
        pos = end
    return bytes(out + data[pos:])


def _patched(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


# ---- families -------------------------------------------------------------------------------


def random_bytes(rng: np.random.Generator, config: ServeConfig) -> Iterator[Case]:
    """Random bytes of random sizes (0 to 256 KiB, log-uniform), some behind a real magic."""
    magics = [b"", b"RIFF", b"fLaC", b"OggS", b"ID3", b"FORM", b"RF64", b"\xff\xfb"]
    for i in cycle(range(len(magics))):
        size = int(np.exp(rng.uniform(0, np.log(256 << 10))))
        data = magics[i] + rng.bytes(size)
        yield _case(
            f"random-{size}b-{magics[i].hex() or 'raw'}", "random-bytes", _file(data), INVALID
        )


def truncated(rng: np.random.Generator, config: ServeConfig) -> Iterator[Case]:
    """Each container cut at an offset: inside the header first, then anywhere."""
    files = {c: encode(voice(0.5, 1), c) for c in CONTAINERS}
    header = [0, 1, 3, 4, 8, 11, 12, 16, 20, 24, 36, 40, 42, 44, 48, 60, 80, 128]
    offsets = {c: [o for o in header if o < len(f)] for c, f in files.items()}
    for c in cycle(CONTAINERS):
        f = files[c]
        cut = offsets[c].pop(0) if offsets[c] else int(rng.integers(1, len(f)))
        allowed = (INVALID,) if c in DECLARED_LENGTH or cut < 128 else (INVALID, OK)
        yield _case(f"{c}-cut-{cut}-of-{len(f)}", "truncated", _file(f[:cut]), *allowed)


def lying_header(rng: np.random.Generator, config: ServeConfig) -> list[Case]:
    """A valid WAV or AIFF with one header field patched: sizes, rate, channels, bit depth,
    format tag, block alignment."""
    wav, aiff = encode(voice(0.25, 2), "WAV"), encode(voice(0.25, 2), "AIFF")
    fmt, data = wav.find(b"fmt ") + 8, wav.find(b"data") + 4
    comm = aiff.find(b"COMM") + 8
    u16, u32 = struct.Struct("<H").pack, struct.Struct("<I").pack
    bad_rate = (INVALID,)
    patches: list[tuple[str, bytes, tuple[str, ...]]] = [
        ("wav-riff-size-huge", _patched(wav, 4, u32(0xFFFFFFF0)), (OK, INVALID)),
        ("wav-riff-size-0", _patched(wav, 4, u32(0)), (OK, INVALID)),
        ("wav-data-size-huge", _patched(wav, data, u32(0x7FFFFFF0)), (INVALID,)),
        ("wav-data-size-odd", _patched(wav, data, u32(4001)), (OK, INVALID)),  # 2000 samples
        ("wav-fmt-size-huge", _patched(wav, fmt - 4, u32(0xFFFFFF00)), (INVALID,)),
        ("wav-fmt-size-2", _patched(wav, fmt - 4, u32(2)), (INVALID,)),
    ]
    for rate in (0, 1, 999, config.max_sample_rate + 1, 0x7FFFFFFF, 0xFFFFFFFF):
        patches.append((f"wav-rate-{rate}", _patched(wav, fmt + 4, u32(rate)), bad_rate))
    patches.append(("wav-rate-8000", _patched(wav, fmt + 4, u32(8000)), (OK,)))
    # libsndfile reads some lies consistently (a valid file of another shape): OK there
    for channels in (0, 2, config.max_channels + 1, 255, 0xFFFF):
        allowed = (OK, INVALID) if 1 <= channels <= config.max_channels else (INVALID,)
        patches.append((f"wav-channels-{channels}", _patched(wav, fmt + 2, u16(channels)), allowed))
    for bits in (0, 1, 7, 8, 12, 24, 32, 33, 64, 0xFFFF):
        allowed = (OK, INVALID) if 1 <= bits <= 32 else (INVALID,)  # whole bytes per sample
        patches.append((f"wav-bits-{bits}", _patched(wav, fmt + 14, u16(bits)), allowed))
    for tag in (0, 2, 3, 6, 7, 0x11, 0x55, 0x1234, 0xFFFE, 0xFFFF):
        allowed = (OK, INVALID) if tag in (3, 6, 7) else (INVALID,)  # float, A-law, mu-law
        patches.append((f"wav-format-tag-{tag:#x}", _patched(wav, fmt, u16(tag)), allowed))
    for align in (0, 1, 3, 0xFFFF):
        patches.append(
            (f"wav-block-align-{align}", _patched(wav, fmt + 12, u16(align)), (OK, INVALID))
        )
    be16, be32 = struct.Struct(">H").pack, struct.Struct(">I").pack
    patches += [
        # libsndfile takes the frames from the (complete) sample chunk, not from COMM
        ("aiff-frames-huge", _patched(aiff, comm + 2, be32(0x7FFFFFFF)), (OK, INVALID)),
        ("aiff-frames-0", _patched(aiff, comm + 2, be32(0)), (OK, INVALID)),
        ("aiff-channels-0", _patched(aiff, comm, be16(0)), (INVALID,)),
        ("aiff-channels-huge", _patched(aiff, comm, be16(0xFFFF)), (INVALID,)),
        ("aiff-bits-0", _patched(aiff, comm + 6, be16(0)), (INVALID,)),
        ("aiff-bits-33", _patched(aiff, comm + 6, be16(33)), (INVALID,)),
        ("aiff-rate-0", _patched(aiff, comm + 8, bytes(10)), bad_rate),
        ("aiff-rate-inf", _patched(aiff, comm + 8, b"\x7f\xff" + bytes(8)), bad_rate),
        ("aiff-rate-1", _patched(aiff, comm + 8, b"\x3f\xff\x80" + bytes(7)), bad_rate),
        ("aiff-form-size-huge", _patched(aiff, 4, be32(0xFFFFFFF0)), (OK, INVALID)),
    ]
    return [_case(n, "lying-header", _file(f), *a) for n, f, a in patches]


def bombs(rng: np.random.Generator, config: ServeConfig) -> list[Case]:
    """Tiny files declaring enormous lengths: refused before anything that size is allocated."""
    flac, rf64 = encode(voice(0.1, 3), "FLAC"), encode(voice(0.1, 3), "RF64")
    body = flac[18:26]  # STREAMINFO: rate 20 bits, channels-1 3, bits-1 5, total samples 36
    packed = int.from_bytes(body, "big")
    out = []
    for total in (2**36 - 1, 2**32, int(config.max_request_seconds * SAMPLE_RATE) + 1):
        field_ = (packed & ~(2**36 - 1)) | total
        out.append(
            _case(
                f"flac-declares-{total}-samples",
                "bomb",
                _file(_patched(flac, 18, field_.to_bytes(8, "big"))),
                INVALID,
                TOO_MUCH,
            )
        )
    ds64 = rf64.find(b"ds64") + 8
    huge = _patched(rf64, ds64 + 8, struct.pack("<Q", 2**62))
    out.append(_case("rf64-data-size-2^62", "bomb", _file(huge), INVALID, TOO_MUCH))
    huge = _patched(rf64, ds64 + 16, struct.pack("<Q", 2**62))  # unused by libsndfile
    out.append(_case("rf64-sample-count-2^62", "bomb", _file(huge), OK, INVALID, TOO_MUCH))
    head = encode(voice(0.01, 3), "WAV")
    data = head.find(b"data") + 4
    for size in (0x7FFFFFFF, 0xFFFFFFFE):
        out.append(
            _case(
                f"wav-{len(head)}b-declares-{size}b",
                "bomb",
                _file(_patched(head, data, struct.pack("<I", size))),
                INVALID,
            )
        )
    return out


def raw_pcm(rng: np.random.Generator, config: ServeConfig) -> list[Case]:
    """Raw PCM with wrong byte counts, encodings, rates and channel counts."""
    s16 = (voice(0.2, 4) * 32767).astype("<i2").tobytes()
    f32 = voice(0.2, 4).tobytes()
    out = []
    for size in (0, 1, 3, 5, 6, 7):
        allowed = (INVALID,) if size % 2 or size == 0 else (OK,)
        out.append(_case(f"s16-{size}b", "pcm", _pcm(s16[:size]), *allowed))
    for size in (1, 2, 3, 5, 6, 7, 4):
        allowed = (INVALID,) if size % 4 else (OK,)
        out.append(_case(f"f32-{size}b", "pcm", _pcm(f32[:size], encoding=pb.PCM_F32LE), *allowed))
    for extra in (1, 2, 3):
        out.append(
            _case(f"s16-stereo-plus-{extra}b", "pcm", _pcm(s16 + bytes(extra), channels=2), INVALID)
        )
    for enc in (pb.ENCODING_UNSPECIFIED, 3, 99, -1, 2**31 - 1):
        out.append(_case(f"encoding-{enc}", "pcm", _pcm(s16, encoding=enc), INVALID))
    for rate in (0, -1, -16000, 1, 999, config.max_sample_rate + 1, 2**31 - 1, -(2**31)):
        out.append(_case(f"rate-{rate}", "pcm", _pcm(s16, rate=rate), INVALID))
    for rate in (1000, 8000, 22050, config.max_sample_rate):
        out.append(_case(f"rate-{rate}", "pcm", _pcm(s16, rate=rate), OK))
    for channels in (-1, -(2**31), config.max_channels + 1, 2**31 - 1):
        out.append(_case(f"channels-{channels}", "pcm", _pcm(s16, channels=channels), INVALID))
    for channels in (0, 1, 2, config.max_channels):
        out.append(_case(f"channels-{channels}", "pcm", _pcm(s16, channels=channels), OK))
    out.append(_case("no-audio", "pcm", pb.TokenizeRequest(), INVALID))
    out.append(_case("empty-pcm", "pcm", _pcm(b"", rate=0, encoding=0), INVALID))
    return out


def float_values(rng: np.random.Generator, config: ServeConfig) -> list[Case]:
    """float32 PCM (and a float WAV) holding NaN, Inf and denormals."""
    x = voice(0.2, 5)
    out = []
    for name, value, allowed in (
        ("nan", np.nan, INVALID),
        ("inf", np.inf, INVALID),
        ("-inf", -np.inf, INVALID),
        ("denormal", np.float32(1e-45), OK),
        ("max-float", np.finfo(np.float32).max, OK),
    ):
        for where in (0, len(x) // 2, len(x) - 1):
            y = x.copy()
            y[where] = value
            out.append(
                _case(
                    f"f32-{name}-at-{where}",
                    "float-values",
                    _pcm(y.tobytes(), encoding=pb.PCM_F32LE),
                    allowed,
                )
            )
        y = np.full_like(x, value)
        out.append(
            _case(
                f"f32-all-{name}", "float-values", _pcm(y.tobytes(), encoding=pb.PCM_F32LE), allowed
            )
        )
    nan_wav = io.BytesIO()
    sf.write(
        nan_wav,
        np.where(np.arange(len(x)) == 7, np.nan, x),
        SAMPLE_RATE,
        format="WAV",
        subtype="FLOAT",
    )
    wav = nan_wav.getvalue()
    wav = _patched(wav, wav.find(b"PEAK") + 12, bytes(4))  # its time stamp: same for a seed
    out.append(_case("wav-float-nan", "float-values", _file(wav), INVALID))
    return out


def signals(rng: np.random.Generator, config: ServeConfig) -> list[Case]:
    """Valid but unusual audio: silence, DC, clipped squares, one sample; every request
    option."""
    n = SAMPLE_RATE // 2
    square = np.sign(np.sin(2 * np.pi * 200 * np.arange(n) / SAMPLE_RATE)).astype(np.float32)
    audio = {
        "silence": np.zeros(n, np.float32),
        "dc": np.full(n, 0.5, np.float32),
        "dc-full-scale": np.full(n, -1.0, np.float32),
        "clipped-square": square,
        "square-over-full-scale": 4 * square,
        "one-sample": np.array([0.25], np.float32),
        "one-frame-minus-1": voice(0.02, 6)[:-1],
        "one-frame": voice(0.02, 6),
    }
    out = []
    for name, x in audio.items():
        for options in ({}, {"dedup": True}, {"full_utterance": True}):
            tag = "-".join(options) or "windows"
            out.append(
                _case(
                    f"{name}-f32-{tag}",
                    "signal",
                    _pcm(x.tobytes(), encoding=pb.PCM_F32LE, **options),
                    OK,
                )
            )
        if np.abs(x).max() <= 1:
            out.append(_case(f"{name}-wav", "signal", _file(encode(x, "WAV")), OK))
    return out


def durations(rng: np.random.Generator, config: ServeConfig) -> list[Case]:
    """Audio just under and just over ``max_request_seconds`` (PCM and WAV, at 16 and 8 kHz)
    and ``max_full_utterance_seconds``."""
    out = []
    for rate in (SAMPLE_RATE, 8000):
        limit = int(config.max_request_seconds * rate)
        for n, allowed in ((limit - 1, OK), (limit, OK), (limit + 1, TOO_MUCH)):
            x = np.zeros(n, "<i2")
            x[:: rate // 100] = 3000  # clicks: not silence
            out.append(
                _case(
                    f"pcm-{n}-samples-at-{rate}", "duration", _pcm(x.tobytes(), rate=rate), allowed
                )
            )
            if rate == SAMPLE_RATE:
                wav = io.BytesIO()
                sf.write(wav, x, rate, format="WAV", subtype="PCM_16")
                out.append(_case(f"wav-{n}-samples", "duration", _file(wav.getvalue()), allowed))
    longest = int(config.max_full_utterance_seconds * SAMPLE_RATE)
    for n, allowed in ((longest, OK), (longest + 1, TOO_MUCH)):
        x = voice(n / SAMPLE_RATE + 0.01, 7)[:n]
        out.append(
            _case(
                f"full-utterance-{n}-samples",
                "duration",
                _pcm(x.tobytes(), encoding=pb.PCM_F32LE, full_utterance=True),
                allowed,
            )
        )
    return out


ODD_NAMES = [
    "nope",
    "DEFAULT",
    "../models/DEFAULT",
    " ",
    "\u200b",
    "ナ" * 40,
    "\U0001f600",
    "e\u0301",
    "\u202eevil",
    "a\x00b",
    "x" * 10_000,
    "%s%n",
    "model\n",
]
"""Model names no service serves."""


def model_names(rng: np.random.Generator, config: ServeConfig) -> list[Case]:
    """Unknown model names (odd unicode included) for every call that takes one."""
    short = _pcm(voice(0.1, 8).tobytes(), encoding=pb.PCM_F32LE)
    out = []
    for i, name in enumerate(ODD_NAMES):
        request = pb.TokenizeRequest()
        request.CopyFrom(short)
        request.options.model = name
        out.append(_case(f"tokenize-model-{i}", "model-name", request, NOT_FOUND))
        out.append(
            _case(f"info-model-{i}", "model-name", pb.ModelInfoRequest(model=name), NOT_FOUND)
        )
        out.append(
            _case(
                f"synthesize-model-{i}",
                "model-name",
                pb.SynthesizeRequest(units=[1], model=name),
                NOT_FOUND,
            )
        )
        config_ = pb.StreamConfig(model=name, sample_rate=SAMPLE_RATE, encoding=pb.PCM_S16LE)
        out.append(
            _case(f"stream-model-{i}", "model-name", (pb.StreamRequest(config=config_),), NOT_FOUND)
        )
    return out


def synthesize(rng: np.random.Generator, config: ServeConfig) -> list[Case]:
    """Units that no vocoder has (negative, out of range, too many), durations of the wrong
    length or value, odd speakers; a few valid requests."""
    req = pb.SynthesizeRequest
    bad: list[tuple[str, pb.SynthesizeRequest]] = [
        ("empty", req()),
        ("negative", req(units=[1, -1, 2])),
        ("int32-min", req(units=[-(2**31)])),
        ("k-10000", req(units=[10_000])),
        ("int32-max", req(units=[2**31 - 1])),
        ("too-many", req(units=[1] * (MAX_UNITS + 1))),
        ("too-many-deduplicated", req(units=[1, 2] * MAX_UNITS, deduplicated=True)),
        ("a-million", req(units=[3] * 1_000_000)),
        ("durations-short", req(units=[1, 2, 3], durations=[1, 1])),
        ("durations-long", req(units=[1, 2], durations=[1, 1, 1])),
        ("durations-zero", req(units=[1, 2], durations=[1, 0])),
        ("durations-negative", req(units=[1, 2], durations=[-5, 2])),
        ("durations-sum-huge", req(units=[1, 2], durations=[2**31 - 1, 2**31 - 1])),
        ("durations-over-limit", req(units=[1], durations=[MAX_UNITS + 1])),
        ("durations-without-units", req(durations=[1, 2])),
        ("speaker-unknown", req(units=[1], speaker="nobody")),
        ("speaker-index-huge", req(units=[1], speaker="99999999999999999999")),
        ("speaker-negative", req(units=[1], speaker="-1")),
        ("speaker-unicode", req(units=[1], speaker="\U0001f600")),
    ]
    good = [
        ("one-unit", req(units=[0])),
        ("durations", req(units=[4, 2, 4], durations=[3, 1, 2])),
        ("deduplicated", req(units=[4, 2, 4], deduplicated=True)),
        ("speaker-1", req(units=[1, 2, 3], speaker="1")),
    ]
    return [_case(f"units-{n}", "synthesize", r, INVALID) for n, r in bad] + [
        _case(f"units-{n}", "synthesize", r, OK) for n, r in good
    ]


def metadata(rng: np.random.Generator, config: ServeConfig) -> list[Case]:
    """Unary calls with odd metadata: huge values, many headers, odd keys and values, missing,
    wrong or repeated API keys. Size limits answer RESOURCE_EXHAUSTED (gRPC's 8 KiB soft and
    16 KiB hard limits); what the client library refuses to send is classified ``client``."""
    good = _pcm(voice(0.1, 9).tobytes(), encoding=pb.PCM_F32LE)
    sized = (OK, TOO_MUCH)
    cases: list[tuple[str, tuple[tuple[str, str | bytes], ...], tuple[str, ...]]] = [
        *((f"value-{n}b", (("x-big", "a" * n),), sized) for n in (4000, 8200, 16_500, 1 << 20)),
        *(
            (f"{n}-headers", tuple((f"x-h{i}", "v" * 8) for i in range(n)), sized)
            for n in (10, 100, 400, 1000)
        ),
        ("upper-case-key", (("X-Odd", "v"),), (OK,)),
        ("key-with-space", (("x odd", "v"),), (OK,)),
        ("empty-key", (("", "v"),), (OK,)),
        ("pseudo-header", ((":authority", "evil"),), (OK,)),
        ("value-newline", (("x-odd", "a\r\nx-api-key: b"),), (OK,)),
        ("value-nul", (("x-odd", "a\x00b"),), (OK,)),
        ("value-unicode", (("x-odd", "h\u00e9llo"),), (OK,)),
        ("bin-value-str", (("x-odd-bin", "not bytes"),), (OK,)),
        ("bin-value-bytes", (("x-odd-bin", bytes(range(256))),), (OK,)),
        ("grpc-reserved-key", (("grpc-timeout", "1n"),), (OK, IDLE, INVALID)),
        ("content-type", (("content-type", "text/html"),), (OK, INVALID)),
        ("long-user-agent", (("user-agent", "u" * 5000),), (OK,)),
        ("key-x-api-key-bin", (("x-api-key-bin", b"\xff"),), (OK,)),
    ]
    out = [_case(f"md-{n}", "metadata", good, *a, metadata=m) for n, m, a in cases]
    if config.api_keys:
        for name, md in (
            ("no-key", ()),
            ("wrong-key", (("x-api-key", "wrong"),)),
            ("empty-key-value", (("x-api-key", ""),)),
            ("bearer-without-key", (("authorization", "Bearer "),)),
            ("basic-auth", (("authorization", "Basic " + "a" * 40),)),
            ("key-too-long", (("x-api-key", "k" * 8000),)),
            ("wrong-then-right", (("x-api-key", "wrong"), ("x-api-key", config.api_keys[0]))),
        ):
            out.append(
                _case(f"md-{name}", "metadata", good, UNAUTH, TOO_MUCH, metadata=md, auth=False)
            )
    return out


def streams(rng: np.random.Generator, config: ServeConfig) -> list[Case]:
    """Streams out of protocol: audio before the config, a second config (the only way to
    change the rate mid-stream), empty and 1-byte chunks, bad chunks, cancels after k
    messages; and two that stop sending (the idle timeout: slow)."""
    s16 = pb.StreamConfig(sample_rate=SAMPLE_RATE, encoding=pb.PCM_S16LE)
    f32 = pb.StreamConfig(sample_rate=SAMPLE_RATE, encoding=pb.PCM_F32LE)
    cfg, cfg32 = pb.StreamRequest(config=s16), pb.StreamRequest(config=f32)
    chunk = pb.StreamRequest(audio=(voice(0.3, 10) * 32767).astype("<i2").tobytes())

    def audio(data: bytes) -> pb.StreamRequest:
        return pb.StreamRequest(audio=data)

    def config_(**kw: Any) -> pb.StreamRequest:
        return pb.StreamRequest(config=pb.StreamConfig(**kw))

    nan = np.full(16, np.nan, np.float32).tobytes()
    cases: list[tuple[str, tuple[pb.StreamRequest, ...], tuple[str, ...]]] = [
        ("nothing", (), (INVALID,)),
        ("audio-first", (chunk, cfg), (INVALID,)),
        ("empty-message-first", (pb.StreamRequest(),), (INVALID,)),
        ("second-config", (cfg, chunk, cfg), (INVALID,)),
        (
            "second-config-8k",
            (cfg, chunk, config_(sample_rate=8000, encoding=pb.PCM_S16LE)),
            (INVALID,),
        ),
        ("config-only", (cfg,), (OK,)),
        ("zero-byte-chunks", (cfg, audio(b""), chunk, audio(b""), audio(b"")), (OK,)),
        ("one-byte-chunk", (cfg, chunk, audio(b"\x01")), (INVALID,)),
        ("odd-f32-chunk", (cfg32, audio(b"\0" * 6)), (INVALID,)),
        ("nan-chunk", (cfg32, audio(nan)), (INVALID,)),
        ("one-sample-chunks", (cfg, *(audio(b"\x01\x00") for _ in range(50))), (OK,)),
        ("rate-8000", (config_(sample_rate=8000, encoding=pb.PCM_S16LE), chunk), (INVALID,)),
        ("rate-0", (config_(sample_rate=0, encoding=pb.PCM_S16LE), chunk), (INVALID,)),
        (
            "rate-negative",
            (config_(sample_rate=-16000, encoding=pb.PCM_S16LE), chunk),
            (INVALID,),
        ),
        ("encoding-unset", (config_(sample_rate=SAMPLE_RATE), chunk), (INVALID,)),
        ("encoding-99", (config_(sample_rate=SAMPLE_RATE, encoding=99), chunk), (INVALID,)),
        (
            "channels-huge",
            (config_(sample_rate=SAMPLE_RATE, encoding=pb.PCM_S16LE, channels=2**31 - 1), chunk),
            (INVALID,),
        ),
        (
            "channels-negative",
            (config_(sample_rate=SAMPLE_RATE, encoding=pb.PCM_S16LE, channels=-2), chunk),
            (INVALID,),
        ),
        (
            "stereo",
            (config_(sample_rate=SAMPLE_RATE, encoding=pb.PCM_S16LE, channels=2), chunk),
            (OK,),
        ),
    ]
    out = [_case(f"stream-{n}", "stream", m, *a) for n, m, a in cases]
    messages = (cfg, chunk, chunk, chunk, chunk, chunk)
    for k in range(len(messages)):
        out.append(_case(f"stream-cancel-after-{k}", "stream", messages, CANCELLED, cancel_after=k))
    stall = config.idle_timeout_s + 2.0
    out.append(_case("stream-idle-after-config", "stream", (cfg,), IDLE, stall_s=stall))
    out.append(_case("stream-idle-after-audio", "stream", (cfg, chunk), IDLE, stall_s=stall))
    return out


FAMILIES: dict[str, Callable[[np.random.Generator, ServeConfig], Any]] = {
    "random-bytes": random_bytes,
    "truncated": truncated,
    "lying-header": lying_header,
    "bomb": bombs,
    "pcm": raw_pcm,
    "float-values": float_values,
    "signal": signals,
    "duration": durations,
    "model-name": model_names,
    "synthesize": synthesize,
    "metadata": metadata,
    "stream": streams,
}
"""Each family's cases: a list, or an endless iterator for the families that scale with n."""


def cases(seed: int, n: int, config: ServeConfig | None = None) -> list[Case]:
    """``n`` distinct cases, the same for the same seed, taken from the families by turns (each
    finite family in a seeded order) so that any ``n`` spreads over all of them; the random
    families are endless. ``config``: the limits of the service under test (default: its
    defaults)."""
    config = config or ServeConfig()
    rng = np.random.default_rng(seed)
    sources: dict[str, Iterator[Case]] = {}
    for family, make in FAMILIES.items():
        made = make(rng, config)
        sources[family] = iter(
            [made[i] for i in rng.permutation(len(made))] if isinstance(made, list) else made
        )
    out: list[Case] = []
    seen: set[tuple[Any, ...]] = set()
    while len(out) < n and sources:
        for family, source in list(sources.items()):
            case = next(source, None)
            if case is None:
                del sources[family]
            elif case.key() not in seen and len(out) < n:
                seen.add(case.key())
                out.append(case)
    return out


# ---- running --------------------------------------------------------------------------------

HEALTH_SERVICE = pb.DESCRIPTOR.services_by_name["Tokenizer"].full_name
LEGAL_KEY = re.compile(r"[0-9a-z_.-]+")


def sendable(metadata: tuple[tuple[str, str | bytes], ...]) -> bool:
    """Whether gRPC's client library sends ``metadata`` at all (its validate_metadata rules):
    lower-case keys of ``[0-9a-z_.-]``, bytes for ``-bin`` keys, printable ASCII otherwise."""
    for key, value in metadata:
        if not LEGAL_KEY.fullmatch(key) or key.endswith("-bin") != isinstance(value, bytes):
            return False
        if isinstance(value, str) and not all(" " <= ch <= "~" for ch in value):
            return False
    return True


@dataclass
class Outcome:
    """How one case ended: its status and where it came from (``server`` or ``client``)."""

    name: str
    family: str
    status: str
    source: str
    message: str
    seconds: float

    @property
    def label(self) -> str:
        return self.status if self.source == "server" else f"client:{self.status}"


@dataclass
class Report:
    """Every case's outcome, those the server should not have given, and any failed check
    (health not SERVING, the correct request failing or answering other units)."""

    expected_units: list[int]
    outcomes: list[Outcome] = field(default_factory=list)
    disallowed: list[Outcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.disallowed and not self.failures

    def counts(self) -> dict[str, dict[str, int]]:
        """Cases per family and status label."""
        out: dict[str, Counter[str]] = {}
        for o in self.outcomes:
            out.setdefault(o.family, Counter())[o.label] += 1
        return {f: dict(sorted(c.items())) for f, c in sorted(out.items())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "cases": len(self.outcomes),
            "ok": self.ok,
            "counts": self.counts(),
            "disallowed": [vars(o) for o in self.disallowed],
            "failures": self.failures,
            "seconds": round(sum(o.seconds for o in self.outcomes), 1),
        }


def _stream_requests(case: Case, sent: threading.Event, done: threading.Event) -> Iterator[Any]:
    """The case's messages; then, for a cancel, ``sent`` and silence until ``done``; for a
    stall, silence for ``stall_s`` before the client closes its side."""
    k = len(case.request) if case.cancel_after is None else case.cancel_after
    yield from case.request[:k]
    sent.set()
    if case.cancel_after is not None or case.stall_s:
        done.wait(case.stall_s or TIMEOUT_S)


def _send(channel: grpc.Channel, case: Case, metadata: list[tuple[str, str | bytes]]) -> None:
    """Make the case's call; an RpcError says how it ended."""
    stub = pb_grpc.TokenizerStub(channel)
    if case.call != "StreamTokenize":
        getattr(stub, case.call)(case.request, metadata=metadata, timeout=TIMEOUT_S)
        return
    sent, done = threading.Event(), threading.Event()
    try:
        call = stub.StreamTokenize(
            _stream_requests(case, sent, done), metadata=metadata, timeout=TIMEOUT_S
        )
        if case.cancel_after is not None:
            sent.wait(TIMEOUT_S)
            call.cancel()
        for _ in call:
            pass
    finally:
        done.set()


def run_case(address: str, case: Case, api_key: str | None) -> Outcome:
    """Send one case on a channel of its own."""
    metadata: list[tuple[str, str | bytes]] = (
        [("x-api-key", api_key)] if api_key and case.auth else []
    )
    metadata += case.metadata
    start = time.monotonic()
    status, source, message = OK, "server", ""
    with grpc.insecure_channel(address) as channel:
        try:
            _send(channel, case, metadata)
        except grpc.RpcError as e:
            status, message = e.code().name, e.details() or ""
            cancelled = case.cancel_after is not None and status == CANCELLED
            source = "client" if cancelled or not sendable(case.metadata) else "server"
        except (TypeError, ValueError) as e:  # refused before sending (e.g. str for -bin)
            status, source, message = "REFUSED", "client", f"{type(e).__name__}: {e}"
    return Outcome(case.name, case.family, status, source, message, time.monotonic() - start)


def allowed(case: Case, outcome: Outcome) -> bool:
    """Whether ``outcome`` is one the case allows; client-side refusals and cancels are never
    the server's failures."""
    if outcome.source == "client":
        return outcome.status == CANCELLED or not sendable(case.metadata)
    return outcome.status in case.allowed and outcome.status not in NEVER


def correct_request() -> pb.TokenizeRequest:
    """The request the checks send: one second of :func:`voice` as a WAV file."""
    return _file(encode(voice(1.0, 99), "WAV"))


class Checks:
    """The health check and the correct request, on one channel of their own."""

    def __init__(self, address: str, api_key: str | None) -> None:
        self.channel = grpc.insecure_channel(address)
        self.metadata = [("x-api-key", api_key)] if api_key else []
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.stub = pb_grpc.TokenizerStub(self.channel)
        self.request = correct_request()

    def serving(self) -> str | None:
        """None when health answers SERVING, else what it answered."""
        request = health_pb2.HealthCheckRequest(service=HEALTH_SERVICE)
        try:
            status = self.health.Check(request, timeout=30, wait_for_ready=True).status
        except grpc.RpcError as e:
            return f"health check failed: {e.code().name}: {e.details()}"
        if status != health_pb2.HealthCheckResponse.SERVING:
            return f"expected health SERVING, found {health_pb2.HealthCheckResponse.Name(status)}"
        return None

    def units(self) -> list[int]:
        answer = self.stub.Tokenize(
            self.request, metadata=self.metadata, timeout=TIMEOUT_S, wait_for_ready=True
        )
        return list(answer.units)

    def correct(self, expected: list[int]) -> str | None:
        """None when the correct request answers ``expected``, else what went wrong."""
        try:
            units = self.units()
        except grpc.RpcError as e:
            return f"correct request failed: {e.code().name}: {e.details()}"
        if units != expected:
            return f"expected the correct request's {len(expected)} units, found other units"
        return None


def run(
    address: str,
    cases: list[Case],
    api_key: str | None,
    on_case: Callable[[Case, Outcome], None] | None = None,
) -> Report:
    """Send every case to the service at ``address``, checking health after each and the
    correct request every :data:`CHECK_EVERY` cases and at the end."""
    checks = Checks(address, api_key)
    try:
        report = Report(expected_units=checks.units())
        for i, case in enumerate(cases, 1):
            outcome = run_case(address, case, api_key)
            report.outcomes.append(outcome)
            if not allowed(case, outcome):
                report.disallowed.append(outcome)
            problems = [checks.serving()]
            if i % CHECK_EVERY == 0 or i == len(cases):
                problems.append(checks.correct(report.expected_units))
            report.failures += [f"after {case.name}: {p}" for p in problems if p]
            if on_case:
                on_case(case, outcome)
        return report
    finally:
        checks.channel.close()


# ---- memory ---------------------------------------------------------------------------------


class RssSampler:
    """Samples ``measure()`` (bytes) every ``every_s`` in a thread, from entry to exit."""

    def __init__(self, measure: Callable[[], int], every_s: float = 0.2) -> None:
        self.measure, self.every_s = measure, every_s
        self.start = self.peak = self.end = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, self.measure())

    def __enter__(self) -> RssSampler:
        self.start = self.peak = self.measure()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.end = self.measure()
        self.peak = max(self.peak, self.end)


# ---- command --------------------------------------------------------------------------------


def table(report: Report) -> str:
    """Cases per family (rows) and status (columns)."""
    counts = report.counts()
    labels = sorted({label for c in counts.values() for label in c})
    width = max(len(f) for f in counts) if counts else 6
    rows = ["family".ljust(width) + "".join(f"  {label:>{len(label)}}" for label in labels)]
    for family, c in counts.items():
        cells = "".join(f"  {c.get(label, 0):>{len(label)}}" for label in labels)
        rows.append(family.ljust(width) + cells)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--addr", required=True, help="HOST:PORT of the service")
    p.add_argument("--api-key", help="a key the service accepts (with keys: auth cases too)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cases", type=int, default=1200)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the service's ServeConfig settings, as given to speechtok serve",
    )
    p.add_argument("--skip-slow", action="store_true", help="leave out idle-timeout streams")
    p.add_argument("--rss-pid", type=int, help="report the peak RSS of this process tree")
    p.add_argument("--json", action="store_true", help="only JSON on stdout")
    args = p.parse_args(argv)
    config = load_run_config(ServeConfig(), None, args.set)
    if args.api_key:
        config = load_run_config(config, None, [f"api_keys=[{json.dumps(args.api_key)}]"])
    corpus = [c for c in cases(args.seed, args.cases, config) if not (args.skip_slow and c.slow)]
    measure = (lambda: rss_bytes(process_tree(args.rss_pid))) if args.rss_pid else (lambda: 0)
    with RssSampler(measure) as rss:
        report = run(args.addr, corpus, args.api_key)
    summary = {"seed": args.seed, **report.to_dict()}
    if args.rss_pid:
        summary["rss_mb"] = {
            k: round(v / 2**20, 1) for k, v in vars(rss).items() if k in ("start", "peak", "end")
        }
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0 if report.ok else 1
    print(table(report))
    print(
        f"{len(report.outcomes)} cases in {summary['seconds']} s (seed {args.seed}); "
        f"{len(report.disallowed)} disallowed statuses, {len(report.failures)} failed checks"
    )
    for o in report.disallowed:
        print(f"DISALLOWED {o.family}/{o.name}: {o.label}: {o.message}")
    for failure in report.failures:
        print(f"FAILED CHECK {failure}")
    if args.rss_pid:
        print("server process tree RSS (MB): " + json.dumps(summary["rss_mb"]))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
