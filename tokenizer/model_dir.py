"""Model directories and the one typed description of a model.

A model directory holds ``config.json`` + ``weights.safetensors`` + ``FINGERPRINT`` (+ a card,
+ exported graphs). ``config.json`` is read and validated here, once, into a ``ModelConfig``;
everything else asks that object, never the raw JSON.

The fingerprint is a sha256 over everything that determines the tokens: the canonical JSON of
the config's ``tokenizer`` section (which holds the sha256 of exported ONNX graphs and the
streaming window) and every tensor (name, dtype, shape, bytes). It is written beside the model
and checked on load, so a model that was changed after export cannot pass for the original;
every token answer carries it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from safetensors.numpy import load_file, save_file

from tokenizer.encoder.config import EncoderConfig
from tokenizer.errors import InvalidInputError
from tokenizer.features import FeatureConfig
from tokenizer.steps import StepSpec, step_spec
from tokenizer.windows import WindowSpec

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
FINGERPRINT = "FINGERPRINT"
CARD = "README.md"
MODEL_GRAPH = "model.onnx"
"""Exported full-utterance graph of an encoder tokenizer (dynamic batch and length)."""
WINDOW_GRAPH = "window.onnx"
"""Exported graph of one canonical streaming window (dynamic batch, fixed length)."""
STEP_GRAPH = "step.onnx"
"""Exported incremental step of a bounded-context encoder (``tokenizer.steps``)."""

PRECISIONS = ("fp32", "fp16", "int8")
"""What exported graphs compute in (``fp16``: for GPUs; inputs and scores stay float32)."""
KINDS = ("hubert", "spin", "dcspin", "kmeans", "vocoder")
"""Every model kind; ``tokenizer.kinds`` says how each is loaded and described."""

T = TypeVar("T")


class ModelError(InvalidInputError):
    """A model directory is missing, incomplete, malformed or modified."""


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """What ``config.json`` says, validated. Tokenizer fields are None for a vocoder and
    vocoder fields are empty for a tokenizer."""

    name: str
    kind: str
    """One of ``KINDS``."""
    K: int
    """Vocabulary size: units are 0..K-1 (for a vocoder: the units it speaks)."""
    K2: int | None = None
    """DC-Spin's auxiliary codebook size (used only in training)."""
    frame_rate: float | None = None
    """Units per second (Hz), for tokenizers."""
    encoder: EncoderConfig | None = None
    """The encoder of an encoder tokenizer (None: acoustic features, or a vocoder)."""
    layer: int | None = None
    """Encoder layer the quantizer reads (None: the final output)."""
    features: FeatureConfig | None = None
    """Acoustic features of a k-means tokenizer on features (None: an encoder model)."""
    window: WindowSpec | None = None
    """The canonical streaming window, once chosen."""
    steps: StepSpec | None = None
    """Incremental steps (bounded-context encoders exported with a step graph): then
    tokenization, offline and streamed, runs by steps instead of windows."""
    graphs: Mapping[str, str] = field(default_factory=dict)
    """Exported ONNX graph file -> its sha256."""
    precision: str = "fp32"
    """What the exported graphs compute in: ``fp32``, or ``fp16`` (for GPUs)."""
    sample_rate: int | None = None
    """Output sample rate of a vocoder (Hz)."""
    generator: Mapping[str, Any] = field(default_factory=dict)
    """A vocoder's generator config (``vocoder.config.GeneratorConfig`` fields)."""
    speakers: tuple[str, ...] = ()
    """A vocoder's speakers (index = speaker id)."""
    units_model: Mapping[str, str] = field(default_factory=dict)
    """The tokenizer whose units a vocoder speaks: ``name`` and ``fingerprint``."""
    section: Mapping[str, Any] = field(default_factory=dict)
    """The ``tokenizer`` section exactly as stored: what the fingerprint covers."""
    train: Mapping[str, Any] = field(default_factory=dict)
    """Training facts for the card (free-form, not part of the fingerprint)."""

    @property
    def exported(self) -> bool:
        return MODEL_GRAPH in self.graphs

    @classmethod
    def new(
        cls,
        *,
        name: str,
        kind: str,
        K: int,
        section: Mapping[str, Any],
        train: Mapping[str, Any],
        K2: int | None = None,
    ) -> ModelConfig:
        """A config for a model about to be saved, validated in the JSON form it is stored in
        (tuples become lists), like a loaded one."""
        raw = {"name": name, "kind": kind, "K": K, "tokenizer": dict(section), "train": train}
        if K2 is not None:
            raw["K2"] = K2
        return cls.from_dict(json.loads(json.dumps(raw)), Path(name) / CONFIG)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: Path) -> ModelConfig:
        """Validate ``raw`` (read from ``source``); a ``ModelError`` names the file and field."""
        kind = _get(raw, "kind", str, source)
        if kind not in KINDS:
            raise ModelError(f"expected a model kind in {list(KINDS)} in {source}, found {kind!r}")
        section = _get(raw, "tokenizer", dict, source)
        common: dict[str, Any] = {
            "name": _get(raw, "name", str, source),
            "kind": kind,
            "K": _get(raw, "K", int, source),
            "K2": _get(raw, "K2", int, source) if raw.get("K2") is not None else None,
            "section": section,
            "train": _get(raw, "train", dict, source) if raw.get("train") is not None else {},
            "graphs": _get(section, "tokenizer.graphs", dict, source)
            if "graphs" in section
            else {},
        }
        try:
            parse = _vocoder_fields if kind == "vocoder" else _tokenizer_fields
            return cls(**common, **parse(kind, section, source))
        except ModelError:
            raise
        except (TypeError, ValueError) as e:
            raise ModelError(f"expected a valid tokenizer section in {source}: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        """The JSON that ``from_dict`` reads (the stored section, unchanged)."""
        raw: dict[str, Any] = {"name": self.name, "kind": self.kind, "K": self.K}
        if self.K2 is not None:
            raw["K2"] = self.K2
        raw["tokenizer"] = dict(self.section)
        raw["train"] = dict(self.train)
        return raw

    def with_section(self, source: Path, **changes: Any) -> ModelConfig:
        """This config with fields of the ``tokenizer`` section set (``None``: removed), e.g.
        after export."""
        raw = self.to_dict()
        for key, value in changes.items():
            if value is None:
                raw["tokenizer"].pop(key, None)
            else:
                raw["tokenizer"][key] = value
        return ModelConfig.from_dict(raw, source)


def _get(where: Mapping[str, Any], key: str, kind: type[T], source: Path) -> T:
    """``where[key]`` (``key`` may be dotted: ``tokenizer.layer`` reads ``layer``) if it is a
    ``kind``; ints pass for floats, bools never pass for ints."""
    value = where.get(key.rsplit(".", 1)[-1])
    ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
    if not ok or (kind in (int, float) and isinstance(value, bool)):
        found = "nothing" if value is None else f"{type(value).__name__} {value!r}"
        raise ModelError(f"expected {key} ({kind.__name__}) in {source}, found {found}")
    return value  # type: ignore[return-value]  # an int where a float was asked is fine


def _tokenizer_fields(kind: str, section: Mapping[str, Any], source: Path) -> dict[str, Any]:
    out: dict[str, Any] = {
        "frame_rate": float(_get(section, "tokenizer.frame_rate", float, source)),
    }
    if section.get("window") is not None:
        out["window"] = WindowSpec(**_get(section, "tokenizer.window", dict, source))
    if section.get("precision") is not None:
        out["precision"] = _get(section, "tokenizer.precision", str, source)
        if out["precision"] not in PRECISIONS:
            raise ModelError(
                f"expected tokenizer.precision in {PRECISIONS} in {source}, "
                f"found {out['precision']!r}"
            )
    if kind == "kmeans" and "features" in section:
        out["features"] = FeatureConfig(**_get(section, "tokenizer.features", dict, source))
        return out
    encoder = _get(section, "tokenizer.encoder", dict, source)
    out["encoder"] = EncoderConfig.from_dict(encoder)
    if section.get("layer") is not None:
        out["layer"] = _get(section, "tokenizer.layer", int, source)
    if section.get("step") is not None:
        step = _get(section, "tokenizer.step", dict, source)
        step_ms = _get(step, "tokenizer.step.step_ms", int, source)
        out["steps"] = step_spec(out["encoder"], out.get("layer"), step_ms)
    return out


def _vocoder_fields(kind: str, section: Mapping[str, Any], source: Path) -> dict[str, Any]:
    generator = _get(section, "tokenizer.generator", dict, source)
    units_model = _get(section, "tokenizer.units_model", dict, source)
    return {
        "generator": generator,
        "sample_rate": _get(section, "tokenizer.sample_rate", int, source),
        "speakers": tuple(_get(generator, "tokenizer.generator.speakers", list, source)),
        "units_model": {
            key: _get(units_model, f"tokenizer.units_model.{key}", str, source)
            for key in ("name", "fingerprint")
        },
    }


@dataclass(frozen=True)
class ModelDir:
    path: Path
    config: ModelConfig
    tensors: dict[str, np.ndarray]
    fingerprint: str


def fingerprint(section: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256(json.dumps(section, sort_keys=True).encode())
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{t.dtype.str}|{t.shape}".encode())
        h.update(t.tobytes())
    return h.hexdigest()


SUPERVISED = "SUPERVISED: fine-tuned on phone alignments — not an unsupervised model"


def save_model_dir(
    path: str | Path, config: ModelConfig, tensors: dict[str, np.ndarray], card: str
) -> ModelDir:
    """Write a model directory; ``config.section`` holds what determines the tokens. The card
    of a model that learnt from labels (``train.supervised``, here or in what it was built
    from) opens with ``SUPERVISED`` and why, under its title."""
    if (why := config.train.get("supervised")) and SUPERVISED not in card:
        title, _, rest = card.partition("\n")
        card = f"{title}\n\n**{SUPERVISED}** ({why}).\n{rest}"
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(config.section, tensors)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path / WEIGHTS))
    (path / CONFIG).write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    (path / FINGERPRINT).write_text(fp + "\n")
    (path / CARD).write_text(card)
    return ModelDir(path, config, tensors, fp)


def read_config(path: str | Path) -> ModelConfig:
    """The validated ``config.json`` of a model directory (weights not read)."""
    source = Path(path) / CONFIG
    if not source.is_file():
        raise ModelError(f"expected {CONFIG} in {path}, found no such file")
    try:
        raw = json.loads(source.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"expected JSON in {source}, found undecodable text: {e}") from e
    if not isinstance(raw, dict):
        raise ModelError(f"expected a JSON object in {source}, found {type(raw).__name__}")
    return ModelConfig.from_dict(raw, source)


def load_model_dir(path: str | Path) -> ModelDir:
    """Read and verify a model directory."""
    path = Path(path)
    missing = [n for n in (CONFIG, WEIGHTS, FINGERPRINT) if not (path / n).is_file()]
    if missing:
        raise ModelError(
            f"expected {CONFIG}, {WEIGHTS} and {FINGERPRINT} in {path}, "
            f"found no {', '.join(missing)}"
        )
    config = read_config(path)
    tensors = load_file(str(path / WEIGHTS))
    stored = (path / FINGERPRINT).read_text().strip()
    actual = fingerprint(config.section, tensors)
    if stored != actual:
        raise ModelError(
            f"expected fingerprint {stored[:16]}... as {path / FINGERPRINT} says, found "
            f"{actual[:16]}...: the model was modified after it was saved"
        )
    for name, digest in config.graphs.items():
        graph = path / name
        if not graph.is_file():
            raise ModelError(
                f"expected the graph {name} in {path} (run speechtok export), found none"
            )
        if hashlib.sha256(graph.read_bytes()).hexdigest() != digest:
            raise ModelError(
                f"expected {graph} with sha256 {digest[:16]}... as {CONFIG} "
                f"says, found other bytes: the graph was modified"
            )
    return ModelDir(path, config, tensors, actual)


def card_facts(train_info: Mapping[str, Any]) -> str:
    """The training facts of a model card: every field but the command, one bullet each."""
    return "\n".join(f"- {k}: {v}" for k, v in train_info.items() if k != "command")
