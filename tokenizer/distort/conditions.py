"""Named distortion conditions (family and level) and the one function that applies them.

    white, pink, brown, hum   generated noise at ``level`` dB SNR
    babble                    3-6 other talkers (never the utterance's own speaker) at ``level`` dB
    music                     a rendered MIDI piece at ``level`` dB
    reverb                    a generated room of RT60 ``level`` seconds
    telephone                 8 kHz, 300-3400 Hz, mu-law
    codec                     the named low-bitrate codec round trip (``level``: opus-8k, ...)
    lpc                       LPC vocoding, as parametric and diphone synthesizers render speech

Which babble utterances and music pieces exist is the caller's :class:`NoiseSources`: training
builds them from training utterances and training seeds, the probe from the probed split's own
(held-out) voices and other seeds, so no probe noise is heard in training. Everything else is
drawn from the generator passed in; :func:`rng_for` makes it from an utterance id and a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tokenizer import seeding
from tokenizer.distort.channel import CODECS, codec, telephone
from tokenizer.distort.noise import (
    COLOURS,
    MAX_PEAK,
    babble,
    coloured_noise,
    hum,
    looped,
    mix_at_snr,
)
from tokenizer.distort.rooms import reverberate, room_response
from tokenizer.distort.vocoding import lpc_vocode
from tokenizer.errors import InvalidInputError

NOISES = ("white", "pink", "brown", "babble", "music", "hum")
CHANNELS = (*NOISES, "reverb", "telephone", "codec")
"""What a recording meets after the talker: R-Spin's preset trains on these, the probe's grid
has them all."""
FAMILIES = (*CHANNELS, "lpc")


@dataclass(frozen=True)
class Condition:
    family: str
    level: float | str | None = None
    """SNR in dB (noises), RT60 in seconds (reverb), a codec name (codec), None (telephone,
    lpc)."""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise InvalidInputError(
                f"expected a distortion among {FAMILIES}, found {self.family!r}"
            )
        if self.family in NOISES or self.family == "reverb":
            ok, what = isinstance(self.level, int | float), "a number"
        elif self.family == "codec":
            ok, what = self.level in CODECS, f"one of {sorted(CODECS)}"
        else:
            ok, what = self.level is None, "no level"
        if not ok:
            raise InvalidInputError(f"expected {what} for {self.family}, found {self.level!r}")

    @property
    def label(self) -> str:
        if self.family in NOISES:
            return f"{self.family} {self.level:g} dB"
        if self.family == "reverb":
            return f"reverb RT60 {self.level:g} s"
        return self.family if self.level is None else f"{self.family} {self.level}"

    @classmethod
    def parse(cls, text: str) -> Condition:
        """``pink:5``, ``reverb:0.6``, ``telephone``, ``codec:opus-8k``, ``lpc``."""
        family, _, level = text.partition(":")
        if family in NOISES or family == "reverb":
            try:
                return cls(family, float(level))
            except ValueError:
                raise InvalidInputError(
                    f"expected FAMILY:NUMBER for {family}, found {text!r}"
                ) from None
        return cls(family, level or None)


PROBE_SNRS = (20.0, 10.0, 5.0, 0.0)
PROBE_RT60S = (0.3, 0.6, 1.0)
PROBE_CONDITIONS = (
    *(Condition(n, s) for n in NOISES for s in PROBE_SNRS),
    *(Condition("reverb", t) for t in PROBE_RT60S),
    Condition("telephone"),
    *(Condition("codec", c) for c in CODECS),
)
"""The probe's grid: every noise at 20/10/5/0 dB, three rooms, the phone line, every codec."""


@dataclass
class NoiseSources:
    """The recorded noises: babble utterances (float32) with their speakers, and music pieces."""

    babble: Sequence[np.ndarray] = ()
    speakers: Sequence[str] = ()
    music: Sequence[np.ndarray] = ()
    talkers: tuple[int, int] = field(default=(3, 6))


def rng_for(key: str, seed: int) -> np.random.Generator:
    """A generator from ``key`` (an utterance id, a view) and ``seed`` that is the same in
    every process and run, apart from the speaker perturbation's draws for the same key."""
    return seeding.rng_for(key, seed, "distort:")


def apply(
    audio: np.ndarray,
    condition: Condition,
    rng: np.random.Generator,
    sources: NoiseSources | None = None,
    speaker: str | None = None,
) -> np.ndarray:
    """``audio`` (16 kHz float32) under ``condition``; same length and alignment. Silent audio
    gets no additive noise (no SNR can be set against it) and comes back as it is."""
    n, family, level = len(audio), condition.family, condition.level
    if family in NOISES and not np.any(audio):
        return audio.astype(np.float32)
    if family in NOISES:
        assert isinstance(level, float | int)
        if family in COLOURS:
            noise = coloured_noise(n, COLOURS[family], rng)
        elif family == "hum":
            noise = hum(n, rng)
        elif family == "babble":
            src = sources or NoiseSources()
            pool = [x for x, s in zip(src.babble, src.speakers, strict=True) if s != speaker]
            noise = babble(n, pool, int(rng.integers(src.talkers[0], src.talkers[1] + 1)), rng)
        else:
            pieces = sources.music if sources else ()
            if not pieces:
                raise InvalidInputError("expected music pieces for music noise, found none")
            noise = looped(pieces[int(rng.integers(len(pieces)))], n, rng)
        return mix_at_snr(audio, noise, float(level))
    if family == "reverb":
        assert isinstance(level, float | int)
        y = reverberate(audio, room_response((float(level), float(level)), rng))
        top = float(np.max(np.abs(y)))
        return y * np.float32(MAX_PEAK / top) if top > MAX_PEAK else y
    if family == "telephone":
        return telephone(audio)
    if family == "lpc":
        return lpc_vocode(audio, rng)
    assert isinstance(level, str)
    return codec(audio, level)


def draw(
    rng: np.random.Generator,
    families: Sequence[str],
    snr_db: tuple[float, float],
    rt60_s: tuple[float, float],
) -> Condition:
    """A training condition: a family drawn uniformly from ``families``, its SNR or RT60
    uniformly from the range, its codec uniformly from :data:`CODECS`."""
    family = str(families[int(rng.integers(len(families)))])
    if family in NOISES:
        return Condition(family, round(float(rng.uniform(*snr_db)), 2))
    if family == "reverb":
        return Condition(family, round(float(rng.uniform(*rt60_s)), 3))
    if family == "codec":
        return Condition(family, sorted(CODECS)[int(rng.integers(len(CODECS)))])
    return Condition(family)
