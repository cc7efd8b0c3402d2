"""Tokenizers on a HuBERT-style encoder (torch inference): encoder layer features -> units.

One class serves every encoder-based kind; what differs is the quantizer on top of the layer:

- ``hubert``: HuBERT's own prediction head (projection, cosine similarity to the label
  embeddings) -- the pretraining targets' ids, predicted from unmasked audio.
- ``spin`` / ``dcspin``: the Spin head (Linear -> L2 norm) and the L2-normalised primary
  codebook; a unit is the codeword with the largest cosine similarity. DC-Spin also stores its
  auxiliary codebook (``K2``), used only in training.
- ``kmeans``: nearest centroid (Euclidean) of the raw layer features, as textlesslib and
  fairseq's HuBERT k-means scripts do it.

``config["tokenizer"]`` holds the encoder config, the layer (``null``: the final output) and the
quantizer; the weights file holds the encoder (only the layers the tokens need) and the
quantizer tensors, so the fingerprint covers everything that decides a unit.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tokenizer.encoder.config import EncoderConfig
from tokenizer.encoder.model import Encoder
from tokenizer.errors import AudioError
from tokenizer.model_dir import ModelDir, ModelDirError, card_facts, save_model_dir
from tokenizer.windows import Windowed, WindowSpec

KINDS = ("hubert", "spin", "dcspin", "kmeans")
ENCODER_PREFIX = "encoder."


class EncoderTokenizer(Windowed):
    """Audio -> encoder layer -> quantizer -> unit ids. Deterministic; batching does not change
    the units (valid lengths flow through the encoder)."""

    def __init__(self, model: ModelDir) -> None:
        cfg = model.config["tokenizer"]
        self.kind: str = model.config["kind"]
        if self.kind not in KINDS:
            raise ModelDirError(
                f"expected an encoder tokenizer kind in {KINDS}, found {self.kind!r}"
            )
        self.name: str = model.config["name"]
        self.layer: int | None = cfg["layer"]
        self.frame_rate: float = cfg["frame_rate"]
        self.fingerprint = model.fingerprint
        self.path = model.path
        self.encoder = Encoder(EncoderConfig.from_dict(cfg["encoder"])).eval()
        state = {
            k[len(ENCODER_PREFIX) :]: torch.from_numpy(v.astype(np.float32))
            for k, v in model.tensors.items()
            if k.startswith(ENCODER_PREFIX)
        }
        try:
            self.encoder.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ModelDirError(
                f"expected encoder weights matching the config in {model.path}: {e}"
            ) from e
        self.tensors = {
            k: torch.from_numpy(v)
            for k, v in model.tensors.items()
            if not k.startswith(ENCODER_PREFIX)
        }
        self.codebook = self._codebook()
        self.K: int = len(self.codebook)
        self.K2: int | None = model.config.get("K2")
        self.window = WindowSpec.from_config(cfg)

    def _codebook(self) -> Tensor:
        if self.kind == "kmeans":
            return self.tensors["centroids"]
        if self.kind == "hubert":
            return _l2(self.tensors["label_embeddings"])
        return _l2(self.tensors["codebook"])

    def features(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The vectors the quantizer sees ``[B, F, d]`` and valid frames ``[B]``."""
        x, frames = self.encoder(waveforms, lengths, layer=self.layer)
        if self.kind == "hubert":
            x = _l2(x @ self.tensors["proj.weight"].T + self.tensors["proj.bias"])
        elif self.kind in ("spin", "dcspin"):
            x = _l2(x @ self.tensors["head.weight"].T + self.tensors["head.bias"])
        return x, frames

    @torch.inference_mode()
    def layer_features(self, audio: np.ndarray, layer: int | None) -> np.ndarray:
        """Encoder output ``[F, D]`` of one utterance at ``layer`` (None: the final output)."""
        x, _ = self.encoder(
            torch.from_numpy(np.asarray(audio, dtype=np.float32))[None], layer=layer
        )
        return x[0].numpy()

    @torch.inference_mode()
    def encode_batch(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Full-utterance units of several utterances in one padded forward pass (the same as
        one at a time)."""
        if not audios:
            return []
        lengths = torch.tensor([len(a) for a in audios])
        waves = torch.zeros(len(audios), int(lengths.max()))
        for i, a in enumerate(audios):
            if a.ndim != 1:
                raise AudioError(f"expected mono audio of shape [samples], found {list(a.shape)}")
            waves[i, : len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
        x, frames = self.features(waves, lengths)
        if self.kind == "kmeans":
            c = self.codebook
            ids = ((c**2).sum(1) - 2.0 * x @ c.T).argmin(-1)
        else:
            ids = (x @ self.codebook.T).argmax(-1)
        return [ids[i, : int(frames[i])].numpy().astype(np.int32) for i in range(len(audios))]


def _l2(x: Tensor) -> Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def encoder_tensors(
    encoder: Encoder, layer: int | None
) -> tuple[EncoderConfig, dict[str, np.ndarray]]:
    """The encoder config and weights a tokenizer on ``layer`` needs (layers above it are
    dropped), stored as float16: half the size, and the model is defined by the rounded
    weights (computation stays float32 in every backend)."""
    config = encoder.config.without_dropout()
    keep = config.num_layers if layer is None else layer
    config = replace(config, num_layers=keep)
    out = {}
    for k, v in encoder.state_dict().items():
        parts = k.split(".")
        if k.startswith("encoder.transformer.layers.") and int(parts[3]) >= keep:
            continue
        out[ENCODER_PREFIX + k] = v.detach().cpu().numpy().astype(np.float16)
    return config, out


def save_encoder_tokenizer(
    path: str | Path,
    *,
    name: str,
    kind: str,
    encoder: Encoder,
    layer: int | None,
    quantizer: dict[str, np.ndarray],
    train_info: dict[str, Any],
    card: str,
    extra: dict[str, Any] | None = None,
) -> ModelDir:
    """Write a model directory for an encoder tokenizer of ``kind``."""
    if kind not in KINDS:
        raise ModelDirError(f"expected a kind in {KINDS}, found {kind!r}")
    config, tensors = encoder_tensors(encoder, layer)
    tensors.update({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in quantizer.items()})
    K = len(
        quantizer[
            "centroids"
            if kind == "kmeans"
            else "label_embeddings"
            if kind == "hubert"
            else "codebook"
        ]
    )
    model_config = {
        "name": name,
        "kind": kind,
        "K": K,
        **(extra or {}),
        "tokenizer": {"encoder": config.to_dict(), "layer": layer, "frame_rate": 50.0},
        "train": train_info,
    }
    return save_model_dir(path, model_config, tensors, card)


def save_encoder_kmeans(
    path: str | Path,
    name: str,
    encoder: EncoderTokenizer,
    layer: int | None,
    centroids: np.ndarray,
    train_info: dict[str, Any],
) -> ModelDir:
    """The HuBERT + k-means baseline on ``encoder``'s ``layer``."""
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
        quantizer={"centroids": centroids},
        train_info=train_info,
        card=card,
    )
