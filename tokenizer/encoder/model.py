"""The encoder: conv feature extractor (320x down) -> feature projection -> transformer.

Built from torchaudio's wav2vec2 components, so parameter names are torchaudio's
(``feature_extractor.conv_layers.N.conv.weight``, ``encoder.transformer.layers.N.attention.q_proj
.weight``, ...) and HF / fairseq checkpoints import by a key rename (``import_hf``,
``import_fairseq``). The forward pass is written here rather than taken from torchaudio so that
valid lengths flow through every step: the first conv's GroupNorm (HuBERT Base) is computed over
each utterance's valid samples only, padded frames are zeroed before the positional conv and
masked out of attention. A padded batch therefore gives, on valid frames, what each utterance
gives alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchaudio.models.wav2vec2.components import (
    ConvLayerBlock,
    EncoderLayer,
    Transformer,
    _get_encoder,
    _get_feature_extractor,
)

from tokenizer.encoder.config import EncoderConfig
from tokenizer.errors import AudioError, InvalidInputError


class Encoder(nn.Module):
    """HuBERT-style encoder; ``layer_outputs`` gives every transformer layer on the 50 Hz grid."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_extractor = _get_feature_extractor(
            config.extractor_mode, list(config.conv_layers), config.conv_bias
        )
        self.encoder = _get_encoder(
            in_features=config.conv_layers[-1][0],
            embed_dim=config.embed_dim,
            dropout_input=config.dropout_input,
            pos_conv_kernel=config.pos_conv_kernel,
            pos_conv_groups=config.pos_conv_groups,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            attention_dropout=config.attention_dropout,
            ff_interm_features=config.ffn_dim,
            ff_interm_dropout=config.activation_dropout,
            dropout=config.dropout,
            layer_norm_first=config.layer_norm_first,
            layer_drop=config.layer_drop,
        )

    @property
    def transformer(self) -> Transformer:
        transformer = self.encoder.transformer
        assert isinstance(transformer, Transformer)
        return transformer

    def layer_outputs(
        self, waveforms: Tensor, lengths: Tensor | None = None, num_layers: int | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """Outputs of the first ``num_layers`` transformer layers (all if None).

        Args:
            waveforms: ``[B, T]`` float 16 kHz audio, padded at the end.
            lengths: ``[B]`` valid samples per utterance (all ``T`` if None).
            num_layers: how many layers to run, ``1..config.num_layers``.

        Returns:
            One ``[B, F, D]`` tensor per layer (pre-LN models: before the final LayerNorm, as
            fairseq's ``extract_features(output_layer=...)``), and ``[B]`` valid frames per
            utterance, ``(lengths - 400) // 320 + 1`` for the presets. Frames past an utterance's
            valid length hold garbage.
        """
        n = self._check_num_layers(num_layers)
        x, frame_lengths, attention_mask = self._embed(waveforms, lengths)
        transformer = self.transformer
        outputs: list[Tensor] = []
        for layer in transformer.layers[:n]:
            assert isinstance(layer, EncoderLayer)
            skip = self.training and torch.rand(()).item() < self.config.layer_drop
            if not skip:
                x, _ = layer(x, attention_mask)
            outputs.append(x)
        return outputs, frame_lengths

    def forward(
        self, waveforms: Tensor, lengths: Tensor | None = None, layer: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Output of transformer ``layer`` (1-based) as ``[B, F, D]``, and valid frames ``[B]``.

        ``layer=None`` gives the model's final output: the last layer, followed by the final
        LayerNorm for pre-LN models (Hugging Face's ``last_hidden_state``).
        """
        outputs, frame_lengths = self.layer_outputs(waveforms, lengths, layer)
        x = outputs[-1]
        if layer is None and self.config.layer_norm_first:
            x = self.transformer.layer_norm(x)
        return x, frame_lengths

    def _embed(self, waveforms: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Transformer input ``[B, F, D]``, valid frames ``[B]``, additive mask ``[B, 1, F, F]``."""
        self._check_input(waveforms, lengths)
        features, frame_lengths = self._conv_features(waveforms, lengths)
        x = self.encoder.feature_projection(features)
        batch, frames, _ = x.shape
        padding = torch.arange(frames, device=x.device)[None, :] >= frame_lengths[:, None]
        x = x.masked_fill(padding[:, :, None], 0.0)  # the positional conv must see zeros there
        transformer = self.transformer
        x = x + transformer.pos_conv_embed(x)
        if not self.config.layer_norm_first:
            x = transformer.layer_norm(x)
        x = transformer.dropout(x)
        mask = torch.zeros(padding.shape, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(padding, torch.finfo(x.dtype).min)
        return x, frame_lengths, mask[:, None, None, :].expand(batch, 1, frames, frames)

    def _conv_features(self, waveforms: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """Conv features ``[B, F, C]`` and valid frames ``[B]``, normalised over valid frames."""
        x = waveforms.unsqueeze(1)
        valid = lengths
        for block in self.feature_extractor.conv_layers:
            assert isinstance(block, ConvLayerBlock)
            x = block.conv(x)
            if valid is not None:
                valid = (
                    torch.div(valid - block.kernel_size, block.stride, rounding_mode="floor") + 1
                )
            norm = block.layer_norm
            if isinstance(norm, nn.GroupNorm) and valid is not None:
                x = _masked_channel_norm(x, valid, norm)
            elif norm is not None:
                x = norm(x)
            x = nn.functional.gelu(x)
        if valid is None:
            valid = torch.full((x.shape[0],), x.shape[2], dtype=torch.long, device=x.device)
        return x.transpose(1, 2), valid

    def _check_input(self, waveforms: Tensor, lengths: Tensor | None) -> None:
        if waveforms.ndim != 2 or not waveforms.is_floating_point():
            raise AudioError(
                f"expected float waveforms of shape [batch, samples], found {waveforms.dtype} "
                f"of shape {list(waveforms.shape)}"
            )
        shortest = waveforms.shape[1] if lengths is None else int(lengths.min().item())
        if lengths is not None and (lengths.ndim != 1 or len(lengths) != len(waveforms)):
            raise AudioError(
                f"expected lengths of shape [{len(waveforms)}], found {list(lengths.shape)}"
            )
        if lengths is not None and int(lengths.max().item()) > waveforms.shape[1]:
            raise AudioError(
                f"expected lengths <= {waveforms.shape[1]} samples (the padded length), found "
                f"{int(lengths.max().item())}"
            )
        if shortest < self.config.receptive_field:
            raise AudioError(
                f"expected at least {self.config.receptive_field} samples per utterance (one "
                f"frame), found {shortest}"
            )

    def _check_num_layers(self, num_layers: int | None) -> int:
        if num_layers is None:
            return self.config.num_layers
        if not 1 <= num_layers <= self.config.num_layers:
            raise InvalidInputError(
                f"expected a layer in 1..{self.config.num_layers}, found {num_layers}"
            )
        return num_layers


def _masked_channel_norm(x: Tensor, lengths: Tensor, norm: nn.GroupNorm) -> Tensor:
    """``norm`` (one group per channel) over each utterance's first ``lengths`` frames only."""
    assert norm.num_groups == norm.num_channels and norm.affine
    valid = (torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None])[:, None, :]
    valid = valid.to(x.dtype)
    count = valid.sum(dim=2, keepdim=True).clamp(min=1.0)
    mean = (x * valid).sum(dim=2, keepdim=True) / count
    var = ((x - mean) ** 2 * valid).sum(dim=2, keepdim=True) / count
    x = (x - mean) * torch.rsqrt(var + norm.eps)
    return x * norm.weight[None, :, None] + norm.bias[None, :, None]
