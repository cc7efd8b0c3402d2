"""Real checkpoints into model directories (``speechtok import``).

- ``import_fairseq``: an original fairseq HuBERT ``.pt`` (``hubert_base_ls960.pt`` and the like).
  Its own prediction head (``final_proj`` + ``label_embs_concat``) is kept as a ``hubert``
  quantizer when it has one, so the model's units are HuBERT's predicted target ids; without one
  the model is an encoder with K = 0.
- ``import_hf``: a Hugging Face ``HubertModel`` / ``Wav2Vec2Model`` checkpoint folder (or a task
  model's, whose heads are dropped and listed); no head: K = 0.
- ``import_kmeans``: a fairseq / textlesslib k-means model (sklearn ``KMeans`` in a joblib file,
  or a ``.npy`` of centroids ``[K, D]``) as a ``kmeans`` tokenizer on an imported encoder's
  layer: the textlesslib baseline of a real checkpoint.

Encoder weights are kept in float32, so an imported model computes exactly what the checkpoint
does. The card names each source file and its sha256.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from tokenizer.encoder.import_fairseq import fairseq_head, load_fairseq, read_fairseq_checkpoint
from tokenizer.encoder.import_hf import hf_files, load_hf, read_hf
from tokenizer.encoder.keys import CheckpointKeyError
from tokenizer.encoder.model import Encoder
from tokenizer.kinds import load_tokenizer
from tokenizer.model_dir import ModelDir, card_facts
from tokenizer.quantizer import Quantizer
from tokenizer.save import save_encoder_kmeans, save_encoder_tokenizer
from tokenizer.torch_tokenizer import TorchTokenizer

log = logging.getLogger(__name__)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_fairseq(
    checkpoint: Path,
    out: Path,
    *,
    name: str | None = None,
    trust_pickle: bool = False,
    command: str = "",
) -> ModelDir:
    state, model_cfg = read_fairseq_checkpoint(checkpoint, trust_pickle)
    encoder = load_fairseq(state, model_cfg)
    head = fairseq_head(state)
    return _save(out, name, encoder, head, "fairseq HuBERT checkpoint", [checkpoint], command)


def import_hf(
    paths: list[Path], out: Path, *, name: str | None = None, command: str = ""
) -> ModelDir:
    config_file, weights = hf_files(paths)
    state, hf_config, dropped = read_hf(config_file, weights)
    if dropped:
        log.info("dropped task-head tensors (not part of the encoder): %s", ", ".join(dropped))
    encoder = load_hf(state, hf_config)
    what = f"Hugging Face {hf_config['model_type']} checkpoint"
    return _save(out, name, encoder, None, what, [config_file, weights], command)


def import_kmeans(
    encoder: Path,
    kmeans: Path,
    centroids: np.ndarray,
    out: Path,
    *,
    layer: int | None,
    name: str | None = None,
    command: str = "",
) -> ModelDir:
    """``centroids`` (``read_centroids(kmeans)``) as a kmeans tokenizer on ``encoder``'s
    ``layer``; the card names ``kmeans`` and its sha256."""
    tok = load_tokenizer(encoder, "torch")
    if not isinstance(tok, TorchTokenizer):
        raise CheckpointKeyError(
            f"expected an encoder model for the k-means, found {tok.kind} in {encoder}"
        )
    width = tok.encoder.config.embed_dim
    if centroids.ndim != 2 or centroids.shape[1] != width:
        raise CheckpointKeyError(
            f"expected k-means centroids [K, {width}] for {tok.name}'s layers, found "
            f"{list(centroids.shape)} in {kmeans}"
        )
    info: dict[str, Any] = {
        "source": str(kmeans),
        "sha256": sha256(kmeans),
        "layer": layer,
        "encoder": {"name": tok.name, "fingerprint": tok.fingerprint},
        "command": command,
    }
    return save_encoder_kmeans(out, name or out.name, tok, layer, centroids, info)


def read_centroids(path: Path, trust_pickle: bool = False) -> np.ndarray:
    """Centroids ``[K, D]`` float32 from a ``.npy`` file, or (trusted files only: unpickling runs
    code) from a joblib-pickled sklearn k-means as fairseq's and textlesslib's scripts save it."""
    if not path.is_file():
        raise CheckpointKeyError(f"expected a k-means file, found no such file: {path}")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False).astype(np.float32)
    if not trust_pickle:
        raise CheckpointKeyError(
            f"expected a .npy of centroids, found {path}: a joblib/pickle k-means model runs "
            f"code when it is loaded; if you trust the file, pass --trust-pickle"
        )
    import joblib

    model = joblib.load(path)
    centroids = getattr(model, "cluster_centers_", None)
    if centroids is None:
        raise CheckpointKeyError(
            f"expected an sklearn k-means model with cluster_centers_ in {path}, found "
            f"{type(model).__name__}"
        )
    return np.asarray(centroids, dtype=np.float32)


def _save(
    out: Path,
    name: str | None,
    encoder: Encoder,
    head: Quantizer | None,
    what: str,
    files: list[Path],
    command: str,
) -> ModelDir:
    name = name or out.name
    c = encoder.config
    params = sum(p.numel() for p in encoder.parameters())
    info: dict[str, Any] = {
        "source": [str(p) for p in files],
        "sha256": {p.name: sha256(p) for p in files},
        "command": command,
    }
    units = (
        f"its units are HuBERT's own prediction head's argmax over K={head.K} targets"
        if head is not None
        else "it has no quantizer (K = 0): use it as `--base` / `--encoder`, or import a "
        "k-means model on one of its layers with `--kmeans`"
    )
    card = (
        f"# {name}\n\nImported from a {what}: {c.num_layers} layers x {c.embed_dim}, "
        f"{params / 1e6:.1f} M parameters, weights kept in float32; {units}.\n\n"
        f"## Source\n\n{card_facts(info)}\n\n```\n{command}\n```\n"
    )
    return save_encoder_tokenizer(
        out,
        name=name,
        kind="hubert",
        encoder=encoder,
        layer=None,
        quantizer=head,
        train_info=info,
        card=card,
        dtype=np.float32,
    )
