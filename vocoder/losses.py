"""HiFi-GAN's losses: L1 on log-mel spectrograms, feature matching, least-squares GAN."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from tokenizer.audio import SAMPLE_RATE


class LogMel(nn.Module):
    """80-band log-mel spectrogram of 16 kHz audio (1024-point FFT, 40 ms window, 10 ms hop)."""

    def __init__(self) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=1024,
            win_length=640,
            hop_length=160,
            n_mels=80,
            f_max=8000,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.clamp(self.mel(x), min=1e-5))


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(
        (torch.mean((1 - r) ** 2) + torch.mean(f**2) for r, f in zip(real, fake, strict=True)),
        torch.zeros(()),
    )


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    return sum((torch.mean((1 - f) ** 2) for f in fake), torch.zeros(()))


def feature_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    return sum(
        (
            torch.mean(torch.abs(r.detach() - f))
            for rs, fs in zip(real, fake, strict=True)
            for r, f in zip(rs, fs, strict=True)
        ),
        torch.zeros(()),
    )
