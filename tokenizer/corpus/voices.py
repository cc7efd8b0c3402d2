"""The voice catalogue of the synthesized corpus: free offline engines only (no MBROLA).

A :class:`Voice` is one speaker: an engine voice plus fixed pitch and rate settings. Voices
marked ``held_out`` speak only in the ``test`` and ``parallel`` splits, so probes measure
unseen speakers. The catalogue is fixed (not sampled) so voice ids mean the same in every
corpus.
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


VOICES: tuple[Voice, ...] = (
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

VOICES_BY_ID = {v.id: v for v in VOICES}
TRAIN_VOICES = tuple(v for v in VOICES if not v.held_out)
HELD_OUT_VOICES = tuple(v for v in VOICES if v.held_out)
