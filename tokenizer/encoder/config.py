"""Shape and regularisation of a HuBERT-style encoder: conv feature extractor + transformer.

Field names follow fairseq's ``Wav2Vec2Config`` / torchaudio's ``wav2vec2_model`` arguments (in
the field docs), so configs read from either side map one to one. Presets are functions:
``base()`` is HuBERT Base, ``tiny()`` a CPU-trainable model on the same frame grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from tokenizer.errors import InvalidInputError

ConvLayer = tuple[int, int, int]
"""One conv layer of the feature extractor: ``(out_channels, kernel, stride)``, kernel and
stride in samples (first layer) or frames of the previous layer."""

ExtractorMode = Literal["group_norm", "layer_norm"]


class EncoderConfigError(InvalidInputError):
    """An encoder config is malformed or describes a model this package cannot build."""


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    conv_layers: tuple[ConvLayer, ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    """Conv feature extractor, ``(channels, kernel, stride)`` per layer (fairseq
    ``conv_feature_layers``). The default strides multiply to 320 samples (20 ms at 16 kHz) and
    the receptive field is 400 samples (25 ms): the frame grid of ``tokenizer.features``."""
    extractor_mode: ExtractorMode = "group_norm"
    """``"group_norm"``: one per-channel GroupNorm after the first conv (HuBERT Base);
    ``"layer_norm"``: a LayerNorm over channels after every conv (HuBERT Large)."""
    conv_bias: bool = False
    """Bias terms in the conv layers (fairseq ``conv_bias``)."""
    embed_dim: int = 768
    """Transformer width D: the dimension of every layer output ``[B, frames, D]``."""
    num_layers: int = 12
    """Transformer layers (fairseq ``encoder_layers``)."""
    num_heads: int = 12
    """Attention heads per layer; must divide ``embed_dim``."""
    ffn_dim: int = 3072
    """Hidden width of each layer's feed-forward block (fairseq ``encoder_ffn_embed_dim``)."""
    layer_norm_first: bool = False
    """Pre-LN layers (LayerNorm before attention and feed-forward, one final LayerNorm after the
    last layer) if true; post-LN (HuBERT Base) if false."""
    pos_conv_kernel: int = 128
    """Kernel of the convolutional positional embedding, in frames (fairseq ``conv_pos``)."""
    pos_conv_groups: int = 16
    """Groups of the convolutional positional embedding (fairseq ``conv_pos_groups``)."""
    attention_left: int | None = None
    """Frames before its own that each frame attends to in every layer (None: all of them)."""
    attention_right: int | None = None
    """Frames after its own that each frame attends to in every layer (None: all of them).
    With both set and ``extractor_mode="layer_norm"``, a frame depends on a bounded span of
    audio (``context_frames``), so windows that cover it give exactly the full-utterance units."""
    dropout_input: float = 0.0
    """Dropout after the feature projection (probability; training only)."""
    dropout: float = 0.0
    """Dropout after attention and feed-forward blocks (probability; training only)."""
    attention_dropout: float = 0.0
    """Dropout on attention weights (probability; training only)."""
    activation_dropout: float = 0.0
    """Dropout inside the feed-forward block (probability; training only)."""
    layer_drop: float = 0.0
    """Probability of skipping a whole layer per batch (LayerDrop; training only)."""

    def __post_init__(self) -> None:
        if not self.conv_layers or any(len(c) != 3 or min(c) < 1 for c in self.conv_layers):
            raise EncoderConfigError(
                f"expected conv_layers as non-empty (channels, kernel, stride) triples of positive "
                f"ints, found {self.conv_layers}"
            )
        if self.extractor_mode not in ("group_norm", "layer_norm"):
            raise EncoderConfigError(
                "expected extractor_mode 'group_norm' or 'layer_norm', "
                f"found {self.extractor_mode!r}"
            )
        if self.embed_dim % self.num_heads:
            raise EncoderConfigError(
                f"expected num_heads to divide embed_dim, found {self.num_heads} heads for "
                f"embed_dim {self.embed_dim}"
            )
        if any(a is not None and a < 0 for a in (self.attention_left, self.attention_right)):
            raise EncoderConfigError(
                f"expected attention_left/right as frames >= 0 or null, found "
                f"{self.attention_left}/{self.attention_right}"
            )
        if self.embed_dim % self.pos_conv_groups:
            raise EncoderConfigError(
                f"expected pos_conv_groups to divide embed_dim, found {self.pos_conv_groups} "
                f"groups for embed_dim {self.embed_dim}"
            )

    @property
    def hop(self) -> int:
        """Samples between frames: the product of the conv strides (320 for the presets)."""
        hop = 1
        for _, _, stride in self.conv_layers:
            hop *= stride
        return hop

    @property
    def receptive_field(self) -> int:
        """Samples one frame sees (400 for the presets); shorter audio gives no frame."""
        field, jump = 1, 1
        for _, kernel, stride in self.conv_layers:
            field += (kernel - 1) * jump
            jump *= stride
        return field

    @property
    def context_frames(self) -> tuple[int, int] | None:
        """Frames (before, after) that one output frame depends on, or None when that is the
        whole utterance (unlimited attention, or the utterance-wide GroupNorm of
        ``group_norm`` mode). Conv features are local (``receptive_field`` samples per frame)."""
        if (
            self.extractor_mode != "layer_norm"
            or self.attention_left is None
            or self.attention_right is None
        ):
            return None
        half = self.pos_conv_kernel // 2  # torchaudio pads k // 2 and drops the last frame
        pos_right = half - 1 if self.pos_conv_kernel % 2 == 0 else half  # when k is even
        return (
            self.num_layers * self.attention_left + half,
            self.num_layers * self.attention_right + pos_right,
        )

    def n_frames(self, n_samples: int) -> int:
        """Frames the encoder gives for ``n_samples`` of audio."""
        return max(0, (n_samples - self.receptive_field) // self.hop + 1)

    def without_dropout(self) -> EncoderConfig:
        """The same model with every dropout and LayerDrop set to 0 (inference, export)."""
        return replace(
            self,
            dropout_input=0.0,
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            layer_drop=0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (conv layers as lists) for ``config.json``."""
        d = asdict(self)
        d["conv_layers"] = [list(c) for c in self.conv_layers]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderConfig:
        """Inverse of ``to_dict``; fails on unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise EncoderConfigError(
                f"expected encoder config keys among {sorted(known)}, found unknown {unknown}"
            )
        d = dict(d)
        if "conv_layers" in d:
            d["conv_layers"] = tuple(tuple(c) for c in d["conv_layers"])
        return cls(**d)


def base() -> EncoderConfig:
    """HuBERT Base: 7 convs x 512 (GroupNorm), 12 post-LN layers x 768, 12 heads, FFN 3072
    (94.4 M parameters)."""
    return EncoderConfig()


def tiny() -> EncoderConfig:
    """A CPU-trainable encoder on HuBERT's frame grid (320x stride, 400-sample receptive field):
    a light conv stack (64-128-128-192-256-256-256 channels, since the conv front-end dominates
    CPU time), 4 pre-LN layers x 256, 4 heads, FFN 1024 (4.3 M parameters)."""
    return replace(
        base(),
        conv_layers=(
            (64, 10, 5),
            (128, 3, 2),
            (128, 3, 2),
            (192, 3, 2),
            (256, 3, 2),
            (256, 2, 2),
            (256, 2, 2),
        ),
        embed_dim=256,
        num_layers=4,
        num_heads=4,
        ffn_dim=1024,
        layer_norm_first=True,
    )
