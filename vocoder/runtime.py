"""The vocoder in ONNX Runtime (numpy + onnxruntime; no torch): units (+ speaker) -> 16 kHz
audio. What ``speechtok synthesize`` and the service's ``Synthesize`` run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from tokenizer.errors import InvalidInputError
from tokenizer.features import HOP
from tokenizer.kinds import require
from tokenizer.model_dir import load_model_dir
from tokenizer.onnx_tokenizer import default_providers
from tokenizer.shipped import DEFAULT_VOCODER_FILE, resolve

GENERATOR_GRAPH = "generator.onnx"
DURATION_GRAPH = "durations.onnx"
MAX_UNITS = 50 * 600
"""Longest accepted unit sequence after expansion (10 minutes of audio)."""


class Vocoder:
    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        model = load_model_dir(path)
        c = model.config
        require(c, Path(path), "vocoder")
        assert c.sample_rate is not None  # every vocoder config has one
        self.name = c.name
        self.fingerprint = model.fingerprint
        self.K = c.K
        self.speakers = list(c.speakers)
        self.units_model = dict(c.units_model)
        self.sample_rate: int = c.sample_rate
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = default_providers()
        root = Path(model.path)
        self.generator = ort.InferenceSession(
            str(root / GENERATOR_GRAPH), options, providers=providers
        )
        self.duration = ort.InferenceSession(
            str(root / DURATION_GRAPH), options, providers=providers
        )

    @classmethod
    def load(cls, spec: str | Path | None = None, threads: int | None = None) -> Vocoder:
        """A vocoder directory, a shipped vocoder's name, or None (the default vocoder)."""
        return cls(resolve(spec, DEFAULT_VOCODER_FILE), threads)

    def predict_durations(self, units: np.ndarray, speaker: int) -> np.ndarray:
        """Frames per deduplicated unit (at least 1)."""
        log_d = self.duration.run(
            None, {"units": units[None].astype(np.int64), "speaker": np.array([speaker])}
        )[0][0]
        return np.maximum(1, np.round(np.exp(log_d))).astype(np.int64)

    def synthesize(
        self,
        units: np.ndarray | list[int],
        speaker: str | int | None = None,
        durations: np.ndarray | list[int] | None = None,
        deduplicated: bool = False,
    ) -> np.ndarray:
        """16 kHz float32 audio, 320 samples per frame. ``units`` are one per frame, or
        deduplicated: then ``durations`` (frames each) are used, or predicted if not given."""
        u, spk, d = check_request(units, speaker, durations, self.K, self.speakers)
        if d is None and deduplicated:
            d = self.predict_durations(u, spk)
        if d is not None:
            u = np.repeat(u, d)
        if len(u) > MAX_UNITS:
            raise InvalidInputError(f"expected at most {MAX_UNITS} frames of units, found {len(u)}")
        audio = self.generator.run(
            None, {"units": u[None].astype(np.int64), "speaker": np.array([spk])}
        )[0][0]
        assert len(audio) == HOP * len(u)
        return np.asarray(audio, dtype=np.float32)


def speaker_index(speakers: list[str], speaker: str | int | None) -> int:
    """A speaker by name or index; None (or "") is speaker 0."""
    if speaker is None or speaker == "":
        return 0
    if isinstance(speaker, int) or str(speaker).isdigit():
        i = int(speaker)
        if 0 <= i < len(speakers):
            return i
    elif speaker in speakers:
        return speakers.index(str(speaker))
    raise InvalidInputError(
        f"expected a speaker name or index 0..{len(speakers) - 1} "
        f"({', '.join(speakers[:8])}{', ...' if len(speakers) > 8 else ''}), found {speaker!r}"
    )


def check_request(
    units: np.ndarray | list[int],
    speaker: str | int | None,
    durations: np.ndarray | list[int] | None,
    K: int,
    speakers: list[str],
) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Validated (units, speaker index, durations) of a synthesis request."""
    u = np.asarray(units)
    if u.ndim != 1 or not len(u) or not np.issubdtype(u.dtype, np.integer):
        raise InvalidInputError(
            f"expected a non-empty 1-D sequence of integer units, found shape "
            f"{list(u.shape)} of {u.dtype}"
        )
    if u.min() < 0 or u.max() >= K:
        raise InvalidInputError(f"expected units in [0, {K}), found {int(u.min())}..{int(u.max())}")
    d = None
    if durations is not None:
        d = np.asarray(durations)
        if d.shape != u.shape or not np.issubdtype(d.dtype, np.integer) or (d < 1).any():
            raise InvalidInputError(
                f"expected one integer duration >= 1 per unit ({len(u)}), found shape "
                f"{list(d.shape)} with minimum {d.min() if d.size else None}"
            )
        if int(d.sum()) > MAX_UNITS:
            raise InvalidInputError(
                f"expected at most {MAX_UNITS} frames of units, found {int(d.sum())}"
            )
    return u.astype(np.int64), speaker_index(speakers, speaker), d
