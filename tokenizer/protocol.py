"""What every tokenizer offers, whatever its kind and backend."""

from __future__ import annotations

from typing import Protocol

import numpy as np

BACKENDS = ("auto", "onnx", "torch")
"""``onnx``: ONNX Runtime on the exported graphs; ``torch``: the encoder in torch; ``auto``:
ONNX Runtime once the model is exported."""


class Tokenizer(Protocol):
    name: str
    kind: str
    """What made the units: ``hubert``, ``spin``, ``dcspin`` or ``kmeans``."""
    K: int
    """Vocabulary size (units are 0..K-1)."""
    frame_rate: float
    """Units per second (Hz)."""
    fingerprint: str

    def tokenize(self, audio: np.ndarray, full_utterance: bool = False) -> np.ndarray:
        """Unit ids (int32), one per frame, of 16 kHz mono float32 audio: by the model's
        canonical streaming windows if it has them, unless ``full_utterance``."""
        ...
