"""Import original fairseq HuBERT checkpoints (``hubert_base_ls960.pt`` and the like).

A fairseq checkpoint is a pickled dict: ``"model"`` (the state dict) and ``"cfg"`` (a dict whose
``"model"`` section is fairseq's ``HubertConfig``) or, in older files, ``"args"`` (an argparse
``Namespace`` with the same field names). fairseq itself is not needed: the weights are renamed
by the table below, which fails on any key it does not know and on encoder parameters left
unfilled. Pretraining-only tensors (label embeddings, the final projection, the mask embedding)
are dropped on purpose.
"""

from __future__ import annotations

import argparse
import ast
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tokenizer.encoder.config import ConvLayer, EncoderConfig, EncoderConfigError, ExtractorMode
from tokenizer.encoder.keys import CheckpointKeyError, KeyRule, load_exact, rename_keys
from tokenizer.encoder.model import Encoder
from tokenizer.quantizer import HUBERT_KEYS, CosineCodebook

_TA = "encoder.transformer"
_POS = rf"{_TA}.pos_conv_embed.conv"
_SOURCE = "fairseq HuBERT"

FAIRSEQ_KEYS: list[KeyRule] = [
    # Conv feature extractor: each layer is Sequential(conv, dropout, norm, gelu).
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)",
     r"feature_extractor.conv_layers.\1.conv.\2"),
    # extractor_mode "default": Fp32GroupNorm at index 2 of layer 0 only.
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)",
     r"feature_extractor.conv_layers.0.layer_norm.\1"),
    # extractor_mode "layer_norm": Sequential(TransposeLast, Fp32LayerNorm, TransposeLast).
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)",
     r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    # LayerNorm over conv features, then the projection to the transformer width.
    (r"layer_norm\.(weight|bias)", r"encoder.feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"encoder.feature_projection.projection.\1"),
    # Positional conv: Sequential(weight-normed conv (dim=2), SamePad, GELU).
    (r"encoder\.pos_conv\.0\.bias", rf"{_POS}.bias"),
    (r"encoder\.pos_conv\.0\.weight_g", rf"{_POS}.parametrizations.weight.original0"),
    (r"encoder\.pos_conv\.0\.weight_v", rf"{_POS}.parametrizations.weight.original1"),
    # The encoder LayerNorm: before the layers (post-LN) or after the last (pre-LN).
    (r"encoder\.layer_norm\.(weight|bias)", rf"{_TA}.layer_norm.\1"),
    # Transformer layers.
    (r"encoder\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     rf"{_TA}.layers.\1.attention.\2.\3"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)",
     rf"{_TA}.layers.\1.layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)",
     rf"{_TA}.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)",
     rf"{_TA}.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)",
     rf"{_TA}.layers.\1.final_layer_norm.\2"),
    # Dropped (pretraining only): cluster-label embeddings, the projection onto them, and the
    # learned vector that replaces masked frames.
    (r"label_embs_concat", None),
    (r"final_proj\.(weight|bias)", None),
    (r"mask_emb", None),
]  # fmt: skip
"""fairseq HuBERT key -> ``Encoder`` key (``None``: dropped on purpose)."""

_FAIRSEQ_DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default",
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False,
    "encoder_embed_dim": 768,
    "encoder_layers": 12,
    "encoder_attention_heads": 12,
    "encoder_ffn_embed_dim": 3072,
    "layer_norm_first": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "activation_fn": "gelu",
}
"""fairseq ``HubertConfig`` defaults, for fields a checkpoint leaves out."""


def config_from_fairseq(model_cfg: Mapping[str, Any]) -> EncoderConfig:
    """``EncoderConfig`` from fairseq's model config: ``ckpt["cfg"]["model"]`` or ``vars(args)``."""
    cfg = {**_FAIRSEQ_DEFAULTS, **{k: v for k, v in model_cfg.items() if v is not None}}
    if cfg["activation_fn"] != "gelu":
        raise EncoderConfigError(f"expected activation_fn 'gelu', found {cfg['activation_fn']!r}")
    if int(cfg.get("pos_conv_depth", 1)) != 1:
        raise EncoderConfigError(f"expected pos_conv_depth 1, found {cfg['pos_conv_depth']}")
    modes: dict[str, ExtractorMode] = {"default": "group_norm", "layer_norm": "layer_norm"}
    if cfg["extractor_mode"] not in modes:
        raise EncoderConfigError(
            f"expected extractor_mode 'default' or 'layer_norm', found {cfg['extractor_mode']!r}"
        )
    return EncoderConfig(
        conv_layers=parse_conv_layers(str(cfg["conv_feature_layers"])),
        extractor_mode=modes[cfg["extractor_mode"]],
        conv_bias=bool(cfg["conv_bias"]),
        embed_dim=int(cfg["encoder_embed_dim"]),
        num_layers=int(cfg["encoder_layers"]),
        num_heads=int(cfg["encoder_attention_heads"]),
        ffn_dim=int(cfg["encoder_ffn_embed_dim"]),
        layer_norm_first=bool(cfg["layer_norm_first"]),
        pos_conv_kernel=int(cfg["conv_pos"]),
        pos_conv_groups=int(cfg["conv_pos_groups"]),
        dropout_input=float(cfg.get("dropout_input", 0.0)),
        dropout=float(cfg.get("dropout", 0.0)),
        attention_dropout=float(cfg.get("attention_dropout", 0.0)),
        activation_dropout=float(cfg.get("activation_dropout", 0.0)),
        layer_drop=float(cfg.get("encoder_layerdrop", 0.0)),
    )


def parse_conv_layers(spec: str) -> tuple[ConvLayer, ...]:
    """fairseq's ``conv_feature_layers`` string, e.g. ``"[(512,10,5)] + [(512,3,2)] * 4"``.

    Evaluated over int/list/tuple literals with ``+`` and ``*`` only, never with ``eval``.
    """
    try:
        value = _literal(ast.parse(spec, mode="eval").body)
        layers = tuple((int(c), int(k), int(s)) for c, k, s in value)
    except (SyntaxError, ValueError, TypeError) as e:
        raise EncoderConfigError(
            f"expected conv_feature_layers as a list of (channels, kernel, stride), found "
            f"{spec!r} ({e})"
        ) from e
    return layers


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        items = [_literal(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
        left, right = _literal(node.left), _literal(node.right)
        return left + right if isinstance(node.op, ast.Add) else left * right
    raise ValueError(f"unsupported expression {ast.unparse(node)!r}")


def convert_fairseq_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """fairseq HuBERT state dict under ``Encoder`` names; raises on keys not in the table."""
    return rename_keys(state, FAIRSEQ_KEYS, _SOURCE)


def load_fairseq(state: Mapping[str, Tensor], model_cfg: Mapping[str, Any]) -> Encoder:
    """An ``Encoder`` (eval mode) from a fairseq state dict and model config."""
    config = config_from_fairseq(model_cfg)
    renamed = convert_fairseq_state_dict(state)
    _identity_projection(renamed, config)
    encoder = Encoder(config)
    load_exact(encoder, renamed, _SOURCE)
    return encoder.eval()


def load_fairseq_checkpoint(path: str | Path, trust_pickle: bool = False) -> Encoder:
    """An ``Encoder`` from a fairseq HuBERT ``.pt`` file (see ``read_fairseq_checkpoint``)."""
    return load_fairseq(*read_fairseq_checkpoint(path, trust_pickle))


def read_fairseq_checkpoint(
    path: str | Path, trust_pickle: bool = False
) -> tuple[Mapping[str, Tensor], Mapping[str, Any]]:
    """The state dict and model config of a fairseq ``.pt`` file.

    Read with ``torch.load(weights_only=True)`` (tensors, containers and ``argparse.Namespace``,
    which older fairseq files keep their config in); a file that pickles anything else is
    refused unless ``trust_pickle``, since unpickling runs code the file names."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        names = re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        raise CheckpointKeyError(
            f"expected a checkpoint that torch.load(weights_only=True) reads, found {path} "
            f"pickling other Python objects ({', '.join(names) or 'not allowed by torch'}); if "
            f"you trust the file, pass --trust-pickle (trust_pickle=True) to unpickle it"
        ) from e
    except ModuleNotFoundError as e:  # a trusted pickle naming a package that is not here
        raise CheckpointKeyError(
            f"expected the packages {path} pickles to be installed, found no {e.name} "
            f"(pip install {e.name}, e.g. omegaconf for fairseq's configs)"
        ) from e
    except (OSError, RuntimeError, EOFError) as e:
        raise CheckpointKeyError(f"expected a readable torch checkpoint, found {path}: {e}") from e
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping):
        raise CheckpointKeyError(
            f"expected a fairseq checkpoint dict with a 'model' state dict in {path}, found "
            f"{sorted(ckpt) if isinstance(ckpt, Mapping) else type(ckpt).__name__}"
        )
    return ckpt["model"], _model_cfg(ckpt, path)


def fairseq_head(state: Mapping[str, Tensor]) -> CosineCodebook | None:
    """HuBERT's own prediction head (``final_proj`` + ``label_embs_concat``: its units are the
    pretraining targets' ids), when the checkpoint has one for a single target set."""
    keys = ("final_proj.weight", "final_proj.bias", "label_embs_concat")
    if not all(k in state for k in keys):
        return None
    weight, bias, labels = (state[k].float().numpy() for k in keys)
    if weight.shape[0] != labels.shape[1]:  # several target sets share the projection
        return None
    return CosineCodebook.from_stored(
        {"proj.weight": weight, "proj.bias": bias, "label_embeddings": labels}, HUBERT_KEYS
    )


def _model_cfg(ckpt: Mapping[str, Any], path: str | Path) -> Mapping[str, Any]:
    cfg = ckpt.get("cfg")
    if isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        model_cfg: Mapping[str, Any] = cfg["model"]
        return model_cfg
    if ckpt.get("args") is not None:
        return dict(vars(ckpt["args"]))
    raise CheckpointKeyError(
        f"expected a 'cfg' dict with a 'model' section or an 'args' namespace in {path}, "
        f"found keys {sorted(ckpt)}"
    )


def _identity_projection(state: dict[str, Tensor], config: EncoderConfig) -> None:
    """fairseq has no ``post_extract_proj`` when conv channels equal the transformer width."""
    key = "encoder.feature_projection.projection"
    channels = config.conv_layers[-1][0]
    if f"{key}.weight" not in state and channels == config.embed_dim:
        state[f"{key}.weight"] = torch.eye(channels)
        state[f"{key}.bias"] = torch.zeros(channels)
