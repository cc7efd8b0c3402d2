"""Distortions: deterministic for a seed, at the SNR asked for, length and alignment kept."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate

from tests.conftest import speech_like
from tokenizer.distort.channel import CODECS, codec_round_trip, telephone
from tokenizer.distort.conditions import (
    FAMILIES,
    PROBE_CONDITIONS,
    Condition,
    NoiseSources,
    apply,
    draw,
    rng_for,
)
from tokenizer.distort.music import music_bank
from tokenizer.distort.noise import COLOURS, coloured_noise, mix_at_snr, power
from tokenizer.distort.rooms import reverberate, room_response
from tokenizer.distort.vocoding import lpc_vocode
from tokenizer.errors import InvalidInputError

SR = 16000


@pytest.fixture(scope="module")
def sources() -> NoiseSources:
    voices = [speech_like(SR * 2, seed) for seed in range(8)]
    return NoiseSources(voices, [f"v{i % 4}" for i in range(8)], music_bank([0, 1], 2, 4.0))


def _lag(y: np.ndarray, x: np.ndarray) -> int:
    c = correlate(y, x, "full", method="fft")
    return int(np.argmax(c)) - (len(x) - 1)


def _snr_of_mix(y: np.ndarray, clean: np.ndarray, noise: np.ndarray) -> float:
    """The SNR inside ``y = a * clean + b * noise`` (least squares for a and b)."""
    (a, b), *_ = np.linalg.lstsq(np.stack([clean, noise], 1).astype(np.float64), y, rcond=None)
    return 10 * np.log10(power(a * clean) / power(b * noise))


@pytest.mark.parametrize("snr", [20.0, 5.0, 0.0, -5.0])
@pytest.mark.parametrize("colour", sorted(COLOURS))
def test_noise_hits_its_snr(snr: float, colour: str) -> None:
    clean = speech_like(SR * 2, 3)
    noise = coloured_noise(len(clean), COLOURS[colour], np.random.default_rng(1))
    y = mix_at_snr(clean, noise, snr)  # peaks past 0.99 scale both: the ratio stays
    assert abs(_snr_of_mix(y, clean, noise) - snr) < 0.1
    assert np.max(np.abs(y)) <= 0.99 + 1e-6


def test_noise_colours_have_their_slopes() -> None:
    """Power per octave: flat white rises 3 dB an octave, pink stays, brown falls 3 dB."""
    for colour, slope in (("white", 3.0), ("pink", 0.0), ("brown", -3.0)):
        x = coloured_noise(SR * 8, COLOURS[colour], np.random.default_rng(0))
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        bands = [spec[(f >= lo) & (f < 2 * lo)].sum() for lo in (250, 500, 1000, 2000)]
        measured = np.mean(np.diff(10 * np.log10(bands)))
        assert abs(measured - slope) < 0.6, (colour, measured)


@pytest.mark.parametrize("condition", PROBE_CONDITIONS, ids=lambda c: c.label)
def test_every_condition_is_seeded_and_keeps_length(
    condition: Condition, sources: NoiseSources
) -> None:
    clean = speech_like(SR * 2, 5)
    a = apply(clean, condition, rng_for("utt", 0), sources, "v0")
    b = apply(clean, condition, rng_for("utt", 0), sources, "v0")
    c = apply(clean, condition, rng_for("utt", 1), sources, "v0")
    assert a.dtype == np.float32 and len(a) == len(clean) and np.isfinite(a).all()
    assert np.array_equal(a, b)
    if condition.family not in ("telephone", "codec"):  # the channels have no randomness
        assert not np.array_equal(a, c)
    assert np.max(np.abs(a)) <= 1.0


def test_babble_never_uses_the_speakers_own_voice() -> None:
    own = speech_like(SR, 0)
    others = [speech_like(SR, seed) for seed in (1, 2, 3)]
    with_own = NoiseSources([own, *others], ["me", "a", "b", "c"], talkers=(3, 3))
    without = NoiseSources(others, ["a", "b", "c"], talkers=(3, 3))
    babble = Condition("babble", 0.0)
    y = apply(own, babble, rng_for("u", 0), with_own, "me")
    assert np.array_equal(y, apply(own, babble, rng_for("u", 0), without, "me"))
    assert not np.array_equal(y, apply(own, babble, rng_for("u", 0), with_own, None))
    with pytest.raises(InvalidInputError, match="babble"):
        apply(own, babble, rng_for("u", 0), NoiseSources([own], ["me"]), "me")


def test_reverb_keeps_length_and_alignment() -> None:
    x = speech_like(SR * 2, 7)
    for rt60 in (0.3, 1.0):
        rir = room_response((rt60, rt60), np.random.default_rng(0))
        assert np.argmax(np.abs(rir)) == 0 and rir[0] == pytest.approx(1.0)
        y = reverberate(x, rir)
        assert len(y) == len(x) and _lag(y, x) == 0


def test_channels_keep_alignment_and_codecs_their_bitrates() -> None:
    x = speech_like(SR * 3, 2)
    assert _lag(telephone(x), x) == 0
    spec = np.abs(np.fft.rfft(telephone(x))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    assert spec[f > 4200].sum() < 1e-4 * spec.sum()  # nothing above the 8 kHz line's band
    for name in CODECS:
        y, kbps = codec_round_trip(x, name)
        expected = float(name.split("-")[1].rstrip("k"))
        assert len(y) == len(x) and abs(_lag(y, x)) <= 1, name
        assert 0.5 * expected < kbps < 1.6 * expected, (name, kbps)


def _band_levels(x: np.ndarray) -> np.ndarray:
    """Log energies of 8 bands of 500 Hz in 20 ms frames ``[frames, 8]``."""
    frames = x[: len(x) // 320 * 320].reshape(-1, 320) * np.hanning(320)
    spec = np.abs(np.fft.rfft(frames)) ** 2
    return np.log10(spec[:, 1:161].reshape(len(spec), 8, 20).sum(-1) + 1e-9)


def test_lpc_vocoding_keeps_length_timing_and_envelope() -> None:
    x = speech_like(SR * 3, 4)
    y = lpc_vocode(x, rng_for("u", 0))
    assert y.dtype == np.float32 and len(y) == len(x) and np.max(np.abs(y)) <= 1.0
    assert np.array_equal(y, lpc_vocode(x, rng_for("u", 0)))
    assert not np.array_equal(y, lpc_vocode(x, rng_for("u", 1)))  # the noise is drawn
    gap = x.copy()
    gap[SR : 3 * SR // 2] = 0.0  # silence from 1.0 to 1.5 s: onsets must not move
    loud = _band_levels(lpc_vocode(gap, rng_for("u", 0))).max(1) > _band_levels(x).max() - 3
    assert not loud[51:74].any() and loud[76:].all()  # 20 ms frames, the gap 50-74
    a, b = _band_levels(x), _band_levels(y)
    loud = a.max(1) > a.max() - 3  # frames within 30 dB of the loudest
    assert np.corrcoef(a[loud].ravel(), b[loud].ravel())[0, 1] > 0.8  # the envelope stays
    assert np.corrcoef(x, y)[0, 1] < 0.9  # the fine structure does not
    assert 0.5 < np.sqrt(power(y) / power(x)) < 2.0
    silence = np.zeros(SR, np.float32)
    assert np.array_equal(lpc_vocode(silence, rng_for("u", 0)), silence)
    assert np.array_equal(apply(x, Condition.parse("lpc"), rng_for("u", 0)), y)


def test_music_is_reproducible() -> None:
    a, b = music_bank([3, 4], 1, 3.0)[0], music_bank([3, 4], 1, 3.0)[0]
    assert len(a) == 3 * SR and np.array_equal(a, b)
    assert not np.array_equal(a, music_bank([3, 5], 1, 3.0)[0])


def test_conditions_parse_draw_and_refuse() -> None:
    assert Condition.parse("pink:5") == Condition("pink", 5.0)
    assert Condition.parse("codec:opus-8k") == Condition("codec", "opus-8k")
    assert Condition.parse("telephone").label == "telephone"
    assert Condition.parse("lpc") == Condition("lpc")
    for bad in ("rain:5", "pink", "codec:flac", "telephone:3", "lpc:18"):
        with pytest.raises(InvalidInputError):
            Condition.parse(bad)
    rng = np.random.default_rng(0)
    drawn = [draw(rng, FAMILIES, (-5, 20), (0.2, 1.0)) for _ in range(200)]
    assert {c.family for c in drawn} == set(FAMILIES)
    snrs = [c.level for c in drawn if c.family == "pink"]
    assert all(isinstance(s, float) and -5 <= s <= 20 for s in snrs)
    with pytest.raises(InvalidInputError, match="silent"):
        mix_at_snr(np.zeros(100, np.float32), np.ones(100, np.float32), 5.0)
    silence = np.zeros(SR, np.float32)  # nothing to set an SNR against: left as it is
    assert np.array_equal(apply(silence, Condition("pink", 5.0), rng_for("u", 0)), silence)
