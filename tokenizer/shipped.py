"""Shipped models: the model directories under ``models/`` (or ``$SPEECHTOK_MODELS``), one of
them named in ``models/DEFAULT``. Wherever a model is asked for, a directory path or a shipped
model's name is accepted; no model means the default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tokenizer.model_dir import CONFIG, ModelError, read_config

MODELS_ENV = "SPEECHTOK_MODELS"
DEFAULT_FILE = "DEFAULT"
DEFAULT_VOCODER_FILE = "DEFAULT_VOCODER"


def models_root() -> Path:
    env = os.environ.get(MODELS_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


def default_name(default_file: str = DEFAULT_FILE) -> str:
    path = models_root() / default_file
    if not path.is_file():
        raise ModelError(f"expected the default model's name in {path}, found no such file")
    return path.read_text().strip()


def shipped() -> list[dict[str, Any]]:
    """One record per shipped model: name, kind, K, path, default (the default tokenizer, or
    the default vocoder), supervised (whether it, or what it was built from, learnt from
    labels)."""
    root = models_root()
    defaults = {
        default_name(f) for f in (DEFAULT_FILE, DEFAULT_VOCODER_FILE) if (root / f).is_file()
    }
    out = []
    for d in sorted(p for p in root.iterdir() if (p / CONFIG).is_file()) if root.is_dir() else []:
        config = read_config(d)
        out.append(
            {
                "name": d.name,
                "kind": config.kind,
                "K": config.K,
                "path": str(d),
                "default": d.name in defaults,
                "supervised": "supervised" in config.train,
            }
        )
    return out


def resolve(spec: str | Path | None, default_file: str = DEFAULT_FILE) -> Path:
    """A model directory from a path, a shipped model's name, or None (the default tokenizer,
    or the default vocoder with ``default_file=DEFAULT_VOCODER_FILE``)."""
    if spec is None:
        spec = default_name(default_file)
    path = Path(spec)
    if path.is_dir():
        return path
    candidate = models_root() / str(spec)
    if "/" not in str(spec) and (candidate / CONFIG).is_file():
        return candidate
    names = [m["name"] for m in shipped()]
    raise ModelError(
        f"expected a model directory or a shipped model name ({', '.join(names) or 'none'}), "
        f"found {str(spec)!r}"
    )
