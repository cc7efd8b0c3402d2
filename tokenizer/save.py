"""Writing encoder tokenizers as model directories: the encoder (only the layers the tokens
need) + the quantizer's tensors + a ``ModelConfig``, so the fingerprint covers everything that
decides a unit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenizer.encoder.config import EncoderConfig
from tokenizer.encoder.model import Encoder
from tokenizer.model_dir import ModelConfig, ModelDir, card_facts, save_model_dir
from tokenizer.quantizer import NearestCentroid, Quantizer
from tokenizer.torch_tokenizer import ENCODER_PREFIX, TorchTokenizer


def encoder_tensors(
    encoder: Encoder, layer: int | None, dtype: type[np.floating] = np.float16
) -> tuple[EncoderConfig, dict[str, np.ndarray]]:
    """The encoder config and weights a tokenizer on ``layer`` needs (layers above it are
    dropped), stored as float16 by default: half the size, and the model is defined by the
    rounded weights (computation stays float32 in every backend). Imports keep float32, so that
    an imported checkpoint gives exactly its own numbers."""
    config = encoder.config.without_dropout()
    keep = config.num_layers if layer is None else layer
    config = replace(config, num_layers=keep)
    out = {}
    for k, v in encoder.state_dict().items():
        parts = k.split(".")
        if k.startswith("encoder.transformer.layers.") and int(parts[3]) >= keep:
            continue
        out[ENCODER_PREFIX + k] = v.detach().cpu().numpy().astype(dtype)
    return config, out


def save_encoder_tokenizer(
    path: str | Path,
    *,
    name: str,
    kind: str,
    encoder: Encoder,
    layer: int | None,
    quantizer: Quantizer | None,
    train_info: dict[str, Any],
    card: str,
    aux: Quantizer | None = None,
    dtype: type[np.floating] = np.float16,
) -> ModelDir:
    """Write a model directory for an encoder tokenizer of ``kind``; ``aux`` is DC-Spin's
    auxiliary codebook (stored, used only in training). Without a ``quantizer`` (an imported
    encoder that has no head) the model has K = 0: a base for training and k-means, not a
    tokenizer. ``dtype``: how encoder weights are stored (see ``encoder_tensors``)."""
    encoder_config, tensors = encoder_tensors(encoder, layer, dtype)
    if quantizer is not None:
        tensors.update(quantizer.stored())
    if aux is not None:
        tensors.update(aux.stored())
    section = {"encoder": encoder_config.to_dict(), "layer": layer, "frame_rate": 50.0}
    config = ModelConfig.new(
        name=name,
        kind=kind,
        K=0 if quantizer is None else quantizer.K,
        K2=None if aux is None else aux.K,
        section=section,
        train=train_info,
    )
    return save_model_dir(path, config, tensors, card)


def save_encoder_kmeans(
    path: str | Path,
    name: str,
    encoder: TorchTokenizer,
    layer: int | None,
    centroids: np.ndarray,
    train_info: dict[str, Any],
) -> ModelDir:
    """The HuBERT + k-means baseline on ``encoder``'s ``layer`` (its weights stored as the
    encoder's are)."""
    where = "final output" if layer is None else f"layer {layer}"
    facts = card_facts(train_info)
    card = (
        f"# {name}\n\nk-means (K={len(centroids)}) on the {where} of encoder "
        f"`{encoder.name}` ({encoder.fingerprint[:12]}): the HuBERT + k-means tokenizer as "
        f"textlesslib and fairseq build it, nearest centroid on raw features.\n\n"
        f"## Training\n\n{facts}\n\n```\n{train_info.get('command', '')}\n```\n"
    )
    return save_encoder_tokenizer(
        path,
        name=name,
        kind="kmeans",
        encoder=encoder.encoder,
        layer=layer,
        quantizer=NearestCentroid(torch.from_numpy(centroids)),
        train_info=train_info,
        card=card,
        dtype=encoder.weights_dtype,
    )
