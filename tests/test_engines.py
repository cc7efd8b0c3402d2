"""Each synthesizer gives audio with a sane phone alignment (exact timings, ARPAbet labels)."""

from __future__ import annotations

import numpy as np
import pytest

from tokenizer.corpus.check import check_alignment
from tokenizer.corpus.phones import SIL
from tokenizer.corpus.synth import ENGINES
from tokenizer.corpus.voices import VOICES_BY_ID

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "A thick fog covered the harbor at dawn.",
]


@pytest.mark.parametrize("voice_id", ["es-us-m3", "es-sco-m2", "fl-slt", "fl-rms-low", "fe-kal"])
def test_alignment_sanity(voice_id: str) -> None:
    voice = VOICES_BY_ID[voice_id]
    results = ENGINES[voice.engine](voice, SENTENCES)
    assert len(results) == len(SENTENCES)
    for text, (audio, segments) in zip(SENTENCES, results, strict=True):
        duration = len(audio) / 16000
        assert audio.dtype == np.float32 and 1.0 < duration < 6.0
        assert check_alignment(segments, duration) == []
        speech = [s for s in segments if s.phone != SIL]
        letters = sum(c.isalpha() for c in text)
        assert 0.5 * letters < len(speech) < 1.2 * letters  # about one phone per letter
        ms = np.array([s.end - s.start for s in speech]) * 1000
        assert 40 < np.median(ms) < 140  # typical phone durations
        # speech energy sits inside non-silence segments
        energy = np.array([np.mean(audio[int(s.start * 16000) : int(s.end * 16000)] ** 2)
                           for s in speech])  # fmt: skip
        assert np.mean(energy > 1e-5) > 0.9


def test_voices_differ() -> None:
    """Different voices of one engine give different audio for the same text."""
    a = ENGINES["espeak"](VOICES_BY_ID["es-us-m3"], SENTENCES[:1])[0][0]
    b = ENGINES["espeak"](VOICES_BY_ID["es-us-f2"], SENTENCES[:1])[0][0]
    assert len(a) != len(b) or not np.allclose(a, b)


def test_unknown_espeak_voice() -> None:
    from dataclasses import replace

    bad = replace(VOICES_BY_ID["es-us-m3"], name="xx-nonexistent")
    with pytest.raises(ValueError, match="xx-nonexistent"):
        ENGINES["espeak"](bad, ["hello"])
