"""ONNX export of encoder tokenizers (``speechtok export``).

Two graphs go into the model directory:

- ``model.onnx``: ``waveforms [B, T]`` float32 16 kHz + ``lengths [B]`` int64 ->
  ``units [B, F]`` int64, ``frames [B]`` int64 (valid frames per row) and ``scores [B, F, K]``
  (cosine similarities for hubert/spin/dcspin, negative squared distances for k-means); dynamic
  batch and length.
- ``window.onnx``: the same with a fixed length of one streaming window (dynamic batch), the
  shape the streaming path feeds (fixed shapes suit CUDA EP's conv algorithm search, TensorRT
  profiles and CUDA graphs).
- ``step.onnx`` (bounded-context encoders, with ``step_ms``): the incremental step
  (``tokenizer.step_graph``; dynamic batch, fixed step): the model then tokenizes by steps.

Each graph's sha256 is written into
the config's ``tokenizer.graphs``, so the model's fingerprint covers the graphs and loading
checks them.
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from tokenizer.errors import InvalidInputError
from tokenizer.model_dir import (
    CARD,
    CONFIG,
    MODEL_GRAPH,
    STEP_GRAPH,
    WINDOW_GRAPH,
    load_model_dir,
    save_model_dir,
)
from tokenizer.quantize import check_calibration, quantize_int8
from tokenizer.step_graph import StepGraph, step_graph
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.windows import WindowSpec, cut

OPSET = 20  # ONNX Gelu: one fused kernel in ONNX Runtime (opset 18 spells it with Erf)

log = logging.getLogger(__name__)


class TokenGraph(nn.Module):
    """What the ONNX graph computes: encoder layer -> quantizer scores -> argmax."""

    def __init__(self, tok: TorchTokenizer) -> None:
        super().__init__()
        self.encoder, self.quantizer, self.layer = tok.encoder, tok.quantizer, tok.layer

    def forward(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, frames = self.encoder(waveforms, lengths, layer=self.layer)
        scores = self.quantizer.scores(x)
        return scores.argmax(-1), frames, scores


class HalfGraph(nn.Module):
    """``TokenGraph`` computed in float16 (for GPUs), with float32 inputs and scores."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(graph).half()

    def forward(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        units, frames, scores = self.inner(waveforms.half(), lengths)
        return units, frames, scores.float()


def export_graph(tok: TorchTokenizer, window_samples: int | None, precision: str = "fp32") -> bytes:
    """The serialized ONNX graph (dynamic length if ``window_samples`` is None); ``fp16``
    computes in float16 inside (inputs and scores stay float32)."""
    if precision not in ("fp32", "fp16"):  # int8 graphs are quantized from fp32 ones
        raise InvalidInputError(f"expected a precision in (fp32, fp16), found {precision!r}")
    graph: nn.Module = TokenGraph(tok)
    if precision == "fp16":
        graph = HalfGraph(graph)
    graph.eval()
    n = window_samples or 48_000
    example = (torch.zeros(2, n), torch.tensor([n, n - 320]))
    batch = torch.export.Dim("batch", min=1, max=1024)
    dims: dict[str, dict[int, object]]
    if window_samples is None:
        samples = torch.export.Dim("samples", min=tok.encoder.config.receptive_field + 1)
        dims = {"waveforms": {0: batch, 1: samples}, "lengths": {0: batch}}
    else:
        dims = {"waveforms": {0: batch}, "lengths": {0: batch}}
    proto = to_onnx(graph, example, dims, ["waveforms", "lengths"], ["units", "frames", "scores"])
    return serialized(proto if precision == "fp16" else half_initializers(proto))


def to_onnx(
    module: nn.Module,
    example: tuple[Tensor, ...],
    dynamic_shapes: Any,
    input_names: list[str],
    output_names: list[str] | None = None,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """``module`` exported by ``torch.onnx.export`` (dynamo, optimized) at ``example``."""
    with torch.inference_mode():
        program = torch.onnx.export(
            module,
            example,
            dynamo=True,
            opset_version=opset,
            dynamic_shapes=dynamic_shapes,
            input_names=input_names,
            output_names=output_names,
            optimize=True,
            verbose=False,
        )
    assert program is not None
    return program.model_proto


def serialized(proto: onnx.ModelProto) -> bytes:
    buf = io.BytesIO()
    onnx.save_model(proto, buf)
    return buf.getvalue()


def export_step_graph(graph: StepGraph) -> bytes:
    """The serialized ``step.onnx``: ``audio [B, samples]``, ``start``/``begin``/``end [B]``
    and the state tensors -> ``units [B, S]`` and ``next_<state>`` (dynamic batch)."""
    names = list(graph.state_shapes())
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = (
        torch.zeros(2, graph.spec.samples),
        torch.tensor([0, 16]),
        torch.tensor([0, 0]),
        torch.tensor([10**9, 40]),
        *(torch.zeros(2, *s) for s in graph.state_shapes().values()),
    )
    inputs = ["audio", "start", "begin", "end", *names]
    dims = (*({0: batch} for _ in inputs[:4]), tuple({0: batch} for _ in names))
    outputs = ["units", *(f"next_{n}" for n in names)]
    return serialized(half_initializers(to_onnx(graph, example, dims, inputs, outputs)))


def unit_agreement(fp16: bytes, fp32: bytes, audios: list[np.ndarray]) -> float:
    """Fraction of frames whose units the float16 graph gives as the float32 graph does
    (ONNX Runtime, the best provider here), over ``audios`` one at a time."""
    import onnxruntime as ort

    from tokenizer.onnx_tokenizer import default_providers

    a, b = (ort.InferenceSession(g, providers=default_providers()) for g in (fp16, fp32))
    same = total = 0
    for x in audios:
        feeds = {"waveforms": x[None].astype(np.float32), "lengths": np.array([len(x)])}
        u16, u32 = (s.run(["units"], feeds)[0] for s in (a, b))
        same, total = same + int((u16 == u32).sum()), total + u32.size
    return same / max(total, 1)


def half_initializers(model: onnx.ModelProto, min_size: int = 1024) -> onnx.ModelProto:
    """Store float32 initializers that are exactly float16 values (the model directory's
    weights are) as float16 plus a Cast back to float32: half the file, identical numbers.
    Tensors the exporter computed (e.g. folded weight norms) stay float32."""
    from onnx import numpy_helper

    graph = model.graph
    casts = []
    for i, init in enumerate(list(graph.initializer)):
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        value = numpy_helper.to_array(init)
        with np.errstate(over="ignore"):
            half = value.astype(np.float16)
        if value.size < min_size or not np.array_equal(half.astype(np.float32), value):
            continue
        name = init.name  # read first: init is the message CopyFrom overwrites
        stored = numpy_helper.from_array(half, name + "__f16")
        graph.initializer[i].CopyFrom(stored)
        casts.append(
            onnx.helper.make_node("Cast", [stored.name], [name], to=onnx.TensorProto.FLOAT)
        )
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def export_model(
    path: str | Path,
    window: WindowSpec | None = None,
    precision: str = "fp32",
    calibration: list[np.ndarray] | None = None,
    fp32_graphs: dict[str, bytes] | None = None,
    step_ms: int | None = None,
) -> dict[str, str]:
    """Write ``model.onnx`` and ``window.onnx`` (and ``step.onnx`` with ``step_ms``; None:
    the model's step if it has one, 0: none) into the
    model directory ``path`` and record their hashes (and the window spec, the step, and an
    ``fp16`` / ``int8`` precision) in its config; returns the graph hashes. ``int8`` calibrates
    on the canonical windows of ``calibration`` (16 kHz utterances); ``fp32_graphs``, when
    given, receives the float32 graphs it quantized, by file name (so a caller comparing
    against float32 need not export again)."""
    path = Path(path)
    model = load_model_dir(path)
    tok = TorchTokenizer(model)
    window = window or model.config.window
    if window is None:
        raise InvalidInputError(
            f"expected a streaming window spec (in {path / CONFIG} or given), found none"
        )
    if step_ms is None:  # keep the model's step; 0: none (tokenize by windows)
        step_ms = model.config.steps.step_ms if model.config.steps is not None else 0
    if step_ms and precision != "fp32":
        raise InvalidInputError(
            f"expected float32 for a step graph (steps are not quantized or halved yet), found "
            f"precision {precision!r} with a step of {step_ms} ms; export with a step of 0 "
            f"(--step-ms 0) to tokenize by windows"
        )
    steps = step_graph(tok.encoder, tok.quantizer, tok.layer, step_ms) if step_ms else None
    windows: list[np.ndarray] = []
    if precision == "int8":
        pieces = [piece for audio in calibration or [] for piece in cut(audio, window)[1]]
        windows = [p for p in pieces if len(p) == window.window_samples]
        check_calibration(windows)
    graphs = {}  # every graph is made before any file is written
    for name, samples in ((MODEL_GRAPH, None), (WINDOW_GRAPH, window.window_samples)):
        data = export_graph(tok, samples, "fp32" if precision == "int8" else precision)
        if precision == "int8":
            if fp32_graphs is not None:
                fp32_graphs[name] = data
            data = quantize_int8(data, windows)
        graphs[name] = data
    if steps is not None:
        graphs[STEP_GRAPH] = export_step_graph(steps)
    (path / STEP_GRAPH).unlink(missing_ok=True)
    hashes = {}
    for name, data in graphs.items():
        (path / name).write_bytes(data)
        hashes[name] = hashlib.sha256(data).hexdigest()
    config = model.config.with_section(
        path / CONFIG,
        window=window.to_dict(),
        step=None if steps is None else {"step_ms": steps.spec.step_ms},
        graphs=hashes,
        precision=None if precision == "fp32" else precision,
    )
    card = (path / CARD).read_text() if (path / CARD).is_file() else ""
    save_model_dir(path, config, model.tensors, card)
    return hashes
