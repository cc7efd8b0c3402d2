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


def test_colld_losses_fall_and_the_student_keeps_the_ids(
    stepped: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """A cheaper student (lighter conv, fewer layers) learns from masked inputs with the
    layer-to-layer and unit losses falling; it keeps the teacher's codebook, exports as a
    bounded-context tokenizer that runs by steps, and its card says CoLLD."""
    from tokenizer.corpus.manifest import load_corpus
    from tokenizer.train.distill import colld, export_student, teacher_layer, train_distill

    assert [teacher_layer(i, 3, 4) for i in (1, 2, 3)] == [1, 3, 4]
    teacher = load_tokenizer(stepped, "torch")
    assert isinstance(teacher, TorchTokenizer)
    root, utts = load_corpus(tiny_corpus, "train")
    config = replace(
        colld(),
        student_conv=((32, 10, 5), (64, 3, 2), (64, 3, 2), (128, 3, 2), (128, 3, 2))
        + ((256, 2, 2),) * 2,
        student_layers=2,
        attention_left=2,
        steps=40,
        batch_size=4,
        max_seconds=1.5,
        lr=2e-3,
        warmup_steps=1,
        log_every=1,
        views=0,
    )
    model, step = train_distill(tmp_path / "run", teacher, utts[:8], root, config)
    assert step == 40 and len(model.layer_maps) == 2
    log = [r for r in read_log(tmp_path / "run") if "layer_loss" in r]
    assert len(log) == 40

    def mean(key: str, rows: list[dict[str, float]]) -> float:
        return float(np.mean([r[key] for r in rows]))

    for key, fall in (("loss", 0.8), ("layer_loss", 0.95)):  # layer loss starts near chance
        assert mean(key, log[-8:]) < fall * mean(key, log[:8]), key
    assert mean("layer_acc", log[-8:]) > mean("layer_acc", log[:8])
    out = export_student(model, tmp_path / "m", "colld-test", teacher, {"command": "test"})
    student = load_tokenizer(tmp_path / "m", "torch")
    assert isinstance(student, TorchTokenizer)
    assert torch.equal(student.quantizer.codebook, teacher.quantizer.codebook)  # same ids
    assert student.encoder.config.num_layers == 2
    assert student.encoder.config.conv_layers[0] == (32, 10, 5)
    assert "CoLLD" in (out.path / "README.md").read_text()
    export_model(out.path, WindowSpec(180, 160, 100), step_ms=160)
    stepped_student = load_tokenizer(out.path)
    audio = speech_like(20_000, 4)
    np.testing.assert_array_equal(
        stepped_student.tokenize(audio), stepped_student.tokenize(audio, full_utterance=True)
    )


def test_distill_phone_labels_through_the_tokens(
    exported: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """SUPERVISED: with ``phone_labels`` the student's tokens also predict the phones, through
    each codeword's phone counts taken once from the teacher's units; that loss falls, and
    asking for it without a weight (or a weight without it) is refused."""
    from tokenizer.corpus.manifest import load_corpus
    from tokenizer.corpus.phones import PHONES
    from tokenizer.errors import InvalidInputError
    from tokenizer.train.distill import DistillConfig, codeword_labels, train_distill

    # sharp teacher scores: every frame counts once, on its codeword's row, in its label's column
    targets = [np.eye(3, dtype=np.float32)[[0, 1, 1]] * 10, np.eye(3, dtype=np.float32)[[2]] * 10]
    labels = [np.array([4, 0, 0]), np.array([1])]
    counts = codeword_labels(targets, labels, 5, 0.01)
    expected = torch.zeros(3, 5)
    expected[0, 4], expected[1, 0], expected[2, 1] = 1, 2, 1
    assert torch.allclose(counts, expected, atol=1e-4)

    teacher = load_tokenizer(exported, "torch")
    assert isinstance(teacher, TorchTokenizer)
    root, utts = load_corpus(tiny_corpus, "train")
    # a random teacher's scores are nearly flat at the default temperature 0.1, so its counts
    # would say little about the phones; at 0.01 each frame counts for its likeliest codeword
    config = DistillConfig(steps=30, batch_size=4, max_seconds=1.5, lr=2e-3, warmup_steps=1,
                           temperature=0.01, log_every=1, views=0,
                           unit_label_weight=30.0)  # fmt: skip
    with pytest.raises(InvalidInputError, match="unit_label_weight 30"):
        train_distill(tmp_path / "none", teacher, utts[:8], root, config)
    with pytest.raises(InvalidInputError, match="unit_label_weight 0"):
        unweighted = replace(config, unit_label_weight=0.0)
        train_distill(tmp_path / "none", teacher, utts[:8], root, unweighted, phone_labels=True)
    _, step = train_distill(tmp_path / "run", teacher, utts[:8], root, config, phone_labels=True)
    assert step == 30
    log = [r for r in read_log(tmp_path / "run") if "loss_unit" in r]
    assert len(log) == 30 and all(0 <= r["acc_unit"] <= 1 for r in log)
    first, last = (np.mean([r["loss_unit"] for r in part]) for part in (log[:5], log[-5:]))
    assert last < first - 0.05 and last < np.log(len(PHONES)), (first, last)
    # Engine-balanced draws (one utterance of engine "b" against seven of "a") train too.
    two = [replace(u, engine="a" if i else "b") for i, u in enumerate(utts[:8])]
    balanced = replace(config, steps=2, balance_engines=True)
    assert train_distill(tmp_path / "b", teacher, two, root, balanced, phone_labels=True)[1] == 2


def test_distill_copies_take_the_perturbation_strength(tiny_corpus: Path, tmp_path: Path) -> None:
    """The student's perturbed copies follow ``perturb_strength``: a stronger perturbation
    gives other copies, cached under a key that says so (strength 1 keeps the old key, so
    caches made before the field existed still match)."""
    from tokenizer.corpus.manifest import load_corpus
    from tokenizer.train.data import TrainAudio
    from tokenizer.train.distill import DistillConfig, perturbed_views

    root, utts = load_corpus(tiny_corpus, "train")
    utts = utts[:2]
    audio = TrainAudio(root, utts)
    plain, strong = (DistillConfig(views=1, perturb_strength=s) for s in (1.0, 1.5))
    one = perturbed_views(tmp_path / "one", utts, audio, plain)[0]
    assert "perturb_strength" not in json.loads((tmp_path / "one" / "views.json").read_text())
    more = perturbed_views(tmp_path / "more", utts, audio, strong)[0]
    assert json.loads((tmp_path / "more" / "views.json").read_text())["perturb_strength"] == 1.5
    assert all(len(a) == len(b) for a, b in zip(one, more, strict=True))
    assert not np.array_equal(np.asarray(one[0]), np.asarray(more[0]))
