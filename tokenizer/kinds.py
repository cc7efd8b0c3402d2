"""The one registry of model kinds: for each kind, how it is loaded (torch or ONNX Runtime)
and what ``speechtok info`` says of it. ``load_tokenizer``, ``info``, the service and the batch
job all go through here; nothing else decides what kind of model a directory holds.

Loaders import their backend when called, so the serving path (ONNX Runtime, numpy) never
imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizer.errors import InvalidInputError
from tokenizer.model_dir import KINDS, ModelConfig, ModelDir, ModelError, load_model_dir
from tokenizer.protocol import BACKENDS, Tokenizer
from tokenizer.shipped import resolve

if TYPE_CHECKING:
    from tokenizer.onnx_tokenizer import OnnxTokenizer

Loader = Callable[[ModelDir, str], Tokenizer]


@dataclass(frozen=True)
class Kind:
    load: Loader | None
    """Model directory + backend -> tokenizer; None: not a tokenizer."""
    info: Callable[[ModelConfig], dict[str, Any]]
    """The facts ``speechtok info`` prints (besides the fingerprint and path)."""


def _load_encoder(model: ModelDir, backend: str) -> Tokenizer:
    """ONNX Runtime if asked, or by default once exported; torch otherwise."""
    if backend not in BACKENDS:
        raise InvalidInputError(f"expected a backend in {BACKENDS}, found {backend!r}")
    if backend == "onnx" or (backend == "auto" and model.config.exported):
        from tokenizer.onnx_tokenizer import OnnxTokenizer

        return OnnxTokenizer(model)
    from tokenizer.torch_tokenizer import TorchTokenizer

    return TorchTokenizer(model)


def _load_kmeans(model: ModelDir, backend: str) -> Tokenizer:
    """Acoustic-feature k-means runs in numpy whatever the backend; on an encoder, as above."""
    if model.config.features is None:
        return _load_encoder(model, backend)
    from tokenizer.kmeans import FeatureKmeansTokenizer

    return FeatureKmeansTokenizer(model)


def _tokenizer_info(c: ModelConfig) -> dict[str, Any]:
    return {
        "name": c.name,
        "kind": c.kind,
        "K": c.K,
        "K1": c.K,
        "K2": c.K2,
        "frame_rate": c.frame_rate,
    }


def _vocoder_info(c: ModelConfig) -> dict[str, Any]:
    return {
        "name": c.name,
        "kind": c.kind,
        "K": c.K,
        "speakers": list(c.speakers),
        "sample_rate": c.sample_rate,
        "units_model": dict(c.units_model),
    }


REGISTRY: dict[str, Kind] = {
    "hubert": Kind(_load_encoder, _tokenizer_info),  # HuBERT's head over its label embeddings
    "spin": Kind(_load_encoder, _tokenizer_info),  # Spin head + codebook
    "dcspin": Kind(_load_encoder, _tokenizer_info),  # primary codebook (+ aux, training only)
    "kmeans": Kind(_load_kmeans, _tokenizer_info),  # nearest centroid: layer or features
    "vocoder": Kind(None, _vocoder_info),  # unit HiFi-GAN: units (+ speaker) -> audio
}
assert tuple(REGISTRY) == KINDS, "every kind of model_dir.KINDS has a registry entry"


def require(config: ModelConfig, path: Path, role: str, exported: bool = False) -> None:
    """Fail unless the model at ``path`` is a ``role`` ("tokenizer" or "vocoder"), exported
    to ONNX if asked."""
    is_tokenizer = REGISTRY[config.kind].load is not None
    if role == "vocoder" and is_tokenizer:
        raise ModelError(f"expected a vocoder model directory, found {config.kind!r} in {path}")
    if role == "tokenizer" and not is_tokenizer:
        raise ModelError(
            f"expected a tokenizer model directory, found a {config.kind} in {path} "
            f"(speechtok synthesize speaks units)"
        )
    if exported and not config.exported:
        raise ModelError(
            f"expected an exported model (run speechtok export {path}), "
            f"found no ONNX graph in {path}"
        )


def load_tokenizer(spec: str | Path | None = None, backend: str = "auto") -> Tokenizer:
    """Load a model (directory, shipped name, or None for the default) and return the
    tokenizer its kind names. Encoder models run in ONNX Runtime (``backend="onnx"``, the
    default once exported) or torch (``"torch"``, the default before export)."""
    path = resolve(spec)
    model = load_model_dir(path)
    require(model.config, path, "tokenizer")
    load = REGISTRY[model.config.kind].load
    assert load is not None
    return load(model, backend)


def load_served(
    spec: str | Path | None = None, *, threads: int | None = None, spinning: bool = True
) -> OnnxTokenizer:
    """An exported tokenizer in ONNX Runtime with a streaming window: what the service, the
    batch job and the benchmarks run (``threads`` and ``spinning`` as ``OnnxTokenizer``)."""
    from tokenizer.onnx_tokenizer import OnnxTokenizer

    path = resolve(spec)
    model = load_model_dir(path)
    require(model.config, path, "tokenizer")
    tok = OnnxTokenizer(model, threads=threads, spinning=spinning)  # fails if not exported
    if tok.window is None:
        raise ModelError(f"expected a model with a streaming window, found none in {path}")
    return tok


def model_info(spec: str | Path | None = None) -> dict[str, Any]:
    """What ``speechtok info`` prints of any model: its kind's facts, fingerprint and path,
    and ``supervised`` (why) when it, or what it was built from, learnt from labels."""
    path = resolve(spec)
    model = load_model_dir(path)
    facts = REGISTRY[model.config.kind].info(model.config)
    if supervised := model.config.train.get("supervised"):
        facts["supervised"] = supervised
    return {**facts, "fingerprint": model.fingerprint, "path": str(path)}
