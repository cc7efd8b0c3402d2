"""HiFi-GAN's discriminators, narrowed for CPU training: multi-period (periods 2, 3, 5, 7, 11:
the waveform folded into 2-D by its period) and multi-scale (raw, x2 and x4 average-pooled).
Each returns, per sub-discriminator, its score map and its feature maps (for feature
matching)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from vocoder.model import SLOPE

Outputs = tuple[list[torch.Tensor], list[list[torch.Tensor]]]


def _stack(
    convs: nn.ModuleList, post: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv layers then the score conv: (flattened scores, every layer's output)."""
    fmaps = []
    for conv in convs:
        x = F.leaky_relu(conv(x), SLOPE)
        fmaps.append(x)
    x = post(x)
    fmaps.append(x)
    return x.flatten(1), fmaps


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: tuple[int, ...] = (16, 64, 128, 256)) -> None:
        super().__init__()
        self.period = period
        chans = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)))
            for a, b in itertools.pairwise(chans)
        )
        self.convs.append(weight_norm(nn.Conv2d(chans[-1], chans[-1], (5, 1), padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        return _stack(self.convs, self.post, x.view(b, 1, -1, self.period))


class ScaleDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        specs = [(1, 16, 15, 1, 1), (16, 64, 41, 4, 4), (64, 128, 41, 4, 16), (128, 256, 41, 4, 16)]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv1d(a, b, k, s, groups=g, padding=k // 2)) for a, b, k, s, g in specs
        )
        self.convs.append(weight_norm(nn.Conv1d(256, 256, 5, padding=2)))
        self.post = weight_norm(nn.Conv1d(256, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _stack(self.convs, self.post, x[:, None, :])


class Discriminators(nn.Module):
    """Both discriminator families: scores and feature maps of every sub-discriminator."""

    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), scales: int = 3) -> None:
        super().__init__()
        self.periods = nn.ModuleList(PeriodDiscriminator(p) for p in periods)
        self.scales = nn.ModuleList(ScaleDiscriminator() for _ in range(scales))

    def forward(self, x: torch.Tensor) -> Outputs:
        scores, fmaps = [], []
        for d in self.periods:
            s, f = d(x)
            scores.append(s)
            fmaps.append(f)
        y = x
        for i, d in enumerate(self.scales):
            if i:
                y = F.avg_pool1d(y[:, None, :], 4, 2, padding=2).squeeze(1)
            s, f = d(y)
            scores.append(s)
            fmaps.append(f)
        return scores, fmaps
