"""The incremental step of a bounded-context encoder tokenizer, in torch (``step.onnx``).

One call encodes ``S`` new frames of each row: the conv front-end on their samples only, the
feature projection, the positional conv over the last ``kernel - 1`` projected frames of the
state and the new ones, then each layer with queries for ``S`` frames and keys/values for the
``attention_left + attention_right`` cached frames plus the new ones, then the quantizer.
Every frame goes through each weight matrix once, so the work per second of audio is that of
one full-utterance pass. ``tokenizer.steps`` explains the grid, the lag and ``begin``/``end``;
this module computes a step exactly as ``Encoder`` computes those frames of a whole utterance
(same masks, same zeros outside the audio).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torchaudio.models.wav2vec2.components import EncoderLayer, SelfAttention

from tokenizer.encoder.model import Encoder
from tokenizer.quantizer import Quantizer
from tokenizer.steps import StepSpec, step_spec


class StepGraph(nn.Module):
    """``audio [B, spec.samples]``, ``start``/``begin``/``end [B]`` and the state -> units
    ``[B, S]`` of frames ``start - lag ..`` and the next state (``next_<name>``)."""

    def __init__(
        self, encoder: Encoder, quantizer: Quantizer, layer: int | None, spec: StepSpec
    ) -> None:
        """The steps of ``encoder`` read at ``layer`` (None: its final output) and quantized
        by ``quantizer`` (a torch tokenizer's parts)."""
        super().__init__()
        self.encoder, self.quantizer, self.layer = encoder, quantizer, layer
        c = self.encoder.config
        assert c.attention_left is not None and c.attention_right is not None
        self.S, self.A, self.R = spec.frames, c.attention_left, c.attention_right
        self.kernel = c.pos_conv_kernel
        self.layers = c.num_layers if layer is None else layer
        self.dim = c.embed_dim
        self.spec = spec

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each state tensor's shape without the batch axis (``tails`` only with lookahead)."""
        memory = (self.layers, self.A + self.R, self.dim)
        shapes = {"pos": (self.kernel - 1, self.dim), "keys": memory, "values": memory}
        if self.R:
            shapes["tails"] = (self.layers, self.R, self.dim)
        return shapes

    def initial_state(self) -> dict[str, np.ndarray]:
        return {k: np.zeros(s, np.float32) for k, s in self.state_shapes().items()}

    def forward(
        self, audio: Tensor, start: Tensor, begin: Tensor, end: Tensor, *state: Tensor
    ) -> tuple[Tensor, ...]:
        names = list(self.state_shapes())
        named = dict(zip(names, state, strict=True))
        S = self.S
        encoder = self.encoder
        transformer = encoder.transformer
        features, _ = encoder._conv_features(audio, None)
        x = encoder.encoder.feature_projection(features)
        new = start[:, None] + torch.arange(S, device=x.device)[None, :]
        x = x * (new < end[:, None]).to(x.dtype)[:, :, None]  # zeros past the end, as offline
        window = torch.cat([named["pos"], x], dim=1)  # frames start-(kernel-1) .. start+S-1
        pad = self.kernel // 2
        conv = transformer.pos_conv_embed.conv(window.transpose(1, 2))
        pos = nn.functional.gelu(conv[:, :, pad : pad + S]).transpose(1, 2)
        x = window[:, pad : pad + S] + pos  # frames start-lag0 .. with lag0 = kernel-1-pad
        if not encoder.config.layer_norm_first:
            x = transformer.layer_norm(x)
        first = start - (self.kernel - 1 - pad)  # absolute frame of x[:, 0]
        keys, values, tails = [], [], []
        for i in range(self.layers):
            layer = transformer.layers[i]
            assert isinstance(layer, EncoderLayer)
            x, k, v, tail = self._layer(layer, x, first, begin, end, named, i)
            keys.append(k)
            values.append(v)
            tails.append(tail)
            first = first - self.R
        if self.layer is None:
            x = encoder.final_norm(x)
        units = self.quantizer.scores(x).argmax(-1)
        out = {
            "pos": window[:, window.shape[1] - (self.kernel - 1) :],
            "keys": torch.stack(keys, 1),
            "values": torch.stack(values, 1),
        }
        if self.R:
            out["tails"] = torch.stack(tails, 1)
        return (units, *(out[name] for name in names))

    def _layer(
        self,
        layer: EncoderLayer,
        x: Tensor,
        first: Tensor,
        begin: Tensor,
        end: Tensor,
        state: dict[str, Tensor],
        i: int,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Layer ``i`` on new inputs ``x`` (frames ``first ..``): outputs for frames
        ``first - R ..``, and the layer's next keys, values and tail inputs."""
        S, A, R = self.S, self.A, self.R
        M = A + R
        pre = self.encoder.config.layer_norm_first
        attention = layer.attention
        assert isinstance(attention, SelfAttention)
        h = layer.layer_norm(x) if pre else x
        keys = torch.cat([state["keys"][:, i], attention.k_proj(h)], dim=1)  # frames first-M ..
        values = torch.cat([state["values"][:, i], attention.v_proj(h)], dim=1)
        inputs = torch.cat([state["tails"][:, i], x[:, : S - R]], dim=1) if R else x
        q = attention.q_proj(layer.layer_norm(inputs) if pre else inputs)
        # query j is frame first-R+j, key m is frame first-M+m: key - query = m - j - A
        key = torch.arange(S + M, device=x.device)
        offset = key[None, :] - torch.arange(S, device=x.device)[:, None]
        band = (offset >= 0) & (offset <= M)
        key_frame = first[:, None] - M + key[None, :]
        present = (key_frame >= begin[:, None]) & (key_frame < end[:, None])
        allowed = band[None, None] & present[:, None, None, :]
        mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(~allowed, torch.finfo(x.dtype).min)
        heads, head_dim = attention.num_heads, attention.head_dim
        batch = x.shape[0]

        def split(t: Tensor) -> Tensor:
            return t.view(batch, t.shape[1], heads, head_dim).transpose(1, 2)

        attended = nn.functional.scaled_dot_product_attention(
            split(q), split(keys), split(values), attn_mask=mask
        )
        y = inputs + attention.out_proj(attended.transpose(1, 2).reshape(batch, S, -1))
        if pre:
            y = y + layer.feed_forward(layer.final_layer_norm(y))
        else:
            y = layer.layer_norm(y)
            y = layer.final_layer_norm(y + layer.feed_forward(y))
        return y, keys[:, S:], values[:, S:], x[:, S - R :]


def step_graph(
    encoder: Encoder, quantizer: Quantizer, layer: int | None, step_ms: int
) -> StepGraph:
    """The step module of an encoder tokenizer with a bounded context."""
    return StepGraph(encoder, quantizer, layer, step_spec(encoder.config, layer, step_ms)).eval()
