"""The unit HiFi-GAN generator and its duration predictor.

``Generator(units [B, T], speaker [B]) -> audio [B, 320 T]``: one unit per 20 ms frame in,
16 kHz audio out, exactly 320 samples per unit. Convolutions carry weight norm while training;
:meth:`Generator.remove_weight_norm` folds it into plain weights for inference and export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from vocoder.config import GeneratorConfig

SLOPE = 0.1


def _pad(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock(nn.Module):
    """Two dilated convs per dilation, each with a residual connection (HiFi-GAN's ResBlock1)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, dilation=d, padding=_pad(kernel, d)))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, padding=_pad(kernel)))
            for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, SLOPE)), SLOPE))
        return x


class Generator(nn.Module):
    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.units = nn.Embedding(config.n_units, config.unit_dim)
        self.speakers = nn.Embedding(len(config.speakers), config.speaker_dim)
        self.conv_pre = weight_norm(
            nn.Conv1d(config.unit_dim + config.speaker_dim, config.channels, 7, padding=3)
        )
        self.ups = nn.ModuleList()
        self.blocks: list[nn.ModuleList] = nn.ModuleList()  # type: ignore[assignment]
        ch = config.channels
        for rate, kernel in zip(config.upsample_rates, config.upsample_kernels, strict=True):
            self.ups.append(
                weight_norm(
                    nn.ConvTranspose1d(
                        ch, ch // 2, kernel, stride=rate, padding=(kernel - rate) // 2
                    )
                )
            )
            ch //= 2
            self.blocks.append(
                nn.ModuleList(
                    ResBlock(ch, k, d)
                    for k, d in zip(config.resblock_kernels, config.resblock_dilations, strict=True)
                )
            )
        self.conv_post = weight_norm(nn.Conv1d(ch, 1, 7, padding=3))
        self.durations = DurationPredictor(config)

    def forward(self, units: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """``units`` [B, T] (int64), ``speaker`` [B] (int64) -> audio [B, 320 T] in [-1, 1]."""
        x = self.units(units)
        s = self.speakers(speaker)[:, None, :].expand(-1, x.shape[1], -1)
        x = self.conv_pre(torch.cat([x, s], dim=-1).transpose(1, 2))
        for up, blocks in zip(self.ups, self.blocks, strict=True):
            x = up(F.leaky_relu(x, SLOPE))
            x = torch.stack([b(x) for b in blocks]).mean(0)
        return torch.tanh(self.conv_post(F.leaky_relu(x))).squeeze(1)

    def remove_weight_norm(self) -> Generator:
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight")
        return self


class DurationPredictor(nn.Module):
    """Log-durations (frames) of deduplicated units: two convs over unit + speaker embeddings
    (FastSpeech-style), so deduplicated units can be spoken."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        ch = config.duration_channels
        self.units = nn.Embedding(config.n_units, config.unit_dim)
        self.speakers = nn.Embedding(len(config.speakers), config.speaker_dim)
        self.conv1 = nn.Conv1d(config.unit_dim + config.speaker_dim, ch, 3, padding=1)
        self.norm1 = nn.LayerNorm(ch)
        self.conv2 = nn.Conv1d(ch, ch, 3, padding=1)
        self.norm2 = nn.LayerNorm(ch)
        self.out = nn.Linear(ch, 1)

    def forward(self, units: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """``units`` [B, N] deduplicated -> log durations in frames [B, N]."""
        x = self.units(units)
        s = self.speakers(speaker)[:, None, :].expand(-1, x.shape[1], -1)
        x = torch.cat([x, s], dim=-1).transpose(1, 2)
        x = self.norm1(F.relu(self.conv1(x)).transpose(1, 2)).transpose(1, 2)
        x = self.norm2(F.relu(self.conv2(x)).transpose(1, 2))
        return self.out(x).squeeze(-1)
