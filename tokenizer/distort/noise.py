"""Additive noise at a chosen signal-to-noise ratio: coloured Gaussian noise (white, pink, brown:
power falling as 1/f^beta), machine hum (mains harmonics and a wavering motor tone over a little
broadband hiss), babble (other talkers summed), and the mix itself.

SNR is the ratio of the whole clean signal's mean power to the whole noise's (the convention of
most noisy-speech sets); :func:`mix_at_snr` scales the noise to hit it exactly, and when the
mixture would exceed the peak scales both together, which keeps the ratio.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tokenizer.audio import SAMPLE_RATE
from tokenizer.errors import InvalidInputError

COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
"""Noise colour -> beta, the exponent of its power spectrum 1/f^beta."""

MAX_PEAK = 0.99


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """10 log10 of the clean signal's mean power over the noise's."""
    return 10.0 * float(np.log10(power(clean) / power(noise)))


def coloured_noise(n: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of Gaussian noise whose power spectrum falls as 1/f^beta (0 white, 1 pink,
    2 brown), unit RMS, made by shaping white noise's spectrum."""
    if n < 2:
        raise InvalidInputError(f"expected at least 2 samples of noise, found {n}")
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1]  # no infinite gain at DC; the mean is removed below
    x = np.fft.irfft(spectrum * f ** (-beta / 2.0), n)
    x -= x.mean()
    return (x / np.sqrt(power(x))).astype(np.float32)


def hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of machine noise, unit RMS: mains hum (50 or 60 Hz and its first harmonics,
    random amplitudes), a motor or fan tone that wavers slowly around 100-1500 Hz, and pink hiss
    20 dB below the tones."""
    t = np.arange(n) / SAMPLE_RATE
    mains = float(rng.choice([50.0, 60.0]))
    x = np.zeros(n)
    for k in range(1, 6):
        x += rng.uniform(0.1, 1.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3))
    tone = rng.uniform(100.0, 1500.0)
    wobble = 0.02 * tone * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t)
    phase = 2 * np.pi * np.cumsum(tone + wobble) / SAMPLE_RATE
    x += rng.uniform(0.3, 1.0) * (np.sin(phase) + 0.3 * np.sin(2 * phase))
    x /= np.sqrt(power(x))
    x += 0.1 * coloured_noise(n, 1.0, rng)
    return (x / np.sqrt(power(x))).astype(np.float32)


def babble(
    n: int, pool: Sequence[np.ndarray], talkers: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` samples of ``talkers`` utterances drawn from ``pool`` spoken at once, unit RMS:
    each at its own level (within 6 dB), started at a random point and looped to length."""
    if len(pool) < talkers:
        raise InvalidInputError(f"expected at least {talkers} babble utterances, found {len(pool)}")
    x = np.zeros(n)
    for i in rng.choice(len(pool), talkers, replace=False):
        voice = looped(np.asarray(pool[int(i)], dtype=np.float64), n, rng)
        x += voice / np.sqrt(max(power(voice), 1e-12)) * 10 ** (rng.uniform(-3, 3) / 20)
    return (x / np.sqrt(max(power(x), 1e-12))).astype(np.float32)


def looped(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``x`` started at a random point and looped."""
    return np.roll(np.resize(x, max(n, len(x))), -int(rng.integers(len(x))))[:n]


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """``clean + g * noise`` with ``g`` such that the SNR is ``snr`` dB (noise as long as the
    clean audio); scaled down together if the peak would pass MAX_PEAK."""
    if len(noise) != len(clean):
        raise InvalidInputError(
            f"expected noise as long as the audio ({len(clean)} samples), found {len(noise)}"
        )
    p_clean, p_noise = power(clean), power(noise)
    if p_clean == 0.0 or p_noise == 0.0:
        raise InvalidInputError(
            "expected audio and noise with some power to mix at an SNR, found "
            f"{'silent audio' if p_clean == 0.0 else 'silent noise'}"
        )
    gain = np.sqrt(p_clean / (p_noise * 10 ** (snr / 10.0)))
    y = clean.astype(np.float64) + gain * noise.astype(np.float64)
    top = float(np.max(np.abs(y)))
    if top > MAX_PEAK:
        y *= MAX_PEAK / top
    return y.astype(np.float32)
