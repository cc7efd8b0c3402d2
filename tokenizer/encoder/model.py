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
        self,
        waveforms: Tensor,
        lengths: Tensor | None = None,
        num_layers: int | None = None,
        mask: Tensor | None = None,
        mask_embedding: Tensor | None = None,
    ) -> tuple[list[Tensor], Tensor]:
        """Outputs of the first ``num_layers`` transformer layers (all if None).

        Args:
            waveforms: ``[B, T]`` float 16 kHz audio, padded at the end.
            lengths: ``[B]`` valid samples per utterance (all ``T`` if None).
            num_layers: how many layers to run, ``1..config.num_layers``.
            mask: ``[B, F]`` bool, frames whose projected features are replaced by
                ``mask_embedding`` ``[D]`` before the positional conv (HuBERT pretraining).

        Returns:
            One ``[B, F, D]`` tensor per layer (pre-LN models: before the final LayerNorm, as
            fairseq's ``extract_features(output_layer=...)``), and ``[B]`` valid frames per
            utterance, ``(lengths - 400) // 320 + 1`` for the presets. Frames past an utterance's
            valid length hold garbage.
        """
        n = self._check_num_layers(num_layers)
        x, frame_lengths = self.embed(waveforms, lengths, mask, mask_embedding)
        return self.run_layers(x, frame_lengths, 0, n), frame_lengths

    def run_layers(self, x: Tensor, frame_lengths: Tensor, start: int, stop: int) -> list[Tensor]:
        """Outputs of transformer layers ``start+1..stop`` given layer ``start``'s output ``x``
        (``start=0``: the output of ``embed``). Lets training cache frozen bottom layers."""
        batch, frames, _ = x.shape
        position = torch.arange(frames, device=x.device)
        blocked = (position[None, :] >= frame_lengths[:, None])[:, None, None, :]  # padding
        offset = position[None, :] - position[:, None]  # key frame - query frame
        if self.config.attention_left is not None:
            blocked = blocked | (offset < -self.config.attention_left)
        if self.config.attention_right is not None:
            blocked = blocked | (offset > self.config.attention_right)
        attention_mask = torch.zeros(blocked.shape, dtype=x.dtype, device=x.device)
        attention_mask = attention_mask.masked_fill(blocked, torch.finfo(x.dtype).min)
        attention_mask = attention_mask.expand(batch, 1, frames, frames)
        outputs: list[Tensor] = []
        for layer in self.transformer.layers[start:stop]:
            assert isinstance(layer, EncoderLayer)
            skip = self.training and torch.rand(()).item() < self.config.layer_drop
            if not skip:
                x, _ = layer(x, attention_mask)
            outputs.append(x)
        return outputs

    def forward(
        self,
        waveforms: Tensor,
        lengths: Tensor | None = None,
        layer: int | None = None,
        mask: Tensor | None = None,
        mask_embedding: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Output of transformer ``layer`` (1-based) as ``[B, F, D]``, and valid frames ``[B]``.

        ``layer=None`` gives the model's final output: the last layer, followed by the final
        LayerNorm for pre-LN models (Hugging Face's ``last_hidden_state``). ``mask`` and
        ``mask_embedding`` as in ``layer_outputs``.
        """
        outputs, frame_lengths = self.layer_outputs(waveforms, lengths, layer, mask, mask_embedding)
        x = outputs[-1]
        if layer is None:
            x = self.final_norm(x)
        return x, frame_lengths

    def final_norm(self, x: Tensor) -> Tensor:
        """The final LayerNorm of pre-LN models applied to the last layer's output (identity
        for post-LN models, which normalise inside each layer)."""
        return self.transformer.layer_norm(x) if self.config.layer_norm_first else x

    def embed(
        self,
        waveforms: Tensor,
        lengths: Tensor | None = None,
        mask: Tensor | None = None,
        mask_embedding: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Transformer input ``[B, F, D]`` (before the first layer) and valid frames ``[B]``."""
        self._check_input(waveforms, lengths)
        features, frame_lengths = self._conv_features(waveforms, lengths)
        x = self.encoder.feature_projection(features)
        if mask is not None:
            if mask_embedding is None or mask.shape != x.shape[:2]:
                raise InvalidInputError(
                    f"expected a [B, F] = {list(x.shape[:2])} mask and a mask embedding, found "
                    f"{list(mask.shape)} and {mask_embedding is not None}"
                )
            x = torch.where(mask[:, :, None], mask_embedding.to(x.dtype), x)
        padding = torch.arange(x.shape[1], device=x.device)[None, :] >= frame_lengths[:, None]
        x = x.masked_fill(padding[:, :, None], 0.0)  # the positional conv must see zeros there
        transformer = self.transformer
        x = x + transformer.pos_conv_embed(x)
        if not self.config.layer_norm_first:
            x = transformer.layer_norm(x)
        return transformer.dropout(x), frame_lengths

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
        if torch.compiler.is_exporting():  # data-dependent checks cannot be traced; the ONNX
            return  # runtime checks its inputs itself
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
