"""Seeded speaker and channel augmentation of training utterances, alignments kept exact.

One augmented copy of an utterance is, in this order: a speed perturbation (Kaldi-style
resampling, which moves tempo, pitch and formants together: the vocal-tract-length change a
real speaker brings), Praat's formant and pitch shift with a random equalizer
(:func:`tokenizer.perturb.perturb_speaker`, milder ranges than Spin's views), and with some
probability the reverberation of a generated room (pyroomacoustics image-source shoebox rooms,
RT60 drawn from a range). Phone boundaries move with the speed factor only: the room's response
is cut before its direct-path peak, so reverberation adds no delay.

Everything is drawn from a generator the caller seeds per utterance, and the room bank from
the corpus seed, so a corpus build stays byte-reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tokenizer.audio import SAMPLE_RATE
from tokenizer.corpus.alignment import Segment
from tokenizer.distort.rooms import reverberate, room_response
from tokenizer.errors import InvalidInputError
from tokenizer.perturb import PerturbConfig, perturb_speaker


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)
    """Speed factors drawn uniformly (> 1 is faster and higher)."""
    formant_ratio: tuple[float, float] = (1.0, 1.2)
    """Range of Praat's formant shift ratio (inverted with probability 1/2)."""
    pitch_ratio: tuple[float, float] = (1.0, 1.5)
    """Range of the new-to-old median F0 ratio (inverted with probability 1/2)."""
    reverb_probability: float = 0.3
    """Share of copies convolved with a room impulse response."""
    rt60_s: tuple[float, float] = (0.2, 0.8)
    """Range of the rooms' reverberation time (seconds)."""
    rooms: int = 32
    """Generated rooms in the bank the copies draw from."""
    peak: float = 0.9
    """Peak amplitude of every copy (as the corpus's originals)."""

    def __post_init__(self) -> None:
        if not self.speeds or min(self.speeds) <= 0:
            raise InvalidInputError(f"expected positive speed factors, found {self.speeds}")
        if not 0 <= self.reverb_probability <= 1 or self.rooms < 1:
            raise InvalidInputError(
                f"expected reverb_probability in [0, 1] and rooms >= 1, found "
                f"{self.reverb_probability} and {self.rooms}"
            )
        if not 0 < self.rt60_s[0] <= self.rt60_s[1]:
            raise InvalidInputError(f"expected 0 < low <= high for rt60_s, found {self.rt60_s}")

    @property
    def perturb(self) -> PerturbConfig:
        return PerturbConfig(
            formant_ratio=self.formant_ratio,
            pitch_ratio=self.pitch_ratio,
            pitch_range_ratio=(1.0, 1.3),
            eq_gain_db=6.0,
        )


def room_bank(seed: int, config: AugmentConfig) -> list[np.ndarray]:
    """``config.rooms`` impulse responses of random shoebox rooms (16 kHz float32, each starting
    at its direct-path peak, scaled to a unit peak), seeded by ``seed``."""
    rng = np.random.default_rng([seed, 0xA0D])
    return [room_response(config.rt60_s, rng) for _ in range(config.rooms)]


def augment(
    audio: np.ndarray,
    segments: list[Segment],
    rng: np.random.Generator,
    rooms: list[np.ndarray],
    config: AugmentConfig,
) -> tuple[np.ndarray, list[Segment], dict[str, Any]]:
    """One augmented copy of 16 kHz float32 ``audio``; returns the copy, its phone segments
    and what was drawn (``speed``, the perturbation's ratios, ``room`` or -1)."""
    import soxr

    speed = float(config.speeds[int(rng.integers(len(config.speeds)))])
    x = audio.astype(np.float32)
    if speed != 1.0:  # read the samples as if recorded at speed x the rate
        x = soxr.resample(x, SAMPLE_RATE * speed, SAMPLE_RATE, quality="HQ").astype(np.float32)
    x, drawn = perturb_speaker(x, rng, config.perturb)
    room = int(rng.integers(len(rooms))) if rng.random() < config.reverb_probability else -1
    if room >= 0:
        x = reverberate(x, rooms[room])
    top = float(np.max(np.abs(x)))
    x = x * np.float32(config.peak / top) if top > 0 else x
    duration = len(x) / SAMPLE_RATE
    moved = [Segment(p, min(s / speed, duration), min(e / speed, duration)) for p, s, e in segments]
    params = {
        "speed": speed,
        "formant_ratio": round(drawn["formant_ratio"], 4),
        "pitch_ratio": round(drawn["pitch_ratio"], 4),
        "room": room,
    }
    return x.astype(np.float32), moved, params
