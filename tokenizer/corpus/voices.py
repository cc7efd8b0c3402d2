"""The voice catalogue of the synthesized corpus: free offline engines only (no MBROLA).

A :class:`Voice` is one speaker: an engine voice plus fixed pitch and rate settings. Voices
marked ``held_out`` speak only in the ``test`` and ``parallel`` splits, so probes measure
unseen speakers; a corpus may also hold out a whole engine (see :mod:`tokenizer.corpus.synth`).
The catalogue is fixed (not sampled) so voice ids mean the same in every corpus.

``CORE_VOICES`` (22) are the first catalogue and read the ``parallel`` split; ``EXTRA_VOICES``
widen the training voices of a full-size corpus: more espeak-ng accents x voice variants (each
variant file sets its own formants, breathiness and tone) at spread pitches and rates, and flite
and festival voices at other pitches and rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Engine = Literal["espeak", "flite", "festival"]


@dataclass(frozen=True, kw_only=True)
class Voice:
    id: str
    """Stable speaker id used in manifests."""
    engine: Engine
    name: str
    """The engine's voice name (espeak-ng ``lang+variant``, flite ``-voice``, festival voice)."""
    pitch: int | None = None
    """espeak-ng: pitch 0..100; flite: target mean F0 in Hz; None keeps the voice's own."""
    rate: float = 1.0
    """Speaking-rate factor (> 1 is faster): espeak-ng words/min x rate, flite and festival
    duration stretch 1/rate."""
    held_out: bool = False


def _es(id: str, name: str, pitch: int, rate: float, held_out: bool = False) -> Voice:
    return Voice(id=id, engine="espeak", name=name, pitch=pitch, rate=rate, held_out=held_out)


CORE_VOICES: tuple[Voice, ...] = (
    _es("es-us-m3", "en-us+m3", 45, 0.95),
    _es("es-us-f2", "en-us+f2", 62, 1.0),
    _es("es-us-m7", "en-us+m7", 32, 0.85),
    _es("es-nyc-m5", "en-us-nyc+m5", 40, 1.05),
    _es("es-gb-f3", "en+f3", 55, 0.9),
    _es("es-sco-m2", "en-gb-scotland+m2", 38, 0.95),
    _es("es-rp-f4", "en-gb-x-rp+f4", 66, 0.9),
    _es("es-029-m6", "en-029+m6", 48, 1.0),
    _es("es-lan-m4", "en-gb-x-gbclan+m4", 42, 1.0),
    _es("es-wmd-f1", "en-gb-x-gbcwmd+f1", 58, 0.95),
    _es("es-rp-m1", "en-gb-x-rp+m1", 50, 1.1, held_out=True),
    _es("es-us-f5", "en-us+f5", 72, 0.95, held_out=True),
    Voice(id="fl-awb", engine="flite", name="awb"),
    Voice(id="fl-rms", engine="flite", name="rms"),
    Voice(id="fl-slt", engine="flite", name="slt"),
    Voice(id="fl-rms-low", engine="flite", name="rms", pitch=85, rate=0.9),
    Voice(id="fl-slt-high", engine="flite", name="slt", pitch=210, rate=1.1),
    Voice(id="fl-kal16", engine="flite", name="kal16", held_out=True),
    Voice(id="fe-kal", engine="festival", name="voice_kal_diphone"),
    Voice(id="fe-slt-hts", engine="festival", name="voice_cmu_us_slt_arctic_hts"),
    Voice(id="fe-kal-slow", engine="festival", name="voice_kal_diphone", rate=0.85),
    Voice(id="fe-ked", engine="festival", name="voice_ked_diphone", held_out=True),
)

_ACCENTS = {
    "us": "en-us",
    "gb": "en",
    "sco": "en-gb-scotland",
    "rp": "en-gb-x-rp",
    "029": "en-029",
    "lan": "en-gb-x-gbclan",
    "wmd": "en-gb-x-gbcwmd",
    "nyc": "en-us-nyc",
}

# (accent, espeak-ng variant file, pitch 0..100, rate, held out): natural-sounding variants only
# (no whisper, robot or effect voices); two of them held out for ``test``.
_EXTRA_ESPEAK = (
    ("us", "Alex", 44, 1.0, False), ("gb", "Alicia", 60, 0.95, False),
    ("sco", "Andrea", 64, 1.0, False), ("rp", "Andy", 40, 1.05, False),
    ("029", "Annie", 68, 0.9, False), ("lan", "aunty", 58, 1.0, False),
    ("wmd", "belinda", 62, 1.1, False), ("nyc", "benjamin", 36, 0.95, False),
    ("us", "caleb", 46, 1.1, False), ("gb", "david", 34, 0.9, False),
    ("sco", "ed", 42, 1.0, False), ("rp", "edward", 48, 0.95, False),
    ("029", "Gene", 30, 1.0, False), ("lan", "iven", 44, 0.9, False),
    ("wmd", "iven3", 52, 1.0, False), ("nyc", "john", 40, 1.1, False),
    ("us", "Lee", 38, 0.9, False), ("gb", "linda", 66, 1.0, False),
    ("sco", "max", 50, 1.05, False), ("rp", "Michael", 42, 0.9, False),
    ("029", "Mike", 36, 1.05, False), ("lan", "paul", 46, 1.0, False),
    ("wmd", "quincy", 40, 0.95, False), ("nyc", "rob", 48, 1.0, False),
    ("us", "robert", 34, 1.0, False), ("gb", "steph", 70, 1.05, False),
    ("sco", "steph3", 60, 0.9, False), ("rp", "zac", 52, 1.1, False),
    ("029", "klatt", 44, 0.95, False), ("lan", "klatt3", 50, 1.05, False),
    ("wmd", "adam", 38, 1.0, False), ("nyc", "f4", 64, 0.95, False),
    ("us", "grandpa", 32, 0.85, False), ("gb", "m2", 45, 1.0, False),
    ("sco", "f1", 66, 1.05, False), ("rp", "m6", 40, 1.0, False),
    ("us", "Annie", 70, 1.0, True), ("gb", "Andy", 38, 0.95, True),
)  # fmt: skip

EXTRA_VOICES: tuple[Voice, ...] = (
    *(
        _es(f"es-{a}-{v.lower()}", f"{_ACCENTS[a]}+{v}", p, r, held)
        for a, v, p, r, held in _EXTRA_ESPEAK
    ),
    Voice(id="fl-awb-high", engine="flite", name="awb", pitch=150, rate=1.05),
    Voice(id="fl-awb-slow", engine="flite", name="awb", pitch=100, rate=0.88),
    Voice(id="fl-rms-fast", engine="flite", name="rms", pitch=115, rate=1.15),
    Voice(id="fl-slt-low", engine="flite", name="slt", pitch=150, rate=0.92),
    Voice(id="fl-slt-fast", engine="flite", name="slt", pitch=185, rate=1.15),
    Voice(id="fl-kal", engine="flite", name="kal"),
    Voice(id="fl-kal16-high", engine="flite", name="kal16", pitch=140, rate=1.05),
    Voice(id="fe-kal-fast", engine="festival", name="voice_kal_diphone", rate=1.15),
    Voice(id="fe-slt-hts-slow", engine="festival", name="voice_cmu_us_slt_arctic_hts", rate=0.9),
    Voice(id="fe-ked-fast", engine="festival", name="voice_ked_diphone", rate=1.1),
)

VOICES = CORE_VOICES + EXTRA_VOICES
VOICES_BY_ID = {v.id: v for v in VOICES}
