"""Audio decoding: good inputs decode as documented, every bad input raises AudioError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tokenizer.audio import AudioLimits, decode_audio, decode_pcm, to_mono_16k, write_flac
from tokenizer.errors import AudioError, AudioTooLongError


def encode(x: np.ndarray, sr: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def tone(seconds: float = 1.0, sr: int = 16000, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()])


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_containers_decode_to_16k_float32(fmt: str) -> None:
    x = decode_audio(encode(tone(), 16000, fmt))
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 16000) <= 1 and abs(peak_hz(x) - 440) < 2


def test_resample_and_downmix() -> None:
    left, right = tone(1.0, 48000, 440), tone(1.0, 48000, 1000) * 0.0
    x = decode_audio(encode(np.stack([left, right], 1), 48000))
    assert len(x) == 16000
    assert abs(peak_hz(x) - 440) < 2
    assert np.max(np.abs(x)) == pytest.approx(0.25, abs=0.01)  # mean of the two channels


def test_path_and_bytes_agree(tmp_path: Path) -> None:
    data = encode(tone(), 16000, "FLAC")
    (tmp_path / "a.flac").write_bytes(data)
    np.testing.assert_array_equal(decode_audio(tmp_path / "a.flac"), decode_audio(data))


def test_pcm16_and_f32() -> None:
    pcm = (tone() * 32768).astype("<i2")
    a = decode_pcm(pcm.tobytes(), sample_rate=16000, encoding="pcm16")
    np.testing.assert_allclose(a, pcm / 32768.0, atol=1e-7)
    stereo = np.stack([tone(), tone()], 1).astype("<f4")
    b = decode_pcm(stereo.tobytes(), sample_rate=16000, encoding="f32", channels=2)
    np.testing.assert_allclose(b, tone(), atol=1e-7)


def expect_error(match: str, fn, *args, **kw) -> AudioError:  # type: ignore[no-untyped-def]
    with pytest.raises(AudioError, match=match) as info:
        fn(*args, **kw)
    assert "expected" in str(info.value)
    return info.value


def test_empty_inputs() -> None:
    expect_error("found 0 bytes", decode_audio, b"")
    expect_error("found 0 bytes", decode_pcm, b"", sample_rate=16000)
    expect_error("found none", decode_audio, encode(np.zeros(0, np.float32), 16000))


def test_corrupt_and_truncated() -> None:
    expect_error("undecodable", decode_audio, b"this is not audio at all" * 20)
    wav = encode(tone(), 16000, "WAV")
    expect_error("truncated", decode_audio, wav[: len(wav) // 2])
    flac = encode(tone(), 16000, "FLAC")
    expect_error("undecodable", decode_audio, flac[: len(flac) // 2])
    expect_error("found 3 bytes", decode_pcm, b"\x00\x01\x02", sample_rate=16000)


def test_nan_and_inf() -> None:
    x = tone()
    x[100], x[200] = np.nan, np.inf
    expect_error(
        "2 NaN/Inf values .first at sample 100", decode_audio, encode(x, 16000, "WAV", "FLOAT")
    )
    expect_error(
        "NaN/Inf", decode_pcm, x.astype("<f4").tobytes(), sample_rate=16000, encoding="f32"
    )


def test_sample_rates() -> None:
    expect_error("found 0 Hz", decode_pcm, b"\x00\x00" * 10, sample_rate=0)
    expect_error("found 10000000 Hz", decode_pcm, b"\x00\x00" * 10, sample_rate=10_000_000)
    expect_error("found 200 Hz", decode_audio, encode(tone(1.0, 200, 50), 200))


def test_max_duration() -> None:
    limits = AudioLimits(max_seconds=0.5)
    with pytest.raises(AudioTooLongError, match=r"at most 0\.5 s of audio, found 1\.0 s"):
        decode_audio(encode(tone(), 16000), limits=limits)
    with pytest.raises(AudioTooLongError):
        decode_pcm(np.zeros(16000, "<i2").tobytes(), sample_rate=16000, limits=limits)


def test_unsupported_encodings() -> None:
    expect_error("'mulaw'", decode_pcm, b"\x00" * 10, sample_rate=8000, encoding="mulaw")
    expect_error("found AU", decode_audio, encode(tone(), 16000, "AU"))
    expect_error("channels", decode_pcm, b"\x00\x00" * 4, sample_rate=16000, channels=0)


def test_unreadable_path(tmp_path: Path) -> None:
    expect_error("readable audio file", decode_audio, tmp_path / "missing.wav")


def test_write_flac_refuses_clipping(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"peak 1\.500"):
        write_flac(tmp_path / "x.flac", np.array([0.0, 1.5], np.float32))


def test_many_channels_decode_in_the_memory_of_one() -> None:
    """A small FLAC declaring 8 channels at 48 kHz (a decompression bomb within the limits)
    decodes block by block: peak memory near one channel, not eight; the units are those of
    the whole-array downmix."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x = np.zeros((48000 * 30, 8), np.float32)
    x[::997] = rng.uniform(-0.5, 0.5, (len(x[::997]), 8))
    data = encode(x, 48000, "FLAC")
    assert len(data) < x.nbytes // 10  # the bomb: a small file, a large decode
    tracemalloc.start()
    out = decode_audio(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    one_channel = len(x) * 4
    assert peak < 3 * one_channel < x.nbytes  # not the 8 channels at once
    whole, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(out, to_mono_16k(whole, 48000))  # as decoded all at once


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "AIFF", "MP3"])
def test_truncated_files_are_refused_not_padded(fmt: str) -> None:
    """A file cut short (its header still declares every frame) is an error: never silently
    shorter, never filled with zeros or stale samples."""
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 48000).astype(np.float32)
    data = encode(x, 16000, fmt)
    for cut in (len(data) - 1000, len(data) // 2):
        with pytest.raises(AudioError, match=r"truncated|undecodable|expected"):
            out = decode_audio(data[:cut])
            raise AssertionError(f"{fmt} cut at {cut} decoded to {len(out)} samples")
