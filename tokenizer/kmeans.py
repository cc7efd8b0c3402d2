"""k-means tokenizers over frame features: the classic acoustic baselines (MFCC / log-mel
k-means, HuBERT's first-iteration targets).

Features are standardised with training-set statistics, then each frame gets the nearest
centroid. Training uses scikit-learn's mini-batch k-means (k-means++ init) on a seeded subset
of frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tokenizer.features import FRAME_RATE, FeatureConfig, extract
from tokenizer.model_dir import ModelConfig, ModelDir, ModelError, card_facts, save_model_dir


@dataclass(frozen=True, kw_only=True)
class KmeansConfig:
    K: int = 100
    """Number of units (clusters)."""
    max_frames: int = 300_000
    """Training frames sampled (seeded) from the training audio (~1.7 h at 50 Hz)."""
    seed: int = 0
    n_init: int = 3
    """k-means++ restarts; the lowest-inertia run wins."""
    standardize: bool = True
    """Cluster standardised features (acoustic features); encoder features are clustered raw,
    as fairseq's HuBERT k-means scripts do."""


def fit_kmeans(feats: np.ndarray, config: KmeansConfig) -> dict[str, np.ndarray]:
    """Centroids (in standardised feature space) and the standardisation statistics."""
    from sklearn.cluster import MiniBatchKMeans

    rng = np.random.default_rng(config.seed)
    if len(feats) > config.max_frames:
        feats = feats[rng.choice(len(feats), config.max_frames, replace=False)]
    mean, std = feats.mean(0), feats.std(0) + 1e-5
    if not config.standardize:
        mean, std = np.zeros_like(mean), np.ones_like(std)
    km = MiniBatchKMeans(
        n_clusters=config.K,
        batch_size=10_000,
        n_init=config.n_init,
        max_iter=200,
        random_state=config.seed,
        compute_labels=False,
    )
    km.fit((feats - mean) / std)
    return {
        "centroids": km.cluster_centers_.astype(np.float32),
        "mean": mean.astype(np.float32),
        "std": std.astype(np.float32),
    }


class FeatureKmeansTokenizer:
    """Audio -> features -> nearest centroid. ``tokenize`` is stateless and deterministic."""

    kind = "kmeans"

    def __init__(self, model: ModelDir) -> None:
        c = model.config
        if c.features is None:
            raise ModelError(f"expected k-means on acoustic features in {model.path}, found none")
        self.name = c.name
        self.features = c.features
        self.centroids = model.tensors["centroids"].astype(np.float32)
        self.mean, self.std = model.tensors["mean"], model.tensors["std"]
        self.K: int = len(self.centroids)
        self.frame_rate: float = c.frame_rate or FRAME_RATE
        self.fingerprint = model.fingerprint
        self.path = model.path
        self._c2 = (self.centroids**2).sum(1)

    def tokenize(self, audio: np.ndarray, full_utterance: bool = False) -> np.ndarray:
        """Unit ids (int32), one per 20 ms frame of 16 kHz mono float audio (frame-local
        features: no windows, ``full_utterance`` changes nothing)."""
        f = (extract(audio, self.features) - self.mean) / self.std
        return (self._c2[None, :] - 2.0 * f @ self.centroids.T).argmin(1).astype(np.int32)


def save_kmeans_tokenizer(
    path: str | Path,
    name: str,
    features: FeatureConfig,
    tensors: dict[str, np.ndarray],
    train_info: dict[str, Any],
) -> ModelDir:
    config = ModelConfig.new(
        name=name,
        kind=FeatureKmeansTokenizer.kind,
        K=len(tensors["centroids"]),
        section={"features": asdict(features), "frame_rate": FRAME_RATE},
        train=train_info,
    )
    facts = card_facts(train_info)
    card = (
        f"# {name}\n\nk-means tokenizer: {features.type} features ({features.dim} dims, 50 Hz) "
        f"-> K={config.K} units (nearest centroid after standardisation).\n\n"
        f"## Training\n\n{facts}\n\n```\n{train_info.get('command', '')}\n```\n"
    )
    return save_model_dir(path, config, tensors, card)
