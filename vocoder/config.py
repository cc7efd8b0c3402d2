"""The vocoder's configs: the generator's shape (saved beside its weights) and the training run
(saved beside its checkpoints)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tokenizer.features import HOP
from tokenizer.train.loop import TrainConfig


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig:
    """Unit HiFi-GAN (speech-resynthesis style): unit + speaker embeddings, transposed-conv
    upsampling by ``prod(upsample_rates)`` = 320 samples per unit frame, multi-receptive-field
    residual blocks, and a duration predictor for deduplicated units."""

    n_units: int
    speakers: tuple[str, ...]
    """Speaker names; speaker ``i`` is row ``i`` of the speaker table."""
    unit_dim: int = 128
    speaker_dim: int = 64
    channels: int = 192
    """Channels after the input conv; halved at each upsampling stage."""
    upsample_rates: tuple[int, ...] = (5, 4, 4, 4)
    upsample_kernels: tuple[int, ...] = (11, 8, 8, 8)
    resblock_kernels: tuple[int, ...] = (3, 7)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3), (1, 3))
    duration_channels: int = 128

    def __post_init__(self) -> None:
        if math.prod(self.upsample_rates) != HOP:
            raise ValueError(
                f"expected upsample rates multiplying to {HOP} samples per frame, "
                f"found {self.upsample_rates}"
            )
        for r, k in zip(self.upsample_rates, self.upsample_kernels, strict=True):
            if (k - r) % 2:
                raise ValueError(f"expected kernel - rate even for exact lengths, found {k}, {r}")
        if not self.speakers:
            raise ValueError("expected at least one speaker, found none")

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        d = dict(d)
        for key in ("speakers", "upsample_rates", "upsample_kernels", "resblock_kernels"):
            d[key] = tuple(d[key])
        d["resblock_dilations"] = tuple(tuple(x) for x in d["resblock_dilations"])
        return cls(**d)


@dataclass(frozen=True, kw_only=True)
class VocoderTrainConfig(TrainConfig):
    """A vocoder training run: segments of ``segment_frames`` units and their audio."""

    batch_size: int = 8
    lr: float = 2e-4
    warmup_steps: int = 50
    steps: int = 4000
    segment_frames: int = 32
    """Units per training segment (32 = 0.64 s of audio)."""
    gan_start_step: int = 0
    """Steps of mel (+ duration) loss alone before the discriminators join (a warm start that
    makes CPU training affordable: a GAN step costs ~4x a mel-only step)."""
    mel_weight: float = 45.0
    fm_weight: float = 2.0
    duration_weight: float = 1.0
    full_utterance_units: bool = True
    """Train on full-utterance units (fast to compute) or on the model's canonical windows."""
    sample_every: int = 500
    """Write audio samples to RUN/samples every this many steps."""
    generator: dict = field(default_factory=dict)
    """Overrides of :class:`GeneratorConfig` fields (``channels``, ``unit_dim``, ...)."""
