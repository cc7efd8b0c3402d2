"""Quantizers: frame vectors -> codebook scores -> units (textlesslib's dense -> quantizer ->
units). One small interface for the torch tokenizer, the ONNX export and training:

- ``CosineCodebook``: a head (Linear -> L2 norm) scored by cosine similarity against an
  L2-normalised codebook. Spin/DC-Spin heads and HuBERT's projection + label embeddings are this
  shape; they differ only in the names their tensors carry in a model directory.
- ``NearestCentroid``: k-means centroids on raw layer features (Euclidean), as textlesslib and
  fairseq's HuBERT k-means scripts use them.

Scores are "larger is nearer" for both, so a unit is always the argmax.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from tokenizer.model_dir import ModelError

Keys = tuple[str, str, str]
"""How a ``CosineCodebook`` is stored: names of its head weight, head bias and codebook."""
SPIN_KEYS: Keys = ("head.weight", "head.bias", "codebook")
AUX_KEYS: Keys = ("aux_head.weight", "aux_head.bias", "aux_codebook")
"""DC-Spin's auxiliary codebook (training only; stored beside the primary one)."""
HUBERT_KEYS: Keys = ("proj.weight", "proj.bias", "label_embeddings")
CENTROIDS = "centroids"


class Quantizer(nn.Module):
    """Frame vectors ``[..., d]`` -> scores ``[..., K]``; units are their argmax."""

    def scores(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def K(self) -> int:
        raise NotImplementedError

    def stored(self) -> dict[str, np.ndarray]:
        """The tensors as a model directory stores them (float32)."""
        raise NotImplementedError


class CosineCodebook(Quantizer):
    """Linear -> L2 norm, scored against L2-normalised codewords (cosine similarity)."""

    def __init__(
        self,
        dim: int,
        head_dim: int,
        K: int,
        keys: Keys = SPIN_KEYS,
        init: Callable[[Tensor], Tensor] = nn.init.normal_,
    ) -> None:
        """``init`` fills the ``[K, head_dim]`` codebook (standard normal by default)."""
        super().__init__()
        self.proj = nn.Linear(dim, head_dim)
        self.codebook = nn.Parameter(init(torch.empty(K, head_dim)))
        self.keys = keys

    def scores(self, x: Tensor) -> Tensor:
        z = nn.functional.normalize(x @ self.proj.weight.T + self.proj.bias, dim=-1)
        return z @ nn.functional.normalize(self.codebook, dim=-1).T

    @property
    def K(self) -> int:
        return len(self.codebook)

    def stored(self) -> dict[str, np.ndarray]:
        values = (self.proj.weight, self.proj.bias, self.codebook)
        return {k: v.detach().float().numpy() for k, v in zip(self.keys, values, strict=True)}

    @classmethod
    def from_stored(cls, tensors: Mapping[str, np.ndarray], keys: Keys) -> CosineCodebook:
        weight, bias, codebook = (_tensor(tensors, k) for k in keys)
        q = cls(weight.shape[1], weight.shape[0], len(codebook), keys)
        with torch.no_grad():
            q.proj.weight.copy_(weight)
            q.proj.bias.copy_(bias)
            q.codebook.copy_(codebook)
        return q


class NearestCentroid(Quantizer):
    """k-means centroids: scores ``2 x.c - |c|^2`` (the argmax is the nearest centroid)."""

    def __init__(self, centroids: Tensor) -> None:
        super().__init__()
        self.centroids = nn.Buffer(centroids.float())
        self.c2 = nn.Buffer((self.centroids**2).sum(1))

    def scores(self, x: Tensor) -> Tensor:
        return 2.0 * x @ self.centroids.T - self.c2

    @property
    def K(self) -> int:
        return len(self.centroids)

    def stored(self) -> dict[str, np.ndarray]:
        return {CENTROIDS: self.centroids.numpy()}

    @classmethod
    def from_stored(cls, tensors: Mapping[str, np.ndarray]) -> NearestCentroid:
        return cls(_tensor(tensors, CENTROIDS))


STORED: dict[str, Keys | None] = {
    "hubert": HUBERT_KEYS,
    "spin": SPIN_KEYS,
    "dcspin": SPIN_KEYS,
    "kmeans": None,
}
"""The quantizer each encoder kind stores: a ``CosineCodebook`` under these keys, or (None)
``NearestCentroid`` centroids."""


def quantizer_for(kind: str, tensors: Mapping[str, np.ndarray]) -> Quantizer:
    """The quantizer an encoder tokenizer of ``kind`` stores in ``tensors``."""
    keys = STORED[kind]
    if keys is None:
        return NearestCentroid.from_stored(tensors)
    return CosineCodebook.from_stored(tensors, keys)


def _tensor(tensors: Mapping[str, np.ndarray], key: str) -> Tensor:
    if key not in tensors:
        raise ModelError(
            f"expected the quantizer tensor {key!r} in the weights, found only "
            f"{sorted(k for k in tensors if not k.startswith('encoder.'))}"
        )
    return torch.from_numpy(np.asarray(tensors[key], dtype=np.float32))
