"""R-Spin: DC-Spin whose perturbed view is also distorted, with pseudo-labels and acoustic
pieces; the pieces are reproducible and frame-aligned, and a tiny run's losses fall."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tokenizer.corpus.manifest import load_corpus
from tokenizer.errors import InvalidInputError
from tokenizer.kinds import load_tokenizer
from tokenizer.model_dir import CARD, load_model_dir
from tokenizer.pieces import frame_pieces, processor, train_pieces
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.train.checkpoint import read_log
from tokenizer.train.data import TrainAudio
from tokenizer.train.distill import DistillConfig, perturbed_views
from tokenizer.train.hubert import HubertConfig, export_hubert, train_hubert
from tokenizer.train.spin import SpinConfig, export_spin, train_spin

ROOT = Path(__file__).resolve().parent.parent


def test_acoustic_pieces_are_reproducible_and_cover_every_frame() -> None:
    rng = np.random.default_rng(0)
    train = [np.repeat(rng.integers(0, 12, 60), rng.integers(1, 4, 60)) for _ in range(40)]
    model = train_pieces(train, 40)
    assert train_pieces(train, 40) == model  # same units, same BPE
    sp = processor(model)
    units = np.array([3, 3, 3, 5, 5, 7, 11, 11, 99, 99, 3])  # 99: a unit never seen
    pieces = frame_pieces(sp, units)
    assert pieces.shape == units.shape and pieces.dtype == np.int64
    # a piece spans whole runs of units: its frames change only where the units change
    changes = np.flatnonzero(np.diff(pieces))
    assert set(changes.tolist()) <= set(np.flatnonzero(np.diff(units)).tolist())
    texts = sp.encode("".join(chr(0x4E00 + u) for u in (3, 5, 7, 11, 99, 3)), out_type=str)
    assert 1 + len(changes) <= len(texts)
    assert np.array_equal(frame_pieces(processor(model), units), pieces)


@pytest.fixture(scope="module")
def base(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> TorchTokenizer:
    root, utts = load_corpus(tiny_corpus, "train")
    run = tmp_path_factory.mktemp("hubert")
    config = HubertConfig(steps=4, batch_size=2, max_seconds=1.0, warmup_steps=2, log_every=1)
    model, _ = train_hubert(run / "run", root, utts, load_tokenizer(ROOT / "models/mfcc-km100"),
                            config)  # fmt: skip
    export_hubert(model, run / "model", "tiny-hubert", {"command": "test"})
    tok = load_tokenizer(run / "model", "torch")
    assert isinstance(tok, TorchTokenizer)
    return tok


def test_rspin_losses_fall(base: TorchTokenizer, tiny_corpus: Path, tmp_path: Path) -> None:
    """All layers train on distorted views; the swapped, pseudo-label and piece losses fall;
    pieces.model is kept; neither label head is exported; the card says R-Spin."""
    root, utts = load_corpus(tiny_corpus, "train")
    config = SpinConfig(
        K1=8, K2=16, steps=40, batch_size=4, lr=2e-3, warmup_steps=1, log_every=1, views=1,
        perturb_jobs=1, train_layers=base.encoder.config.num_layers, piece_vocab=30,
        distortions=("white", "babble", "music", "reverb", "telephone", "codec"),
        noise_utterances=6, music_pieces=1,
    )  # fmt: skip
    model, step = train_spin(tmp_path / "run", base, utts[:8], root, config, pseudo=base)
    assert step == 40 and model.pieces is not None and model.pieces.out_features == 30
    assert (tmp_path / "run" / "pieces.model").is_file()
    log = [r for r in read_log(tmp_path / "run") if "loss_pieces" in r]
    assert len(log) == 40 and all(0 <= r["acc_pieces"] <= 1 for r in log)
    for key in ("loss_pieces", "loss_pseudo", "loss"):
        first, last = (np.mean([r[key] for r in part]) for part in (log[:5], log[-5:]))
        assert last < 0.8 * first, (key, first, last)
    export_spin(model, tmp_path / "m", "r", config, {"command": "test"})
    tensors = load_model_dir(tmp_path / "m").tensors
    assert not any(k.startswith(("pseudo", "pieces")) for k in tensors)
    assert "R-Spin" in (tmp_path / "m" / CARD).read_text()


def test_rspin_needs_pseudo_labels_and_known_distortions(
    base: TorchTokenizer, tiny_corpus: Path, tmp_path: Path
) -> None:
    root, utts = load_corpus(tiny_corpus, "train")
    with pytest.raises(InvalidInputError, match="pseudo-labels"):
        train_spin(tmp_path / "a", base, utts[:4], root, SpinConfig(piece_vocab=10))
    bad = SpinConfig(K1=8, steps=1, batch_size=2, views=1, distortions=("rain",))
    with pytest.raises(InvalidInputError, match="rain"):
        train_spin(tmp_path / "b", base, utts[:4], root, bad, pseudo=base)


def test_rspin_cli_wants_a_teacher(tiny_corpus: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "speechtok", "train", "rspin", "--corpus", str(tiny_corpus),
           "--base", "hubert-tiny", "--run", str(tmp_path / "r"),
           "--out", str(tmp_path / "m")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--pseudo-labels" in done.stderr
    done = subprocess.run([*cmd[:4], "dcspin", *cmd[5:], "--set", "distortions=[pink]"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "train rspin" in done.stderr


def test_distilled_students_views_are_distorted_like_rspins(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    """A student of an R-Spin teacher trains on copies distorted as R-Spin's (seeded, cached,
    keyed by the distortion settings); without distortions the copies are Spin's."""
    root, utts = load_corpus(tiny_corpus, "train")
    utts = utts[:6]
    audio = TrainAudio(root, utts)
    plain = DistillConfig(views=1, perturb_jobs=1)
    noisy = replace(plain, distortions=("white", "reverb"), noise_utterances=4)
    a = perturbed_views(tmp_path / "a", utts, audio, plain)[0]
    b = perturbed_views(tmp_path / "b", utts, audio, noisy)[0]
    again = perturbed_views(tmp_path / "c", utts, audio, noisy)[0]
    cached = (tmp_path / "b" / "view1.npy").stat().st_mtime_ns
    perturbed_views(tmp_path / "b", utts, audio, noisy)  # same settings: the cache is reused
    assert (tmp_path / "b" / "view1.npy").stat().st_mtime_ns == cached
    assert all(len(x) == len(y) for x, y in zip(a, b, strict=True))
    assert not any(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(b, again, strict=True))
    # the cache knows the settings: the plain folder is rebuilt for the noisy config
    rebuilt = perturbed_views(tmp_path / "a", utts, audio, noisy)[0]
    assert all(np.array_equal(x, y) for x, y in zip(b, rebuilt, strict=True))
