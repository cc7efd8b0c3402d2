"""A trained generator as a vocoder model directory: weights (weight norm folded in), two ONNX
graphs, config and card.

- ``generator.onnx``: ``units [B, T]`` int64 + ``speaker [B]`` int64 -> ``audio [B, 320 T]``
  float32 (dynamic batch and length);
- ``durations.onnx``: deduplicated ``units [B, N]`` + ``speaker [B]`` -> ``log_durations [B, N]``.

The directory is a model directory like a tokenizer's (:mod:`tokenizer.model_dir`), kind
``vocoder``: its fingerprint covers the generator config, the units model it was trained for,
the weights and the graphs.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch

from tokenizer.audio import SAMPLE_RATE
from tokenizer.export import serialized, to_onnx
from tokenizer.model_dir import ModelConfig, ModelDir, card_facts, save_model_dir
from tokenizer.protocol import Tokenizer
from vocoder.model import Generator
from vocoder.runtime import DURATION_GRAPH, GENERATOR_GRAPH

OPSET = 18


def _export(module: torch.nn.Module, length_name: str, min_length: int) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=256)
    length = torch.export.Dim(length_name, min=min_length, max=100_000)
    example = (torch.zeros(2, 50, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    dims = {"units": {0: batch, 1: length}, "speaker": {0: batch}}
    return serialized(to_onnx(module, example, dims, ["units", "speaker"], opset=OPSET))


class _GeneratorGraph(torch.nn.Module):
    def __init__(self, gen: Generator) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, units: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        return self.gen(units, speaker)


def save_vocoder(
    path: str | Path, name: str, gen: Generator, units_tok: Tokenizer, info: dict[str, Any]
) -> ModelDir:
    """Fold weight norm, export both graphs and write the model directory."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    gen = copy.deepcopy(gen).eval().remove_weight_norm()
    graphs = {
        GENERATOR_GRAPH: _export(_GeneratorGraph(gen).eval(), "frames", 2),
        DURATION_GRAPH: _export(gen.durations, "units_len", 2),
    }
    hashes = {}
    for graph, data in graphs.items():
        (path / graph).write_bytes(data)
        hashes[graph] = hashlib.sha256(data).hexdigest()
    config = ModelConfig.new(
        name=name,
        kind="vocoder",
        K=gen.config.n_units,
        section={
            "generator": dataclasses.asdict(gen.config),
            "units_model": {"name": units_tok.name, "fingerprint": units_tok.fingerprint},
            "sample_rate": SAMPLE_RATE,
            "graphs": hashes,
        },
        train=info,
    )
    tensors = {k: v.detach().numpy() for k, v in gen.state_dict().items()}
    card = (
        f"# {name}\n\nUnit HiFi-GAN vocoder for `{units_tok.name}` units "
        f"({gen.config.n_units} units, {len(gen.config.speakers)} speakers, 16 kHz).\n\n"
        f"## Training\n\n{card_facts(info)}\n\nReproduce: `{info.get('command', '')}`\n"
    )
    return save_model_dir(path, config, tensors, card)
