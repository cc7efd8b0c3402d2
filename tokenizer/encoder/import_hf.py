"""Import Hugging Face ``transformers.HubertModel`` weights and config.

``HubertModel.state_dict()`` (or ``HubertForCTC.hubert.state_dict()``) and
``HubertConfig.to_dict()`` in, an ``Encoder`` out. No transformers import is needed: the
conversion is a key rename over the table below, and it fails on any key the table does not know
or any encoder parameter left unfilled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor

from tokenizer.encoder.config import EncoderConfig, EncoderConfigError
from tokenizer.encoder.keys import CheckpointKeyError, KeyRule, load_exact, rename_keys
from tokenizer.encoder.model import Encoder

_TA = "encoder.transformer"
_POS = rf"{_TA}.pos_conv_embed.conv"

HF_KEYS: list[KeyRule] = [
    # Conv feature extractor: same names (layer_norm is the GroupNorm of layer 0 in "group"
    # mode, a LayerNorm over channels on every layer in "layer" mode).
    (r"feature_extractor\.conv_layers\.(\d+)\.(conv|layer_norm)\.(weight|bias)",
     r"feature_extractor.conv_layers.\1.\2.\3"),
    # Feature projection: LayerNorm over conv channels, then Linear(channels -> D).
    (r"feature_projection\.(layer_norm|projection)\.(weight|bias)",
     r"encoder.feature_projection.\1.\2"),
    # Positional conv with weight norm (dim=2). Old torch spells the magnitude/direction
    # weight_g / weight_v, torch.nn.utils.parametrizations spells them original0 / original1.
    (r"encoder\.pos_conv_embed\.conv\.bias", rf"{_POS}.bias"),
    (r"encoder\.pos_conv_embed\.conv\.(weight_g|parametrizations\.weight\.original0)",
     rf"{_POS}.parametrizations.weight.original0"),
    (r"encoder\.pos_conv_embed\.conv\.(weight_v|parametrizations\.weight\.original1)",
     rf"{_POS}.parametrizations.weight.original1"),
    # The encoder LayerNorm: before the layers (post-LN) or after the last (stable/pre-LN).
    (r"encoder\.layer_norm\.(weight|bias)", rf"{_TA}.layer_norm.\1"),
    # Transformer layers: attention projections, the two LayerNorms, the feed-forward block.
    (r"encoder\.layers\.(\d+)\.attention\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     rf"{_TA}.layers.\1.attention.\2.\3"),
    (r"encoder\.layers\.(\d+)\.(layer_norm|final_layer_norm)\.(weight|bias)",
     rf"{_TA}.layers.\1.\2.\3"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.(intermediate_dense|output_dense)\.(weight|bias)",
     rf"{_TA}.layers.\1.feed_forward.\2.\3"),
    # Dropped: the SpecAugment mask vector (training only).
    (r"masked_spec_embed", None),
]  # fmt: skip
"""Hugging Face ``HubertModel`` key -> ``Encoder`` key (``None``: dropped on purpose)."""

_REQUIRED: dict[str, Any] = {
    "hidden_act": "gelu",
    "feat_extract_activation": "gelu",
    "layer_norm_eps": 1e-5,
    "feat_proj_layer_norm": True,
    "conv_pos_batch_norm": False,
}
"""HF config values this encoder hard-wires (torchaudio's components); others are refused."""


def config_from_hf(hf_config: Mapping[str, Any]) -> EncoderConfig:
    """``EncoderConfig`` from a ``HubertConfig.to_dict()`` (or a ``config.json`` read as a dict)."""
    for key, value in _REQUIRED.items():
        if hf_config.get(key, value) != value:
            raise EncoderConfigError(
                f"expected HF config {key}={value!r} (the only value supported), found "
                f"{hf_config[key]!r}"
            )
    norm = hf_config.get("feat_extract_norm", "group")
    if norm not in ("group", "layer"):
        raise EncoderConfigError(f"expected feat_extract_norm 'group' or 'layer', found {norm!r}")
    dims, kernels = hf_config["conv_dim"], hf_config["conv_kernel"]
    strides = hf_config["conv_stride"]
    if not len(dims) == len(kernels) == len(strides):
        raise EncoderConfigError(
            f"expected conv_dim, conv_kernel and conv_stride of one length, found "
            f"{len(dims)}, {len(kernels)} and {len(strides)}"
        )
    return EncoderConfig(
        conv_layers=tuple(
            (int(d), int(k), int(s)) for d, k, s in zip(dims, kernels, strides, strict=True)
        ),
        extractor_mode="group_norm" if norm == "group" else "layer_norm",
        conv_bias=bool(hf_config.get("conv_bias", False)),
        embed_dim=int(hf_config["hidden_size"]),
        num_layers=int(hf_config["num_hidden_layers"]),
        num_heads=int(hf_config["num_attention_heads"]),
        ffn_dim=int(hf_config["intermediate_size"]),
        layer_norm_first=bool(hf_config.get("do_stable_layer_norm", False)),
        pos_conv_kernel=int(hf_config["num_conv_pos_embeddings"]),
        pos_conv_groups=int(hf_config["num_conv_pos_embedding_groups"]),
        dropout_input=float(hf_config.get("feat_proj_dropout", 0.0)),
        dropout=float(hf_config.get("hidden_dropout", 0.0)),
        attention_dropout=float(hf_config.get("attention_dropout", 0.0)),
        activation_dropout=float(hf_config.get("activation_dropout", 0.0)),
        layer_drop=float(hf_config.get("layerdrop", 0.0)),
    )


def convert_hf_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``HubertModel`` state dict under ``Encoder`` names; raises on keys not in ``HF_KEYS``."""
    return rename_keys(state, HF_KEYS, "Hugging Face HubertModel")


def load_hf(state: Mapping[str, Tensor], hf_config: Mapping[str, Any]) -> Encoder:
    """An ``Encoder`` (in eval mode) holding the weights of a Hugging Face ``HubertModel``."""
    encoder = Encoder(config_from_hf(hf_config))
    load_exact(encoder, convert_hf_state_dict(state), "Hugging Face HubertModel")
    return encoder.eval()


MODEL_TYPES = ("hubert", "wav2vec2", "wavlm")
"""``config.json`` model types whose encoder has this layout (a WavLM's relative-position
tensors have no place in it, so such a checkpoint fails with those keys named)."""


def hf_files(paths: Sequence[Path]) -> tuple[Path, Path]:
    """``config.json`` and the weights file of a checkpoint as ``save_pretrained`` writes it:
    its folder (``model.safetensors`` or ``pytorch_model.bin``), or the two files named."""
    files = list(paths)
    if len(files) == 1 and files[0].is_dir():
        folder = files[0]
        files = [folder / "config.json"]
        files += [p for p in (folder / "model.safetensors", folder / "pytorch_model.bin")
                  if p.is_file()][:1]  # fmt: skip
    configs = [p for p in files if p.suffix == ".json"]
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt")]
    if len(configs) != 1 or len(weights) != 1 or not all(p.is_file() for p in files):
        raise CheckpointKeyError(
            f"expected a Hugging Face checkpoint: one config.json and one model.safetensors or "
            f"pytorch_model.bin (or their folder), found {[str(p) for p in files]}"
        )
    return configs[0], weights[0]


def read_hf(
    config_file: Path, weights: Path
) -> tuple[dict[str, Tensor], dict[str, Any], list[str]]:
    """The encoder state dict, config and dropped task-head keys of a checkpoint. Task models
    (``HubertForCTC``, ``Wav2Vec2ForPreTraining``, ...) keep the encoder under ``hubert.`` /
    ``wav2vec2.`` / ``wavlm.``; that prefix is removed and the heads beside it are dropped."""
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EncoderConfigError(f"expected a JSON config at {config_file}, found {e}") from e
    if not isinstance(config, dict):
        raise EncoderConfigError(f"expected a JSON object in {config_file}, found {config!r:.60}")
    kind = config.get("model_type")
    if kind not in MODEL_TYPES:
        raise EncoderConfigError(
            f"expected a config.json of model_type {' / '.join(MODEL_TYPES)}, found {kind!r} "
            f"in {config_file}"
        )
    try:
        if weights.suffix == ".safetensors":
            state = safetensors.torch.load_file(str(weights))
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors / unpickling errors have no common base class
        raise CheckpointKeyError(
            f"expected tensors in {weights} (safetensors, or a torch state dict), found "
            f"{type(e).__name__}: {str(e)[:200]}"
        ) from e
    prefix = f"{kind}."
    if not any(k.startswith(prefix) for k in state):
        return dict(state), config, []
    dropped = sorted(k for k in state if not k.startswith(prefix))
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, config, dropped
