"""Acoustic features on the encoder's frame grid: MFCC (+ deltas) and log-mel, in numpy.

Frames follow the HuBERT/wav2vec2 conv stack exactly: frame ``i`` covers samples
``[320 i, 320 i + 400)`` of 16 kHz audio (25 ms windows every 20 ms, 50 Hz), so there are
``(n - 400) // 320 + 1`` frames — the same count the encoder gives, and units from features
and from encoders line up frame for frame. These features are the targets of HuBERT's first
pretraining iteration and the classic acoustic k-means baselines.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

from tokenizer.audio import SAMPLE_RATE
from tokenizer.errors import AudioError

WINDOW = 400
"""Samples per frame (25 ms), the receptive field of the encoder's conv stack."""
HOP = 320
"""Samples between frames (20 ms): 50 frames per second."""
FRAME_RATE = SAMPLE_RATE / HOP
FRAME_MS = 1000 * HOP // SAMPLE_RATE
"""Milliseconds between frames (20)."""


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    type: Literal["mfcc", "logmel"] = "mfcc"
    n_mels: int = 40
    """Mel bands (20 Hz .. 7.6 kHz)."""
    n_mfcc: int = 13
    """Cepstra kept (``mfcc`` only)."""
    deltas: bool = True
    """Append first and second time derivatives (``mfcc`` only): 3 x n_mfcc dims."""

    @property
    def dim(self) -> int:
        if self.type == "logmel":
            return self.n_mels
        return self.n_mfcc * (3 if self.deltas else 1)


def n_frames(n_samples: int) -> int:
    """Frames the encoder (and these features) give for ``n_samples`` of 16 kHz audio."""
    return max(0, (n_samples - WINDOW) // HOP + 1)


def frames(x: np.ndarray) -> np.ndarray:
    """``(n_frames, 400)`` view-copy of the audio's analysis frames."""
    n = n_frames(len(x))
    if n == 0:
        raise AudioError(f"expected at least {WINDOW} samples (25 ms), found {len(x)}")
    idx = np.arange(WINDOW)[None, :] + HOP * np.arange(n)[:, None]
    return x[idx]


def extract(x: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Features of 16 kHz mono float audio: ``(n_frames, config.dim)`` float32."""
    from scipy.fft import dct, rfft  # here, not at the top: the CLI imports this module

    fr = frames(np.asarray(x, dtype=np.float64))
    fr = np.concatenate([fr[:, :1], fr[:, 1:] - 0.97 * fr[:, :-1]], axis=1)  # pre-emphasis
    power = np.abs(rfft(fr * np.hamming(WINDOW), n=512, axis=1)) ** 2
    logmel = np.log(power @ _mel_filterbank(config.n_mels).T + 1e-10)
    if config.type == "logmel":
        return logmel.astype(np.float32)
    cep = dct(logmel, type=2, norm="ortho", axis=1)[:, : config.n_mfcc]
    if config.deltas:
        d1 = _delta(cep)
        cep = np.concatenate([cep, d1, _delta(d1)], axis=1)
    return cep.astype(np.float32)


def _delta(x: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over +-width frames, edges repeated (as Kaldi and HTK do)."""
    padded = np.pad(x, ((width, width), (0, 0)), mode="edge")
    num = sum(
        k * (padded[width + k : len(x) + width + k] - padded[width - k : len(x) + width - k])
        for k in range(1, width + 1)
    )
    return num / (2 * sum(k * k for k in range(1, width + 1)))


@cache
def _mel_filterbank(
    n_mels: int, n_fft: int = 512, fmin: float = 20.0, fmax: float = 7600.0
) -> np.ndarray:
    def mel(f: np.ndarray) -> np.ndarray:
        return 1127.0 * np.log1p(f / 700.0)

    edges = np.linspace(mel(np.array(fmin)), mel(np.array(fmax)), n_mels + 2)
    bins = mel(np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up, down = (bins - lo) / (mid - lo), (hi - bins) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down))
