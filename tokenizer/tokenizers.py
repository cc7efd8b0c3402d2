"""What every tokenizer offers, and loading one from a model directory by its ``kind``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from tokenizer.errors import InvalidInputError
from tokenizer.model_dir import ModelDirError, load_model_dir
from tokenizer.registry import resolve

BACKENDS = ("auto", "onnx", "torch")


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


def load_tokenizer(spec: str | Path | None = None, backend: str = "auto") -> Tokenizer:
    """Load a model (directory, shipped name, or None for the default) and return the
    tokenizer its ``kind`` names. Encoder models run in ONNX Runtime (``backend="onnx"``, the
    default once exported) or torch (``"torch"``, the default before export)."""
    from tokenizer.kmeans import FeatureKmeansTokenizer

    path = resolve(spec)
    model = load_model_dir(path)
    kind = model.config.get("kind")
    if kind == "kmeans" and "features" in model.config["tokenizer"]:
        return FeatureKmeansTokenizer(model)
    from tokenizer.encoder_tokenizer import KINDS, EncoderTokenizer

    if kind not in KINDS:
        raise ModelDirError(f"expected a model kind in {list(KINDS)} in {path}, found {kind!r}")
    if backend not in BACKENDS:
        raise InvalidInputError(f"expected a backend in {BACKENDS}, found {backend!r}")
    exported = "graphs" in model.config["tokenizer"]
    if backend == "onnx" or (backend == "auto" and exported):
        from tokenizer.runtime import OnnxTokenizer

        return OnnxTokenizer(model)
    return EncoderTokenizer(model)


def dedup(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse runs of equal units: (units, durations in frames)."""
    units = np.asarray(units)
    if len(units) == 0:
        return units, np.zeros(0, np.int32)
    starts = np.flatnonzero(np.concatenate([[True], units[1:] != units[:-1]]))
    return units[starts], np.diff(np.append(starts, len(units))).astype(np.int32)
