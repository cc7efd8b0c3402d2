"""Encoder: frame grid, padding invariance, presets; imports checked against a random HF model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from tokenizer.encoder.config import EncoderConfig, EncoderConfigError, ExtractorMode, base, tiny
from tokenizer.encoder.import_fairseq import (
    load_fairseq,
    load_fairseq_checkpoint,
    parse_conv_layers,
)
from tokenizer.encoder.import_hf import config_from_hf, load_hf
from tokenizer.encoder.keys import CheckpointKeyError
from tokenizer.encoder.model import Encoder
from tokenizer.errors import AudioError, InvalidInputError
from tokenizer.features import n_frames

HUBERT_CONV = {"conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2)}
SMALL_HF: dict[str, Any] = {
    "conv_dim": (32,) * 7, **HUBERT_CONV, "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "intermediate_size": 128, "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}  # fmt: skip
"""A HuBERT-shaped HF config small enough to build in milliseconds (no download)."""
ATOL = 1e-4


def small(
    extractor_mode: ExtractorMode = "group_norm", layer_norm_first: bool = False
) -> EncoderConfig:
    return replace(
        tiny(),
        conv_layers=((16, 10, 5),) + ((16, 3, 2),) * 4 + ((16, 2, 2),) * 2,
        extractor_mode=extractor_mode,
        embed_dim=32, num_layers=2, num_heads=4, ffn_dim=64, pos_conv_kernel=16,
        pos_conv_groups=4, layer_norm_first=layer_norm_first,
    )  # fmt: skip


def random_encoder(config: EncoderConfig, seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    encoder = Encoder(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a wrong mask or order shows
        for name, p in encoder.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.3 * torch.randn_like(p))
    return encoder


@pytest.mark.parametrize("n_samples", [400, 719, 720, 1000, 16000, 16321])
def test_frame_count_matches_feature_grid(n_samples: int) -> None:
    encoder = random_encoder(small())
    with torch.no_grad():
        out, frames = encoder(torch.randn(1, n_samples))
    assert out.shape == (1, n_frames(n_samples), 32)
    assert frames.tolist() == [n_frames(n_samples)]
    assert encoder.config.n_frames(n_samples) == n_frames(n_samples)


@pytest.mark.parametrize("mode", ["group_norm", "layer_norm"])
@pytest.mark.parametrize("pre_ln", [False, True])
def test_padded_batch_equals_each_utterance_alone(mode: ExtractorMode, pre_ln: bool) -> None:
    encoder = random_encoder(small(mode, pre_ln))
    lengths = [16000, 11111, 5000]
    torch.manual_seed(1)
    audio = [torch.randn(n) for n in lengths]
    batch = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True)
    with torch.no_grad():
        outs, frames = encoder.layer_outputs(batch, torch.tensor(lengths))
        assert frames.tolist() == [n_frames(n) for n in lengths]
        for i, wav in enumerate(audio):
            alone, _ = encoder.layer_outputs(wav[None])
            for layer, (b, a) in enumerate(zip(outs, alone, strict=True)):
                diff = (b[i, : frames[i]] - a[0]).abs().max().item()
                assert diff <= 1e-5, f"utterance {i} layer {layer + 1}: max diff {diff:.2e}"


def test_group_norm_without_lengths_sees_the_padding() -> None:
    """The check above can fail: ignoring lengths changes the padded utterances' outputs."""
    encoder = random_encoder(small("group_norm"))
    wav = torch.randn(8000)
    batch = torch.stack([torch.cat([wav, torch.zeros(8000)]), torch.randn(16000)])
    with torch.no_grad():
        alone, _ = encoder(wav[None])
        naive, _ = encoder(batch)
    assert (naive[0, : alone.shape[1]] - alone[0]).abs().max() > 1e-3


def test_bad_input_is_refused() -> None:
    encoder = random_encoder(small())
    with pytest.raises(AudioError, match="expected at least 400 samples"):
        encoder(torch.randn(2, 1000), torch.tensor([1000, 399]))
    with pytest.raises(AudioError, match=r"expected float waveforms of shape \[batch, samples\]"):
        encoder(torch.randn(1000))
    with pytest.raises(AudioError, match="expected lengths <= 1000"):
        encoder(torch.randn(2, 1000), torch.tensor([1000, 1001]))
    with pytest.raises(InvalidInputError, match=r"expected a layer in 1\.\.2, found 3"):
        encoder(torch.randn(1, 1000), layer=3)


def test_forward_picks_a_layer() -> None:
    encoder = random_encoder(small(layer_norm_first=True))
    wav = torch.randn(2, 4000)
    with torch.no_grad():
        outs, _ = encoder.layer_outputs(wav)
        first, _ = encoder(wav, layer=1)
        final, _ = encoder(wav)
    torch.testing.assert_close(first, outs[0])
    torch.testing.assert_close(final, encoder.transformer.layer_norm(outs[-1]))


def test_config_round_trips_through_json() -> None:
    for config in (base(), tiny(), small("layer_norm", True)):
        assert EncoderConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
        assert (config.hop, config.receptive_field) == (320, 400)
    with pytest.raises(EncoderConfigError, match=r"unknown \['heads'\]"):
        EncoderConfig.from_dict({**tiny().to_dict(), "heads": 4})
    with pytest.raises(EncoderConfigError, match="expected num_heads to divide embed_dim"):
        replace(tiny(), num_heads=3)


def test_tiny_preset_shapes() -> None:
    encoder = Encoder(tiny()).eval()
    n_params = sum(p.numel() for p in encoder.parameters())
    with torch.no_grad():
        outs, frames = encoder.layer_outputs(torch.randn(2, 16000), torch.tensor([16000, 8000]))
    assert 2e6 < n_params < 8e6, f"tiny() has {n_params:,} parameters"
    assert [tuple(o.shape) for o in outs] == [(2, 49, 256)] * 4, f"{n_params:,} parameters"
    assert frames.tolist() == [49, 24]


# --- Hugging Face import ---------------------------------------------------------------------


def random_hf(**overrides: Any) -> tuple[Any, dict[str, Any]]:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.HubertConfig(**{**SMALL_HF, **overrides})
    model = transformers.HubertModel(hf_config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.3 * torch.randn_like(p))
    return model, hf_config.to_dict()


def hf_layer_diffs(hf: Any, encoder: Encoder, wav: torch.Tensor) -> list[float]:
    """Max abs diff per layer (HF ``output_hidden_states``) and of HF's final output."""
    n = encoder.config.num_layers
    with torch.no_grad():
        ref = hf(wav, output_hidden_states=True)
        outs, _ = encoder.layer_outputs(wav)
        final, _ = encoder(wav)
    diffs = [(r - o).abs().max().item() for r, o in zip(ref.hidden_states[-n:], outs, strict=True)]
    return [*diffs, (ref.last_hidden_state - final).abs().max().item()]


@pytest.mark.parametrize(
    ("norm", "stable"), [("group", False), ("layer", False), ("layer", True), ("group", True)]
)
def test_hf_import_matches_every_layer(norm: str, stable: bool) -> None:
    hf, hf_config = random_hf(feat_extract_norm=norm, do_stable_layer_norm=stable)
    encoder = load_hf(hf.state_dict(), hf_config)
    assert encoder.config.layer_norm_first is stable
    diffs = hf_layer_diffs(hf, encoder, torch.randn(2, 9000))
    assert max(diffs) <= ATOL, f"max abs diff per layer (last: final output): {diffs}"


def test_hf_import_reads_old_weight_norm_names() -> None:
    hf, hf_config = random_hf()
    old = {
        k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): v
        for k, v in hf.state_dict().items()
    }
    assert any(k.endswith("weight_g") for k in old)
    diffs = hf_layer_diffs(hf, load_hf(old, hf_config), torch.randn(1, 6000))
    assert max(diffs) <= ATOL, diffs


def test_hf_import_fails_on_unexpected_and_missing_keys() -> None:
    hf, hf_config = random_hf()
    state = dict(hf.state_dict())
    with pytest.raises(CheckpointKeyError, match=r"unexpected lm_head\.weight"):
        load_hf({**state, "lm_head.weight": torch.zeros(3)}, hf_config)
    del state["encoder.layers.1.final_layer_norm.bias"]
    with pytest.raises(CheckpointKeyError, match=r"missing .*layers\.1\.final_layer_norm\.bias"):
        load_hf(state, hf_config)
    with pytest.raises(CheckpointKeyError, match=r"leftover .*layers\.1\."):
        load_hf(hf.state_dict(), {**hf_config, "num_hidden_layers": 1})


def test_hf_config_refuses_what_the_encoder_cannot_do() -> None:
    _, hf_config = random_hf()
    config = config_from_hf(hf_config)
    assert config.conv_layers == ((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2
    assert (config.embed_dim, config.num_layers, config.pos_conv_kernel) == (64, 2, 16)
    with pytest.raises(EncoderConfigError, match="expected HF config hidden_act='gelu'"):
        config_from_hf({**hf_config, "hidden_act": "relu"})


# --- fairseq import --------------------------------------------------------------------------

HF_TO_FAIRSEQ = [
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", None),  # depends on the mode
    (r"feature_projection\.layer_norm\.", "layer_norm."),
    (r"feature_projection\.projection\.", "post_extract_proj."),
    (r"encoder\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0."
     "weight_g"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0."
     "weight_v"),
    (r"encoder\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
    (r"encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
    (r"masked_spec_embed", "mask_emb"),
]  # fmt: skip
"""How fairseq names what HF's HubertModel holds (to write a synthetic fairseq checkpoint)."""


def fairseq_checkpoint(hf: Any, hf_config: dict[str, Any], old_args: bool = False) -> dict:
    import argparse
    import re

    layer_mode = hf_config["feat_extract_norm"] == "layer"
    conv_norm = r"feature_extractor.conv_layers.\1.2" + (".1." if layer_mode else ".")
    table = [(pattern, conv_norm if t is None else t) for pattern, t in HF_TO_FAIRSEQ]
    state: dict[str, torch.Tensor] = {}
    for key, value in hf.state_dict().items():
        for pattern, target in table:
            key = re.sub("^" + pattern, target, key)
        state[key] = value.clone()
    state |= {"label_embs_concat": torch.randn(10, 8), "final_proj.weight": torch.randn(8, 64),
              "final_proj.bias": torch.randn(8)}  # fmt: skip
    model_cfg = {
        "_name": "hubert",
        "extractor_mode": "layer_norm" if layer_mode else "default",
        "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
        "encoder_embed_dim": 64, "encoder_layers": 2, "encoder_attention_heads": 4,
        "encoder_ffn_embed_dim": 128, "layer_norm_first": hf_config["do_stable_layer_norm"],
        "conv_pos": 16, "conv_pos_groups": 4, "dropout": 0.1, "encoder_layerdrop": 0.05,
    }  # fmt: skip
    if old_args:
        return {"model": state, "args": argparse.Namespace(**model_cfg), "cfg": None}
    return {"model": state, "cfg": {"model": model_cfg, "task": {"_name": "hubert_pretraining"}}}


@pytest.mark.parametrize(
    ("norm", "stable", "old_args"),
    [("group", False, False), ("layer", True, False), ("group", False, True)],
)
def test_fairseq_import_matches_every_layer(
    tmp_path: Path, norm: str, stable: bool, old_args: bool
) -> None:
    hf, hf_config = random_hf(feat_extract_norm=norm, do_stable_layer_norm=stable)
    torch.save(fairseq_checkpoint(hf, hf_config, old_args), tmp_path / "hubert.pt")
    encoder = load_fairseq_checkpoint(tmp_path / "hubert.pt")
    assert encoder.config.layer_drop == 0.05
    diffs = hf_layer_diffs(hf, encoder, torch.randn(2, 9000))
    assert max(diffs) <= ATOL, f"max abs diff per layer (last: final output): {diffs}"


def test_fairseq_import_fails_on_unknown_and_leftover_keys(tmp_path: Path) -> None:
    hf, hf_config = random_hf()
    ckpt = fairseq_checkpoint(hf, hf_config)
    ckpt["model"]["encoder.layers.0.self_attn.rel_pos_bias.weight"] = torch.zeros(3)
    torch.save(ckpt, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointKeyError, match=r"unexpected .*self_attn\.rel_pos_bias\.weight"):
        load_fairseq_checkpoint(tmp_path / "unknown.pt")
    del ckpt["model"]["encoder.layers.0.self_attn.rel_pos_bias.weight"]
    ckpt["cfg"]["model"]["encoder_layers"] = 1
    with pytest.raises(CheckpointKeyError, match=r"leftover .*layers\.1\.attention\.q_proj"):
        load_fairseq(ckpt["model"], ckpt["cfg"]["model"])


def test_fairseq_conv_layer_spec_is_parsed_without_eval() -> None:
    assert (
        parse_conv_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2") == base().conv_layers
    )
    with pytest.raises(EncoderConfigError, match="expected conv_feature_layers"):
        parse_conv_layers("__import__('os').getcwd()")
