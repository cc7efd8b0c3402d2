"""Streaming-exact students: a bounded-context encoder gives, by canonical windows that cover
its context, exactly its full-utterance units; ``speechtok train distill`` makes one from a
full-context tokenizer and the streaming curve picks such a window."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import bounded, random_spin, speech_like
from tokenizer.encoder.config import tiny
from tokenizer.encoder.model import Encoder
from tokenizer.export import export_model
from tokenizer.kinds import load_tokenizer
from tokenizer.save import save_encoder_tokenizer
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.train.checkpoint import read_log
from tokenizer.windows import WindowSpec, tokenize_windowed

CLI = [sys.executable, "-m", "speechtok"]
LENGTHS = (400, 5000, 37_000, 80_000)


def test_context_frames() -> None:
    assert tiny().context_frames is None  # full attention
    assert replace(bounded(), extractor_mode="group_norm").context_frames is None  # global norm
    assert bounded().context_frames == (4 * 2 + 1, 4 * 1 + 1)
    assert replace(bounded(), pos_conv_kernel=4).context_frames == (4 * 2 + 2, 4 * 1 + 1)


@pytest.fixture(scope="module")
def student_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random bounded-context Spin tokenizer, exported with a window that covers its context
    (9 frames before, 5 after)."""
    torch.manual_seed(3)
    out = tmp_path_factory.mktemp("bounded") / "m"
    save_encoder_tokenizer(
        out,
        name="bounded",
        kind="spin",
        encoder=Encoder(bounded()).eval(),
        layer=None,
        quantizer=random_spin(3),
        train_info={},
        card="",
    )
    export_model(out, WindowSpec(180, 160, 100))
    return out


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_covering_windows_equal_full_utterance(student_like: Path, backend: str) -> None:
    tok = load_tokenizer(student_like, backend)
    audios = [speech_like(n, i) for i, n in enumerate(LENGTHS)]
    for a in audios:
        np.testing.assert_array_equal(tok.tokenize(a), tok.tokenize(a, full_utterance=True))
    # The check can fail: a window short of the context changes units.
    short = tokenize_windowed(audios, WindowSpec(80, 160, 40), tok.encode_batch)
    assert any(
        not np.array_equal(s, tok.tokenize(a, full_utterance=True))
        for s, a in zip(short, audios, strict=True)
    )


def test_distill_cli_trains_exports_and_curve_picks_an_exact_window(
    exported: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    teacher = load_tokenizer(exported, "torch")
    assert isinstance(teacher, TorchTokenizer)
    sets = ["steps=4", "batch_size=2", "max_seconds=1.0", "warmup_steps=1", "log_every=1"]
    sets += ["attention_left=2", "lr=1e-3", "valid_every=2", "valid_batches=2"]
    cmd = [*CLI, "train", "distill", "--teacher", str(exported), "--corpus", str(tiny_corpus)]
    cmd += ["--valid-manifest", str(tiny_corpus)]  # its dev split
    cmd += ["--run", str(tmp_path / "run"), "--out", str(tmp_path / "m"), "--threads", "1"]
    for s in sets:
        cmd += ["--set", s]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["step"] == 4
    log = [r for r in read_log(tmp_path / "run") if "loss" in r]
    assert len(log) == 4 and all(np.isfinite(r["loss"]) and 0 <= r["agree"] <= 1 for r in log)
    valid = [r for r in read_log(tmp_path / "run") if "valid_loss" in r]
    assert [r["step"] for r in valid] == [2, 4] and all(0 <= r["valid_agree"] <= 1 for r in valid)
    # Perturbed copies (2 views, cached) fed about half of the rows.
    assert sum(r["perturbed_rows"] for r in log) > 0
    assert (tmp_path / "run" / "cache" / "view2.npy").is_file()

    student = load_tokenizer(tmp_path / "m", "torch")
    assert isinstance(student, TorchTokenizer) and student.kind == "spin"
    assert student.encoder.config.context_frames == (4 * 2 + 1, 4 * 1 + 1)
    assert torch.allclose(student.quantizer.codebook, teacher.quantizer.codebook)  # same ids
    # The teacher's weights were the start: the feed-forward weights are close to them.
    key = "transformer.layers.3.feed_forward.output_dense.weight"
    moved = student.encoder.encoder.state_dict()[key] - teacher.encoder.encoder.state_dict()[key]
    assert 0 < float(moved.abs().max()) < 0.1

    curve = tmp_path / "curve"
    cmd = [*CLI, "streaming-curve", "--model", str(tmp_path / "m"), "--corpus", str(tiny_corpus)]
    cmd += ["--split", "train", "--max-utterances", "3", "--backend", "torch", "--out", str(curve)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((curve / "curve.json").read_text())
    exact = [p for p in record["points"] if (p["left_ms"], p["right_ms"]) == (180, 100)]
    assert {p["chunk_ms"] for p in exact} == {160, 300, 320}
    assert all(p["agreement"] == 1.0 for p in exact)
    chosen = next(p for p in record["points"] if p == {**p, **record["chosen"]})
    assert chosen["agreement"] >= 0.97 and chosen["latency_ms"] <= 400
