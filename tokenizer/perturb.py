"""Spin-style random speaker perturbation of 16 kHz mono float32 speech.

One call changes who seems to speak and keeps what is said: Praat's "Change gender" shifts the
formants (the apparent vocal-tract length), the median pitch and the pitch range, and a random
equalizer of peaking biquads (RBJ audio-EQ cookbook) colours the channel. Spin trains
speaker-invariant units on pairs of an utterance and its perturbed copy; the probes use the same
perturbation to measure how much the units move when only the speaker does.

Every ratio is drawn uniformly from its range and then inverted (``1 / r``) with probability
``invert_probability``, so the default ranges move voices both up and down. Draws come from the
caller's generator in a fixed order (formant, pitch, pitch range, one gain per EQ band, then a
seed for Praat); ``tokenizer.seeding.rng_for`` makes a generator from an utterance id and a
seed, so a probe perturbs each utterance the same way on every run.

Praat's PSOLA resynthesis is itself random (two calls on the same input differ in a few hundred
samples), drawing from Praat's one process-wide generator, so :func:`change_gender` seeds that
generator before the call and re-seeds it unpredictably after: same draws, same samples.

The output has the input's length and is float32 and finite. The only level change besides the
EQ's: when the output's peak exceeds ``max_peak`` (EQ boosts and Praat's resynthesis can raise
it) the whole signal is scaled down to that peak. Nothing is clipped.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import parselmouth
from parselmouth.praat import call, run
from scipy.signal import sosfilt

from tokenizer.audio import SAMPLE_RATE
from tokenizer.errors import AudioError, InvalidInputError

PITCH_WINDOW_PERIODS = 3
"""Praat's pitch analysis needs a window of this many periods of ``pitch_floor``, so inputs
shorter than ``3 * 16000 / pitch_floor`` samples (40 ms at 75 Hz) cannot be perturbed."""

PRAAT_SEED_LIMIT = 2**53
"""Praat seeds are drawn in ``[1, PRAAT_SEED_LIMIT)``: integers a Praat script number holds."""

CHANGE_GENDER_STEP_PERIODS = 0.8
"""Praat's "Change gender" analyses F0 with a time step of this many periods of pitch_floor."""

_NO_VOICING_WARNING = "There were no voiced segments found"


class PitchRangeError(InvalidInputError):
    """Praat cannot widen this input's pitch range as far as asked (see widest_pitch_range)."""


@dataclass(frozen=True, kw_only=True)
class PerturbConfig:
    """Ranges of the random speaker perturbation (the ratio ranges are Spin's)."""

    formant_ratio: tuple[float, float] = (1.0, 1.4)
    """Range of the formant shift ratio (> 1 moves formants up: a shorter vocal tract)."""
    pitch_ratio: tuple[float, float] = (1.0, 2.0)
    """Range of the ratio of the new median F0 to the input's median F0."""
    pitch_range_ratio: tuple[float, float] = (1.0, 1.5)
    """Range of the factor that widens (> 1) or narrows (< 1) F0 excursions about the median."""
    invert_probability: float = 0.5
    """Chance that each drawn ratio ``r`` is replaced by ``1 / r`` (0 keeps the ranges as given)."""
    eq_bands: int = 10
    """Peaking filters in the random equalizer (0 turns the EQ off)."""
    eq_low_hz: float = 60.0
    """Centre frequency of the lowest EQ band (Hz); centres are log-spaced up to eq_high_hz."""
    eq_high_hz: float = 7000.0
    """Centre frequency of the highest EQ band (Hz, below the 8 kHz Nyquist frequency)."""
    eq_gain_db: float = 12.0
    """Each band's gain is drawn uniformly in ``[-eq_gain_db, +eq_gain_db]`` (dB)."""
    eq_q: float = 1.4
    """Quality factor of every band (1.4 is about one octave between the -3 dB points)."""
    pitch_floor: float = 75.0
    """Lowest F0 Praat looks for (Hz); also sets the shortest input (see PITCH_WINDOW_PERIODS)."""
    pitch_ceiling: float = 600.0
    """Highest F0 Praat looks for (Hz)."""
    max_peak: float = 0.99
    """Outputs whose peak exceeds this (full scale = 1) are scaled down to it, never clipped."""

    def __post_init__(self) -> None:
        for name in ("formant_ratio", "pitch_ratio", "pitch_range_ratio"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise InvalidInputError(f"expected 0 < low <= high for {name}, found {(low, high)}")
        if not 0 <= self.invert_probability <= 1:
            raise InvalidInputError(
                f"expected invert_probability in [0, 1], found {self.invert_probability}"
            )
        if self.eq_bands < 0 or self.eq_gain_db < 0 or self.eq_q <= 0:
            raise InvalidInputError(
                f"expected eq_bands >= 0, eq_gain_db >= 0 and eq_q > 0, found "
                f"{self.eq_bands}, {self.eq_gain_db} and {self.eq_q}"
            )
        if not 0 < self.eq_low_hz <= self.eq_high_hz < SAMPLE_RATE / 2:
            raise InvalidInputError(
                f"expected 0 < eq_low_hz <= eq_high_hz < {SAMPLE_RATE / 2:g} Hz, found "
                f"{self.eq_low_hz:g} and {self.eq_high_hz:g} Hz"
            )
        if not 0 < self.pitch_floor < self.pitch_ceiling or not 0 < self.max_peak <= 1:
            raise InvalidInputError(
                f"expected 0 < pitch_floor < pitch_ceiling and max_peak in (0, 1], found "
                f"{self.pitch_floor:g}, {self.pitch_ceiling:g} Hz and {self.max_peak}"
            )

    def scaled(self, strength: float) -> PerturbConfig:
        """This perturbation ``strength`` times as strong: every ratio range ``(lo, hi)`` becomes
        ``(lo ** strength, hi ** strength)`` and the EQ's gain ``eq_gain_db * strength`` (1 keeps
        it, 0 leaves the voice as it is but for Praat's resynthesis)."""
        if strength < 0:
            raise InvalidInputError(f"expected a perturbation strength >= 0, found {strength}")

        def scale(r: tuple[float, float]) -> tuple[float, float]:
            return r[0] ** strength, r[1] ** strength

        return dataclasses.replace(
            self,
            formant_ratio=scale(self.formant_ratio),
            pitch_ratio=scale(self.pitch_ratio),
            pitch_range_ratio=scale(self.pitch_range_ratio),
            eq_gain_db=self.eq_gain_db * strength,
        )

    @property
    def min_samples(self) -> int:
        """Shortest input Praat's pitch analysis accepts with this pitch_floor (samples)."""
        return math.ceil(PITCH_WINDOW_PERIODS * SAMPLE_RATE / self.pitch_floor - 1e-9)


DEFAULT_CONFIG = PerturbConfig()


def perturb_speaker(
    x: np.ndarray, rng: np.random.Generator, config: PerturbConfig = DEFAULT_CONFIG
) -> tuple[np.ndarray, dict[str, float]]:
    """Randomly change the apparent speaker of 16 kHz mono speech.

    Returns the perturbed audio (float32, the input's length) and the drawn parameters:
    ``formant_ratio``, ``pitch_ratio``, ``pitch_range_ratio``, ``source_f0_median`` (Hz, 0.0
    when the input has no voiced frames: its pitch is then kept), ``target_f0_median`` (Hz, 0.0
    likewise), ``eq_gain_0`` .. ``eq_gain_{eq_bands - 1}`` (dB, lowest band first) and
    ``praat_seed`` (an integer): :func:`change_gender` and :func:`equalize` given these replay it.
    Where Praat cannot widen an input's pitch range as far as drawn (:class:`PitchRangeError`),
    the range is kept and ``pitch_range_ratio`` is reported as 1.0.
    """
    _check_audio(x, config)
    ratios = {
        name: _draw_ratio(rng, getattr(config, name), config.invert_probability)
        for name in ("formant_ratio", "pitch_ratio", "pitch_range_ratio")
    }
    gains = rng.uniform(-config.eq_gain_db, config.eq_gain_db, size=config.eq_bands)
    praat_seed = int(rng.integers(1, PRAAT_SEED_LIMIT))
    try:
        y, source_f0 = change_gender(x, praat_seed=praat_seed, config=config, **ratios)
    except PitchRangeError:
        # Keep the range, move the formants and the median as drawn.
        ratios["pitch_range_ratio"] = 1.0
        y, source_f0 = change_gender(x, praat_seed=praat_seed, config=config, **ratios)
    y = equalize(y, gains, config)
    peak = float(np.max(np.abs(y)))
    if peak > config.max_peak:
        y = y * np.float32(config.max_peak / peak)
    params = {
        **ratios,
        "source_f0_median": source_f0,
        "target_f0_median": source_f0 * ratios["pitch_ratio"],  # 0.0 stays 0.0
        "praat_seed": praat_seed,
    }
    params.update({f"eq_gain_{i}": float(g) for i, g in enumerate(gains)})
    return y.astype(np.float32, copy=False), params


def change_gender(
    x: np.ndarray,
    *,
    formant_ratio: float,
    pitch_ratio: float,
    pitch_range_ratio: float,
    praat_seed: int,
    config: PerturbConfig = DEFAULT_CONFIG,
) -> tuple[np.ndarray, float]:
    """Praat's "Change gender" with the new median F0 given as a ratio to the input's.

    Returns the audio (float32, the input's length) and the input's median F0 (Hz; 0.0 when it
    has no voiced frames, in which case the pitch is kept and only the formants and range move).
    ``praat_seed`` (1 .. 2**53 - 1) seeds Praat's process-wide generator for this call, which
    makes the output a function of the arguments; seeding and warning filters are
    process-wide, so perturb in parallel with processes, not threads. Uses pitch_floor,
    pitch_ceiling and min_samples of ``config``; the EQ fields are ignored. Raises
    :class:`PitchRangeError` where ``pitch_range_ratio`` is at least
    :func:`widest_pitch_range` of ``x``.
    """
    if not 1 <= praat_seed < PRAAT_SEED_LIMIT:
        raise InvalidInputError(f"expected praat_seed in [1, 2**53), found {praat_seed}")
    sound = _sound(x, config)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NO_VOICING_WARNING, parselmouth.PraatWarning)
        pitch = call(sound, "To Pitch", 0.0, config.pitch_floor, config.pitch_ceiling)
        median = call(pitch, "Get quantile", 0.0, 0.0, 0.5, "Hertz")
        source_f0 = float(median) if math.isfinite(median) and median > 0 else 0.0
        new_median = source_f0 * pitch_ratio  # 0.0 (no voiced frames) tells Praat to keep F0
        if pitch_range_ratio > 1:
            widest = widest_pitch_range(sound, config)
            if pitch_range_ratio >= widest:
                raise PitchRangeError(
                    f"expected pitch_range_ratio below {widest:.4f} for this input, found "
                    f"{pitch_range_ratio:.4f}: Praat's Change gender widens F0 linearly about "
                    "its median, which would take the lowest pitch point to 0 Hz, where its "
                    "resynthesis can fail or never return"
                )
        run(f"random_initializeWithSeedUnsafelyButPredictably ({praat_seed})")
        try:
            floor, ceiling = config.pitch_floor, config.pitch_ceiling
            duration_factor = 1.0
            out = call(
                sound,
                "Change gender",
                floor,
                ceiling,
                formant_ratio,
                new_median,
                pitch_range_ratio,
                duration_factor,
            )
        finally:
            run("random_initializeSafelyAndUnpredictably ()")
    y = np.asarray(out.values[0], dtype=np.float32)
    if len(y) != len(x):
        y = np.pad(y[: len(x)], (0, max(0, len(x) - len(y))))
    return y, source_f0


def widest_pitch_range(x: np.ndarray | parselmouth.Sound, config: PerturbConfig) -> float:
    """The pitch_range_ratio at which Praat's "Change gender" takes ``x``'s lowest pitch point
    to 0 Hz: ``median / (median - lowest)`` of F0 in Praat's own analysis of the call (a
    0.8 / pitch_floor time step; inf when nothing is voiced or all F0 is the median).

    "Change gender" widens F0 excursions linearly in Hz about the median, ``median + (f -
    median) * ratio``, and sets points that fall below zero to 0 Hz. Its PSOLA resynthesis then
    raises an error on some inputs ("undefined pitch point") and never returns on others, so
    this bound is kept whatever the pitch and formant ratios (both scale F0 and median alike).
    """
    sound = x if isinstance(x, parselmouth.Sound) else _sound(x, config)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NO_VOICING_WARNING, parselmouth.PraatWarning)
        step = CHANGE_GENDER_STEP_PERIODS / config.pitch_floor
        pitch = call(sound, "To Pitch", step, config.pitch_floor, config.pitch_ceiling)
        median = call(pitch, "Get quantile", 0.0, 0.0, 0.5, "Hertz")
        lowest = call(pitch, "Get minimum", 0.0, 0.0, "Hertz", "None")
    if not (math.isfinite(median) and math.isfinite(lowest)) or lowest >= median:
        return math.inf
    return float(median / (median - lowest))


def eq_centres_hz(config: PerturbConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Centre frequencies of the EQ bands (Hz), log-spaced from eq_low_hz to eq_high_hz."""
    return np.geomspace(config.eq_low_hz, config.eq_high_hz, config.eq_bands)


def peaking_sos(centres_hz: np.ndarray, gains_db: np.ndarray, q: float) -> np.ndarray:
    """RBJ cookbook peaking biquads as ``(bands, 6)`` second-order sections for 16 kHz audio.

    Band ``i`` has gain ``gains_db[i]`` (dB) exactly at ``centres_hz[i]`` and 0 dB far from it.
    """
    centres = np.asarray(centres_hz, dtype=np.float64)
    gains = np.asarray(gains_db, dtype=np.float64)
    if centres.shape != gains.shape or centres.ndim != 1:
        raise InvalidInputError(
            f"expected one gain per centre frequency, found shapes {gains.shape} and "
            f"{centres.shape}"
        )
    amp = 10.0 ** (gains / 40.0)
    w0 = 2.0 * np.pi * centres / SAMPLE_RATE
    alpha, cos_w0 = np.sin(w0) / (2.0 * q), np.cos(w0)
    a0 = 1.0 + alpha / amp
    sos = np.stack(
        [1.0 + alpha * amp, -2.0 * cos_w0, 1.0 - alpha * amp, a0, -2.0 * cos_w0, 1.0 - alpha / amp],
        axis=1,
    )
    return sos / a0[:, None]


def equalize(
    x: np.ndarray, gains_db: np.ndarray, config: PerturbConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """Filter ``x`` through the config's peaking bands with the given gains (dB): float32 out.

    A causal IIR cascade (scipy ``sosfilt``), starting from rest; no level correction.
    """
    gains = np.asarray(gains_db, dtype=np.float64)
    if gains.shape != (config.eq_bands,):
        raise InvalidInputError(
            f"expected {config.eq_bands} EQ gains (one per band), found shape {gains.shape}"
        )
    if config.eq_bands == 0:
        return np.asarray(x, dtype=np.float32)
    sos = peaking_sos(eq_centres_hz(config), gains, config.eq_q)
    return sosfilt(sos, np.asarray(x, dtype=np.float64)).astype(np.float32)


def _draw_ratio(rng: np.random.Generator, bounds: tuple[float, float], invert: float) -> float:
    """A ratio uniform in ``bounds``, inverted with probability ``invert`` (two draws always)."""
    r = float(rng.uniform(bounds[0], bounds[1]))
    return 1.0 / r if rng.random() < invert else r


def _sound(x: np.ndarray, config: PerturbConfig) -> parselmouth.Sound:
    _check_audio(x, config)
    return parselmouth.Sound(np.asarray(x, dtype=np.float64), sampling_frequency=SAMPLE_RATE)


def _check_audio(x: np.ndarray, config: PerturbConfig) -> None:
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        found = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise AudioError(f"expected a float numpy array of 16 kHz samples, found {found}")
    if x.ndim != 1:
        raise AudioError(f"expected mono audio (a 1-D array), found shape {x.shape}")
    if len(x) < config.min_samples:
        raise AudioError(
            f"expected at least {config.min_samples} samples ({PITCH_WINDOW_PERIODS} periods of "
            f"pitch_floor={config.pitch_floor:g} Hz) for Praat's pitch analysis, found {len(x)}"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        raise AudioError(
            f"expected finite samples, found {int(bad.sum())} NaN/Inf values "
            f"(first at sample {int(np.argmax(bad))})"
        )
