"""Audio decoding and validation: bytes, files or raw PCM in; 16 kHz mono float32 out.

The only changes made to the signal are the documented ones: channels are averaged (downmix)
and the rate is converted to 16 kHz with soxr (``HQ`` quality, deterministic). Anything else
that is wrong with the input raises :class:`~tokenizer.errors.AudioError` with a message that
says what was expected and what was found; nothing is clipped, padded or repaired silently.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tokenizer.errors import AudioError, AudioTooLongError

SAMPLE_RATE = 16000
"""The rate every model in speechtok works at (Hz)."""

CONTAINERS = ("WAV", "WAVEX", "RF64", "FLAC", "OGG", "MP3", "AIFF")
"""Container formats accepted by :func:`decode_audio` (libsndfile format names)."""

PcmEncoding = Literal["pcm16", "f32"]
PCM_DTYPES: dict[str, np.dtype] = {"pcm16": np.dtype("<i2"), "f32": np.dtype("<f4")}

AudioSource = bytes | bytearray | memoryview | str | Path


@dataclass(frozen=True, kw_only=True)
class AudioLimits:
    """What :func:`decode_audio` and :func:`decode_pcm` accept."""

    max_seconds: float = 3600.0
    """Longest accepted input (seconds of audio, at the input's own rate)."""
    min_sample_rate: int = 1000
    """Lowest accepted input sample rate (Hz)."""
    max_sample_rate: int = 384000
    """Highest accepted input sample rate (Hz)."""
    max_channels: int = 64
    """Most accepted channels (interleaved); they are averaged to mono."""


DEFAULT_LIMITS = AudioLimits()


def decode_audio(source: AudioSource, *, limits: AudioLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode an encoded file (WAV/FLAC/OGG/MP3/AIFF, as bytes or a path) to 16 kHz mono float32."""
    name = str(source) if isinstance(source, str | Path) else "audio bytes"
    if isinstance(source, str | Path):
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise AudioError(f"expected a readable audio file, found {e.strerror}: {source}") from e
    else:
        data = bytes(source)
    if not data:
        raise AudioError(f"expected encoded audio, found 0 bytes ({name})")
    _check_complete(data, name)
    import soundfile as sf  # here: torch-only machines (a GPU bench) import this module too

    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            fmt, sr, channels, frames = f.format, f.samplerate, f.channels, f.frames
            _check_header(name, fmt, sr, channels, frames, limits)
            x = _read_mono(f, frames, name)
    except sf.LibsndfileError as e:
        raise AudioError(
            f"expected a {'/'.join(CONTAINERS)} file, found undecodable data "
            f"({name}: {e.error_string})"
        ) from e
    return to_mono_16k(x, sr)


def _read_mono(f: Any, frames: int, name: str, block: int = 1 << 16) -> np.ndarray:
    """Every frame of the open ``soundfile.SoundFile`` ``f`` averaged to mono block by block,
    so memory holds one channel however many the header declares (a small compressed file
    may declare many); exactly ``frames`` of them, all finite."""
    out = np.empty(frames, np.float32)
    at, bad, first = 0, 0, -1
    while at < frames:
        x = f.read(min(block, frames - at), dtype="float32", always_2d=True)
        if not len(x):
            break
        if not np.isfinite(x).all():
            rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
            first = int(at + rows[0]) if first < 0 else first
            bad += int((~np.isfinite(x)).sum())
        out[at : at + len(x)] = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
        at += len(x)
    if at == frames:
        at += len(f.read(1, dtype="float32", always_2d=True))  # more than the header says?
    if at != frames:
        raise AudioError(
            f"expected {frames} samples as the {f.format} header says, found {at}"
            f"{': the file is truncated' if at < frames else ''} ({name})"
        )
    if bad:
        raise AudioError(
            f"expected finite samples, found {bad} NaN/Inf values (first at sample {first}) "
            f"({name})"
        )
    return out


def decode_pcm(
    buf: bytes | bytearray | memoryview,
    *,
    sample_rate: int,
    encoding: str = "pcm16",
    channels: int = 1,
    limits: AudioLimits = DEFAULT_LIMITS,
) -> np.ndarray:
    """Decode raw little-endian interleaved PCM (``pcm16`` or ``f32``) to 16 kHz mono float32."""
    if encoding not in PCM_DTYPES:
        raise AudioError(f"expected encoding one of {sorted(PCM_DTYPES)}, found {encoding!r}")
    _check_rate(sample_rate, limits)
    if not 1 <= channels <= limits.max_channels:
        raise AudioError(f"expected 1..{limits.max_channels} channels, found {channels}")
    width = PCM_DTYPES[encoding].itemsize * channels
    if len(buf) == 0:
        raise AudioError(f"expected {encoding} samples, found 0 bytes")
    if len(buf) % width:
        raise AudioError(
            f"expected a multiple of {width} bytes ({encoding} x {channels} channel(s)), "
            f"found {len(buf)} bytes"
        )
    frames = len(buf) // width
    _check_duration(frames, sample_rate, limits, "PCM buffer")
    x = np.frombuffer(buf, dtype=PCM_DTYPES[encoding]).reshape(frames, channels)
    if encoding == "pcm16":
        x = x.astype(np.float32) / 32768.0
    return _finish(x.astype(np.float32, copy=False), sample_rate, "PCM buffer")


def stream_chunk(audio: np.ndarray, received: int, max_samples: int | None) -> np.ndarray:
    """A stream's next chunk of 16 kHz mono float audio as float32, checked: 1-D float, finite,
    and within ``max_samples`` together with the ``received`` samples before it."""
    audio = np.asarray(audio)
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(
            f"expected 1-D float audio chunks, found {audio.dtype} of shape {list(audio.shape)}"
        )
    if not np.all(np.isfinite(audio)):
        raise AudioError("expected finite audio samples, found NaN or Inf")
    if max_samples is not None and received + len(audio) > max_samples:
        raise AudioTooLongError(
            f"expected at most {max_samples} samples in a stream, found {received + len(audio)}"
        )
    return audio.astype(np.float32)


def to_mono_16k(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Average channels of a ``(frames, channels)`` or ``(frames,)`` array, resample to 16 kHz."""
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    x = np.ascontiguousarray(x, dtype=np.float32)
    if sample_rate != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return x


def write_flac(path: str | Path, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float audio as 16-bit FLAC; samples outside [-1, 1] are an error, not clipped."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 1.0:
        raise AudioError(f"expected samples in [-1, 1] to write 16-bit FLAC, found peak {peak:.3f}")
    import soundfile as sf

    sf.write(str(path), x, sample_rate, format="FLAC", subtype="PCM_16")


CHUNKED: dict[bytes, tuple[str, Literal["little", "big"], bytes]] = {
    b"RIFF": ("WAV", "little", b"data"),
    b"RF64": ("RF64", "little", b"data"),
    b"FORM": ("AIFF", "big", b"SSND"),
}
"""Containers whose sample chunk declares its size: (name, byte order, sample chunk id)."""
UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
"""Sizes a streamed file declares when it did not know its length."""


def _check_complete(data: bytes, name: str) -> None:
    """libsndfile reads a truncated WAV, RF64 or AIFF without complaint (it decodes what is
    present): compare the size the sample chunk declares (for RF64, its ``ds64`` chunk) with the
    bytes present. Streamed files that declare an unknown size pass."""
    if len(data) < 12 or data[:4] not in CHUNKED or data[8:12] not in (b"WAVE", b"AIFF", b"AIFC"):
        return
    kind, order, samples = CHUNKED[data[:4]]
    ds64, pos = None, 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], order)
        if chunk == b"ds64" and pos + 24 <= len(data):  # riff size, then data size (64 bits)
            ds64 = int.from_bytes(data[pos + 16 : pos + 24], "little")
        if chunk == samples:
            declared = ds64 if size == 0xFFFFFFFF and ds64 is not None else size
            present = len(data) - pos - 8
            if declared not in UNKNOWN_SIZES and present < declared:
                raise AudioError(
                    f"expected {declared} bytes of samples as the {kind} header says, found "
                    f"{present}: the file is truncated ({name})"
                )
            return
        pos += 8 + size + (size & 1)


def _check_header(
    name: str, fmt: str, sr: int, channels: int, frames: int, limits: AudioLimits
) -> None:
    if fmt not in CONTAINERS:
        raise AudioError(f"expected one of {'/'.join(CONTAINERS)}, found {fmt} ({name})")
    _check_rate(sr, limits)
    if not 1 <= channels <= limits.max_channels:
        raise AudioError(f"expected 1..{limits.max_channels} channels, found {channels} ({name})")
    _check_duration(frames, sr, limits, name)


def _check_rate(sr: int, limits: AudioLimits) -> None:
    if not limits.min_sample_rate <= sr <= limits.max_sample_rate:
        raise AudioError(
            f"expected a sample rate in {limits.min_sample_rate}..{limits.max_sample_rate} Hz, "
            f"found {sr} Hz"
        )


def _check_duration(frames: int, sr: int, limits: AudioLimits, name: str) -> None:
    if frames <= 0:
        raise AudioError(f"expected at least one sample, found none ({name})")
    seconds = frames / sr
    if seconds > limits.max_seconds:
        raise AudioTooLongError(
            f"expected at most {limits.max_seconds:g} s of audio, found {seconds:.1f} s ({name})"
        )


def _finish(x: np.ndarray, sr: int, name: str) -> np.ndarray:
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise AudioError(
            f"expected finite samples, found {int(bad.sum())} NaN/Inf values "
            f"(first at sample {first}) ({name})"
        )
    return to_mono_16k(x, sr)
