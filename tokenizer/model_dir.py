"""Model directories: ``config.json`` + ``weights.safetensors`` + ``FINGERPRINT`` (+ a card).

The fingerprint is a sha256 over everything that determines the tokens: the canonical JSON of
``config["tokenizer"]`` (which holds the sha256 of exported ONNX graphs and the streaming
window) and every tensor (name, dtype, shape, bytes). It is written beside the
model and checked on load, so a model that was changed after export cannot pass for the
original; every token answer carries it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from tokenizer.errors import InvalidInputError

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
FINGERPRINT = "FINGERPRINT"
CARD = "README.md"


class ModelDirError(InvalidInputError):
    """A model directory is missing, incomplete or modified."""


@dataclass(frozen=True)
class ModelDir:
    path: Path
    config: dict[str, Any]
    tensors: dict[str, np.ndarray]
    fingerprint: str


def fingerprint(tokenizer_config: dict[str, Any], tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(json.dumps(tokenizer_config, sort_keys=True).encode())
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{t.dtype.str}|{t.shape}".encode())
        h.update(t.tobytes())
    return h.hexdigest()


def save_model_dir(
    path: str | Path, config: dict[str, Any], tensors: dict[str, np.ndarray], card: str
) -> ModelDir:
    """Write a model directory; ``config["tokenizer"]`` holds what determines the tokens."""
    if "tokenizer" not in config:
        raise ModelDirError(f"expected a 'tokenizer' section in the config, found {list(config)}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(config["tokenizer"], tensors)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path / WEIGHTS))
    (path / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (path / FINGERPRINT).write_text(fp + "\n")
    (path / CARD).write_text(card)
    return ModelDir(path, config, tensors, fp)


def load_model_dir(path: str | Path) -> ModelDir:
    """Read and verify a model directory."""
    path = Path(path)
    missing = [n for n in (CONFIG, WEIGHTS, FINGERPRINT) if not (path / n).is_file()]
    if missing:
        raise ModelDirError(
            f"expected {CONFIG}, {WEIGHTS} and {FINGERPRINT} in {path}, "
            f"found no {', '.join(missing)}"
        )
    config = json.loads((path / CONFIG).read_text())
    tensors = load_file(str(path / WEIGHTS))
    stored = (path / FINGERPRINT).read_text().strip()
    actual = fingerprint(config.get("tokenizer", {}), tensors)
    if stored != actual:
        raise ModelDirError(
            f"expected fingerprint {stored[:16]}... as {path / FINGERPRINT} says, found "
            f"{actual[:16]}...: the model was modified after it was saved"
        )
    for name, digest in config.get("tokenizer", {}).get("graphs", {}).items():
        graph = path / name
        if not graph.is_file():
            raise ModelDirError(
                f"expected the graph {name} in {path} (run speechtok export), found none"
            )
        if hashlib.sha256(graph.read_bytes()).hexdigest() != digest:
            raise ModelDirError(
                f"expected {graph} with sha256 {digest[:16]}... as {CONFIG} "
                f"says, found other bytes: the graph was modified"
            )
    return ModelDir(path, config, tensors, actual)


def card_facts(train_info: dict[str, Any]) -> str:
    """The training facts of a model card: every field but the command, one bullet each."""
    return "\n".join(f"- {k}: {v}" for k, v in train_info.items() if k != "command")
