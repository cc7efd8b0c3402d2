"""LPC vocoding: speech rendered again the way a parametric or an LPC diphone synthesizer
renders it (festival's HTS and diphone voices are of that kind).

Every 5 ms block gets the all-pole envelope (order 18, autocorrelation method) of a 25 ms Hann
window centred on it, excited by a pulse train at Praat's F0 where Praat hears voicing and by
white noise where it does not, at the power of that window's own prediction residual. Bursts
and frication keep their spectral envelopes and lose their fine structure; pitch, loudness and
the time of every sample stay. The filter is causal and its windows centred, so length and
alignment are kept.
"""

from __future__ import annotations

import numpy as np

from tokenizer.audio import SAMPLE_RATE
from tokenizer.distort.noise import MAX_PEAK

HOP = 80
"""Block length (samples): 5 ms."""
WINDOW = 400
"""Analysis window (samples): 25 ms."""
ORDER = 18
"""LPC order: two poles per kHz of the 8 kHz band, and two for the glottis and the lips."""
PITCH_FLOOR_HZ, PITCH_CEILING_HZ = 60.0, 500.0


def lpc_vocode(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``audio`` (16 kHz) LPC-vocoded (float32, same length); the noise excitation is drawn
    from ``rng``. Silence and audio shorter than one window come back as they are."""
    from scipy.linalg import solve_toeplitz
    from scipy.signal import lfilter

    x = audio.astype(np.float64)
    n = len(x)
    if n < WINDOW or not np.any(x):
        return audio.astype(np.float32)
    excitation = _excitation(x, rng)
    blocks = -(-n // HOP)
    padded = np.pad(x, (WINDOW // 2, blocks * HOP + WINDOW))
    starts = np.arange(blocks) * HOP + HOP // 2  # each window centred on its block's middle
    window = np.hanning(WINDOW)
    frames = padded[starts[:, None] + np.arange(WINDOW)] * window
    spectrum = np.abs(np.fft.rfft(frames, 2 * WINDOW)) ** 2
    r = np.fft.irfft(spectrum)[:, : ORDER + 1]
    window_power = float(np.sum(window**2))
    silent = r[:, 0] <= 1e-10 * window_power
    r[:, 0] *= 1.0 + 1e-9  # white-noise correction: keeps the solves well conditioned
    y, state = np.zeros(blocks * HOP), np.zeros(ORDER)
    e = np.pad(excitation, (0, blocks * HOP - n))
    for b in range(blocks):
        if silent[b]:  # no sound, the filter rests
            state[:] = 0.0
            continue
        a = solve_toeplitz(r[b, :ORDER], -r[b, 1:])
        error = max(float(r[b, 0] + a @ r[b, 1:]), 0.0)  # the residual's power x window power
        gain = np.sqrt(error / window_power)
        block = slice(b * HOP, (b + 1) * HOP)
        y[block], state = lfilter([gain], np.concatenate([[1.0], a]), e[block], zi=state)
    y = y[:n]
    top = float(np.max(np.abs(y)))
    if top > MAX_PEAK:
        y *= MAX_PEAK / top
    return y.astype(np.float32)


def _excitation(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit-power excitation of every sample: pulses one period apart (Praat's F0, interpolated
    between voiced frames) where the nearest pitch frame is voiced, Gaussian noise elsewhere."""
    import parselmouth

    n = len(x)
    t = (np.arange(n) + 0.5) / SAMPLE_RATE
    f0 = np.zeros(n)
    if n >= 3 * SAMPLE_RATE / PITCH_FLOOR_HZ:  # Praat's pitch analysis needs three periods
        pitch = parselmouth.Sound(x, SAMPLE_RATE).to_pitch_ac(
            time_step=HOP / SAMPLE_RATE,
            pitch_floor=PITCH_FLOOR_HZ,
            pitch_ceiling=PITCH_CEILING_HZ,
        )
        times, hz = pitch.xs(), pitch.selected_array["frequency"]
        voiced = hz > 0
        if voiced.any():
            nearest = np.clip(
                np.round((t - times[0]) / pitch.time_step).astype(int), 0, len(hz) - 1
            )
            f0 = np.where(voiced[nearest], np.interp(t, times[voiced], hz[voiced]), 0.0)
    cycles = np.floor(np.cumsum(f0 / SAMPLE_RATE))
    onset = (np.diff(cycles, prepend=0.0) > 0) & (f0 > 0)
    pulses = np.zeros(n)
    pulses[onset] = np.sqrt(SAMPLE_RATE / f0[onset])  # one period's energy in one sample
    return np.where(f0 > 0, pulses, rng.standard_normal(n))
