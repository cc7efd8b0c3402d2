"""Channel distortions that keep length and alignment: a telephone line (8 kHz, 300-3400 Hz,
G.711 mu-law) and lossy codecs at low bitrates (Opus, MP3) through libsndfile.

The telephone band-pass runs forwards and backwards (zero phase) and soxr's resampling is
delay-compensated, so nothing moves in time. Codec round trips are cut back into place: Opus
through libsndfile comes back aligned, LAME's MP3 comes back MP3_DELAY samples late.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from tokenizer.audio import SAMPLE_RATE
from tokenizer.errors import InvalidInputError

PHONE_RATE = 8000
PHONE_BAND_HZ = (300.0, 3400.0)
MU = 255.0
MP3_DELAY = 1105
"""Samples LAME's encoder (576) and the mpg123 decoder (529) add in front of an MP3 round trip."""


@dataclass(frozen=True)
class Codec:
    format: str
    subtype: str
    compression_level: float
    """libsndfile's 0 (best) .. 1 (smallest) setting, which picks the bitrate."""
    delay: int = 0


CODECS = {
    "opus-8k": Codec("OGG", "OPUS", 1.0),
    "opus-19k": Codec("OGG", "OPUS", 0.95),
    "mp3-16k": Codec("MP3", "MPEG_LAYER_III", 0.95, MP3_DELAY),
}
"""Named low-bitrate codecs; the name gives the nominal bitrate (kbit/s), which
``tests/test_distort.py`` checks the encoder's rate against (within 0.5-1.6x)."""


def telephone(audio: np.ndarray) -> np.ndarray:
    """``audio`` as a narrowband phone line hears it: down to 8 kHz, band-passed to 300-3400 Hz
    (4th-order Butterworth, zero phase), mu-law companded to 8 bits (G.711), back to 16 kHz."""
    import soxr
    from scipy.signal import butter, sosfiltfilt

    x = soxr.resample(audio.astype(np.float64), SAMPLE_RATE, PHONE_RATE, quality="HQ")
    sos = butter(4, PHONE_BAND_HZ, btype="bandpass", fs=PHONE_RATE, output="sos")
    x = np.clip(sosfiltfilt(sos, x), -1.0, 1.0)
    companded = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    q = np.round(companded * 127.0) / 127.0  # 8 bits: a sign and 7 bits of magnitude
    x = np.sign(q) * ((1.0 + MU) ** np.abs(q) - 1.0) / MU
    y = soxr.resample(x, PHONE_RATE, SAMPLE_RATE, quality="HQ")
    return _fit(y, len(audio))


def codec(audio: np.ndarray, name: str) -> np.ndarray:
    """``audio`` encoded with the named codec (:data:`CODECS`) and decoded again, aligned."""
    return codec_round_trip(audio, name)[0]


def codec_round_trip(audio: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """The decoded, aligned audio and the bitrate the encoder used (kbit/s)."""
    import soundfile as sf

    if name not in CODECS:
        raise InvalidInputError(f"expected a codec among {sorted(CODECS)}, found {name!r}")
    c = CODECS[name]
    buf = io.BytesIO()
    extra = {"bitrate_mode": "CONSTANT"} if c.format == "MP3" else {}
    x = np.clip(audio, -1.0, 1.0).astype(np.float32)
    sf.write(buf, x, SAMPLE_RATE, format=c.format, subtype=c.subtype,
             compression_level=c.compression_level, **extra)  # fmt: skip
    kbps = len(buf.getvalue()) * 8 / (len(x) / SAMPLE_RATE) / 1000
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32", always_2d=False)
    return _fit(y[c.delay :], len(audio)), kbps


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or zero-padded to ``n`` samples, float32."""
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(x))] = x[:n]
    return out
