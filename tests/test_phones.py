"""Supervised phone fine-tuning (``speechtok train phones``): frame targets from alignments, a
run that learns (loss down, frame accuracy well above the majority phone), resume == one run,
distorted and speaker-perturbed training crops (seeded, same lengths, resumable), a frozen conv
front-end, and an output that is a labelled-supervised ``hubert`` model usable as a base."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from speechtok.cli import main
from tokenizer.audio import decode_audio
from tokenizer.corpus.alignment import Segment
from tokenizer.corpus.manifest import Utterance, load_corpus
from tokenizer.corpus.phones import PHONES
from tokenizer.encoder.config import tiny
from tokenizer.encoder.model import Encoder
from tokenizer.errors import InvalidInputError
from tokenizer.kinds import load_tokenizer
from tokenizer.model_dir import load_model_dir, read_config
from tokenizer.save import save_encoder_tokenizer
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.train.checkpoint import read_log
from tokenizer.train.data import TrainAudio, crop_batch, n_frames
from tokenizer.train.phones import (
    SUPERVISED,
    PhoneClassifier,
    PhonesConfig,
    augment_crops,
    export_phones,
    fine_tune_encoder,
    phone_targets,
    train_phones,
)
from tokenizer.train.views import noisy_views

SMALL = dataclasses.replace(
    tiny(),
    conv_layers=((32, 10, 5),) + ((64, 3, 2),) * 4 + ((64, 2, 2),) * 2,
    embed_dim=64,
    num_layers=2,
    num_heads=2,
    ffn_dim=128,
    pos_conv_kernel=16,
    pos_conv_groups=4,
)
"""A random-init base small enough to learn something in seconds (same 320x frame grid)."""
LEARN = PhonesConfig(steps=40, batch_size=4, max_seconds=1.0, lr=2e-3, warmup_steps=4,
                     log_every=5, valid_every=20, valid_batches=2)  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> TorchTokenizer:
    """An encoder-only ``hubert`` model (K = 0), as an imported Hugging Face encoder is."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("phones") / "base"
    save_encoder_tokenizer(out, name="small-base", kind="hubert", encoder=Encoder(SMALL).eval(),
                           layer=None, quantizer=None, train_info={}, card="")  # fmt: skip
    tok = load_tokenizer(out, "torch")
    assert isinstance(tok, TorchTokenizer)
    return tok


def test_phone_targets_follow_the_alignment() -> None:
    utt = Utterance(id="u", audio="u.flac", alignment=[Segment("SIL", 0.0, 0.05),
                    Segment("AH", 0.05, 0.11), Segment("T", 0.11, 0.2)])  # fmt: skip
    # Frame centres 0.01, 0.03, ... s; frames past the end keep the last phone.
    ids = phone_targets(utt, 12)
    assert [PHONES[i] for i in ids] == ["SIL"] * 2 + ["AH"] * 3 + ["T"] * 7
    with pytest.raises(InvalidInputError, match="found \\['ZZ'\\]"):
        phone_targets(replace(utt, alignment=[Segment("ZZ", 0.0, 0.2)]), 3)
    with pytest.raises(InvalidInputError, match="expected a phone alignment for 'u'"):
        phone_targets(replace(utt, alignment=None), 3)


def test_phones_learns_and_exports(base: TorchTokenizer, tiny_corpus: Path, tmp_path: Path) -> None:
    root, utts = load_corpus(tiny_corpus, "train")
    audio = [decode_audio(u.audio_path(root)) for u in utts]
    targets = [phone_targets(u, n_frames(len(a))) for u, a in zip(utts, audio, strict=True)]
    majority = np.bincount(np.concatenate(targets)).max() / sum(len(t) for t in targets)
    model, step = train_phones(tmp_path / "run", base, utts, root, LEARN,
                               valid=load_corpus(tiny_corpus, "dev"))  # fmt: skip
    log = read_log(tmp_path / "run")
    train = [r for r in log if "loss" in r]
    assert step == 40 and len(train) == 8
    assert train[-1]["loss"] < train[0]["loss"] - 0.5
    assert train[-1]["acc"] > 2 * majority and train[0]["acc"] < train[-1]["acc"]
    valid = [r for r in log if "valid_acc" in r]
    assert [r["step"] for r in valid] == [20, 40] and valid[-1]["valid_acc"] > 2 * majority

    info = {"corpus": str(tiny_corpus), "command": "test"}
    export_phones(model, tmp_path / "out", "phones-small", info)
    config = read_config(tmp_path / "out")
    assert config.kind == "hubert" and len(PHONES) == config.K
    assert config.train["supervised"] == f"phone frame classification on {tiny_corpus}"
    assert SUPERVISED in (tmp_path / "out" / "README.md").read_text()
    # Its units are the predicted phones: frame accuracy of the exported tokenizer.
    tok = load_tokenizer(tmp_path / "out")
    units = np.concatenate([tok.tokenize(a, full_utterance=True) for a in audio])
    assert units.max() < len(PHONES)
    assert float(np.mean(units == np.concatenate(targets))) > 2 * majority


@pytest.mark.parametrize("balance", [False, True])
def test_phones_resume_equals_one_run(
    base: TorchTokenizer, tiny_corpus: Path, tmp_path: Path, balance: bool
) -> None:
    """Also with engine-balanced draws (``balance_engines``), which the batch workers use too."""
    root, utts = load_corpus(tiny_corpus, "train")
    if balance:  # two engines, one of them with a single utterance
        utts = [replace(u, engine="a" if i else "b") for i, u in enumerate(utts)]
    short = replace(LEARN, steps=4, warmup_steps=2, log_every=1, balance_engines=balance)
    whole, _ = train_phones(tmp_path / "a", base, utts, root, short)
    _, step = train_phones(tmp_path / "b", base, utts, root, short, until_step=2)
    assert step == 2
    pieces, step = train_phones(tmp_path / "b", base, utts, root, replace(short, workers=1))
    assert step == 4
    a, b = whole.state_dict(), pieces.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_distorted_crops_are_seeded_keep_lengths_and_resume(
    base: TorchTokenizer, tiny_corpus: Path, tmp_path: Path
) -> None:
    root, utts = load_corpus(tiny_corpus, "train")
    channel = replace(LEARN, distortions=("telephone", "codec", "pink"), noise_utterances=4)
    audio = TrainAudio(root, utts)
    noisy = noisy_views(utts, audio, channel)
    assert noisy is not None and noisy_views(utts, audio, LEARN) is None
    clean = crop_batch(audio, 0, 3, 4, 16000)
    a = augment_crops(clean, 3, noisy, utts, channel)
    assert torch.equal(a.waveforms, augment_crops(clean, 3, noisy, utts, channel).waveforms)
    assert a.waveforms.shape == clean.waveforms.shape and a.items == clean.items
    for row, n in enumerate(clean.lengths.tolist()):
        assert not torch.allclose(a.waveforms[row, :n], clean.waveforms[row, :n], atol=1e-3)
        assert not a.waveforms[row, n:].any()  # padding stays padding
    untouched = replace(channel, distort_probability=0.0)
    assert torch.equal(augment_crops(clean, 3, noisy, utts, untouched).waveforms, clean.waveforms)

    short = replace(channel, steps=4, warmup_steps=2, log_every=1)
    whole, _ = train_phones(tmp_path / "a", base, utts, root, short)
    train_phones(tmp_path / "b", base, utts, root, short, until_step=2)
    pieces, step = train_phones(tmp_path / "b", base, utts, root, replace(short, workers=1))
    assert step == 4
    a_, b_ = whole.state_dict(), pieces.state_dict()
    assert all(torch.allclose(a_[k], b_[k], atol=1e-6) for k in a_)
    plain, _ = train_phones(tmp_path / "c", base, utts, root, replace(short, distortions=()))
    assert not all(torch.allclose(a_[k], v, atol=1e-6) for k, v in plain.state_dict().items())
    info = {"corpus": "c", "run_config": dataclasses.asdict(short)}
    card = (export_phones(whole, tmp_path / "out", "x", info).path / "README.md").read_text()
    assert "training crops were distorted (telephone, codec, pink; with probability 1)" in card


def test_speaker_perturbed_crops_are_seeded_and_keep_lengths(
    base: TorchTokenizer, tiny_corpus: Path, tmp_path: Path
) -> None:
    root, utts = load_corpus(tiny_corpus, "train")
    clean = crop_batch(TrainAudio(root, utts), 0, 3, 4, 16000)
    speakers = replace(LEARN, perturb_probability=1.0)
    a = augment_crops(clean, 3, None, utts, speakers)
    assert torch.equal(a.waveforms, augment_crops(clean, 3, None, utts, speakers).waveforms)
    assert not torch.equal(a.waveforms, augment_crops(clean, 4, None, utts, speakers).waveforms)
    for row, n in enumerate(clean.lengths.tolist()):
        assert not torch.allclose(a.waveforms[row, :n], clean.waveforms[row, :n], atol=1e-3)
        assert not a.waveforms[row, n:].any()
    half = augment_crops(clean, 3, None, utts, replace(speakers, perturb_probability=0.5))
    kept = [torch.equal(half.waveforms[r], clean.waveforms[r]) for r in range(4)]
    assert [torch.equal(half.waveforms[r], a.waveforms[r]) for r in range(4)] == [
        not k for k in kept
    ]  # each crop is either perturbed as with probability 1 or left as it was
    assert torch.equal(augment_crops(clean, 3, None, utts, LEARN).waveforms, clean.waveforms)
    with pytest.raises(InvalidInputError, match="perturb_probability in"):
        replace(LEARN, perturb_probability=1.5)
    model = PhoneClassifier(fine_tune_encoder(base, 0.0), LEARN)
    info = {"corpus": "c", "run_config": dataclasses.asdict(speakers)}
    card = (export_phones(model, tmp_path / "out", "x", info).path / "README.md").read_text()
    assert "given another speaker (Spin's perturbation at strength 1; with probability 1)" in card


def test_frozen_frontend_keeps_the_base_front_end(
    base: TorchTokenizer, tiny_corpus: Path, tmp_path: Path
) -> None:
    root, utts = load_corpus(tiny_corpus, "train")
    frozen = replace(LEARN, steps=2, warmup_steps=1, freeze_frontend=True)
    model, _ = train_phones(tmp_path / "run", base, utts, root, frozen)
    before, after = base.encoder.state_dict(), model.encoder.state_dict()
    front = [k for k in after if k.startswith("feature_extractor.")]
    assert front and all(torch.equal(after[k], before[k]) for k in front)
    assert not all(torch.equal(after[k], before[k]) for k in after if k not in front)
    info = {"corpus": "c", "run_config": dataclasses.asdict(frozen)}
    card = (export_phones(model, tmp_path / "out", "x", info).path / "README.md").read_text()
    assert "fine-tuned (every layer but the conv front-end)" in card


def test_phones_cli_output_is_a_supervised_base(
    base: TorchTokenizer, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, km = tmp_path / "out", tmp_path / "km"
    sets = ["steps=2", "batch_size=2", "max_seconds=1.0", "warmup_steps=1"]
    argv = ["train", "phones", "--corpus", str(tiny_corpus), "--base", str(base.path),
            "--run", str(tmp_path / "run"), "--out", str(out)]  # fmt: skip
    argv += [x for kv in sets for x in ("--set", kv)]
    monkeypatch.setattr(sys, "argv", ["speechtok", *argv])
    assert main(argv) == 0
    model = load_model_dir(out)
    assert model.config.train["base"]["fingerprint"] == base.fingerprint
    assert "supervised" in model.config.train and "mask_embedding" not in model.tensors
    # A base for k-means (and spin/dcspin): what is built on it says it is supervised.
    argv = ["train", "kmeans", "--corpus", str(tiny_corpus), "--encoder", str(out),
            "--K", "8", "--out", str(km)]  # fmt: skip
    assert main(argv) == 0
    kmeans = read_config(km)
    assert kmeans.kind == "kmeans" and kmeans.K == 8
    assert kmeans.train["supervised"].startswith("encoder out is supervised (phone frame")
    assert "supervised" not in read_config(base.path).train
