"""SUPERB-style probes: the phone head learns on the tiny corpus, the layer weights learn which
layer carries the label (phones, speakers) on constructed features, the speaker split keeps
every voice on both sides, the BiLSTM head is padding-invariant, one seed gives one result,
and ``speechtok probe --superb`` end to end (rows, plot, skip note)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lm_probe.cache import OFF, ArrayCache
from lm_probe.superb import (
    CtcHead,
    SuperbConfig,
    char_targets,
    ctc_decode,
    error_rate,
    frozen_encoder,
    layer_stack,
    normalise_text,
    pad,
    phone_targets,
    probe_superb,
    reverse_valid,
    speaker_accuracy,
    speaker_split,
    train_ctc,
    train_speaker,
)
from tokenizer.audio import decode_audio
from tokenizer.corpus.alignment import Segment
from tokenizer.corpus.manifest import Utterance, load_corpus
from tokenizer.encoder.config import tiny
from tokenizer.encoder.model import Encoder
from tokenizer.kinds import load_tokenizer
from tokenizer.quantizer import quantizer_for
from tokenizer.save import save_encoder_tokenizer


@pytest.fixture(scope="module")
def encoder_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny encoder tokenizer run in torch (not exported: seconds to make)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    quantizer = quantizer_for(
        "kmeans", {"centroids": rng.standard_normal((16, 256)).astype(np.float32)}
    )
    out = tmp_path_factory.mktemp("superb") / "rand"
    save_encoder_tokenizer(
        out,
        name="rand",
        kind="kmeans",
        encoder=Encoder(tiny()).eval(),
        layer=None,
        quantizer=quantizer,
        train_info={},
        card="",
    )
    return out


@pytest.fixture(scope="module")
def train_stacks(
    tiny_corpus: Path, encoder_model: Path
) -> tuple[list[torch.Tensor], list[Utterance]]:
    """Every layer of the random-init encoder on the tiny corpus's training utterances."""
    root, utts = load_corpus(tiny_corpus)
    train = [u for u in utts if u.split == "train"]
    encoder = frozen_encoder(load_tokenizer(encoder_model))
    assert encoder is not None
    return [layer_stack(encoder, decode_audio(u.audio_path(root))) for u in train], train


def test_phone_head_learns_on_the_tiny_corpus(
    train_stacks: tuple[list[torch.Tensor], list[Utterance]],
) -> None:
    stacks, utts = train_stacks
    assert stacks[0].shape[0] == 5 and stacks[0].dtype == torch.float16  # input + 4 layers
    targets = [phone_targets(u) for u in utts]
    config = SuperbConfig(steps=200, lr=1e-2)
    before = train_ctc(stacks, targets, 40, None, SuperbConfig(steps=0))
    untrained = error_rate(ctc_decode(before, stacks), targets)
    trained = train_ctc(stacks, targets, 40, None, config)
    per = error_rate(ctc_decode(trained, stacks), targets)
    assert untrained > 0.95 and per < 0.7, (untrained, per)
    assert trained.layer_weights() != [0.2] * 5  # the weights moved from uniform


def constructed_ctc(
    informative: int, n: int = 40, layers: int = 4, seed: int = 0
) -> tuple[list[torch.Tensor], list[list[int]]]:
    """Utterances of 6 random labels (1..8), 3 frames each; only ``informative`` holds the
    labels (a fixed random code per label, plus noise), the other layers noise alone."""
    rng = np.random.default_rng(seed)
    codes = rng.standard_normal((9, 16))
    stacks, targets = [], []
    for _ in range(n):
        labels = rng.integers(1, 9, 6)
        x = rng.standard_normal((layers, 18, 16))
        x[informative] = 0.5 * x[informative] + np.repeat(codes[labels], 3, 0)
        stacks.append(torch.from_numpy(x).to(torch.float16))
        targets.append(labels.tolist())
    return stacks, targets


def test_layer_weights_learn_which_layer_carries_phones() -> None:
    stacks, targets = constructed_ctc(informative=2)
    probe = train_ctc(stacks, targets, 9, None, SuperbConfig(steps=150, lr=1e-2))
    weights = probe.layer_weights()
    assert int(np.argmax(weights)) == 2 and weights[2] > 0.5, weights
    assert error_rate(ctc_decode(probe, stacks), targets) < 0.2
    frozen = train_ctc(stacks, targets, 9, 0, SuperbConfig(steps=150, lr=1e-2))  # noise only
    assert error_rate(ctc_decode(frozen, stacks), targets) > 0.5


def test_speaker_id_learns_the_layer_that_carries_the_voice() -> None:
    rng = np.random.default_rng(1)
    voices, per_voice = 10, 6
    means = rng.standard_normal((voices, 32))
    labels = np.repeat(np.arange(voices), per_voice)
    x = rng.standard_normal((len(labels), 4, 32))
    x[:, 1] += 2 * means[labels]
    x_t, y_t = torch.from_numpy(x).float(), torch.from_numpy(labels)
    train, test = np.arange(len(labels)) % 2 == 0, np.arange(len(labels)) % 2 == 1
    config = SuperbConfig(speaker_steps=200, lr=1e-2)
    probe = train_speaker(x_t[train], y_t[train], voices, None, config)
    weights = probe.layer_weights()
    assert int(np.argmax(weights)) == 1 and weights[1] > 0.5, weights
    assert speaker_accuracy(probe, x_t[test], y_t[test]) > 0.9  # chance 0.1
    last = train_speaker(x_t[train], y_t[train], voices, 3, config)
    assert speaker_accuracy(last, x_t[test], y_t[test]) < 0.5


def utt(voice: str, sentence: str) -> Utterance:
    return Utterance(id=f"{sentence}-{voice}", audio="x.flac", speaker=voice, sentence=sentence)


def test_speaker_split_keeps_every_voice_on_both_sides() -> None:
    parallel = [utt(v, f"s{i}") for v in "abc" for i in range(6)]
    train, test = speaker_split(parallel, seed=0)
    assert len(train) == len(test) == 9
    for part in (train, test):
        assert {u.speaker for u in part} == set("abc")
    held = {v: {u.sentence for u in test if u.speaker == v} for v in "abc"}
    assert held["a"] == held["b"] == held["c"]  # one set of test sentences for every voice
    assert not held["a"] & {u.sentence for u in train}
    # a training split (one voice per sentence): voices with one sentence drop out
    own = [utt("a", "t0"), utt("a", "t1"), utt("a", "t2"), utt("b", "t3"), utt("c", "t4")]
    train, test = speaker_split(own, seed=0)
    assert {u.speaker for u in train} == {u.speaker for u in test} == {"a"}
    assert speaker_split(parallel, seed=1) != speaker_split(parallel, seed=0)


def test_targets_and_error_rates() -> None:
    assert normalise_text("Don't stop-it, NOW!  2x") == "don't stop it now x"
    assert char_targets("a b'") == [3, 1, 4, 2]  # blank 0, space 1, apostrophe 2, a 3
    u = Utterance(id="u", audio="x.flac", alignment=[
        Segment("SIL", 0, 0.1), Segment("K", 0.1, 0.2), Segment("AE", 0.2, 0.3),
        Segment("T", 0.3, 0.4), Segment("SIL", 0.4, 0.5)])  # fmt: skip
    assert len(phone_targets(u)) == 3 and min(phone_targets(u)) >= 1
    assert error_rate([["a", "b"], ["c"]], [["a", "x", "b"], ["d"]]) == pytest.approx(2 / 4)
    assert error_rate([[1, 2]], [[1, 2]]) == 0.0


def test_bilstm_head_is_padding_invariant() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 9, 6)
    lengths = torch.tensor([9, 5])
    assert torch.equal(reverse_valid(reverse_valid(x, lengths), lengths), x)
    assert torch.equal(reverse_valid(x, lengths)[1, :5], x[1, :5].flip(0))
    head = CtcHead(6, 4, hidden=3).eval()
    with torch.no_grad():
        batch = head(x, lengths)
        alone = head(x[1:, :5], lengths[1:])
    assert torch.allclose(batch[1, :5], alone[0], atol=1e-6)
    stacked, frames = pad([torch.ones(2, 3, 4), torch.ones(2, 5, 4)])
    assert stacked.shape == (2, 2, 5, 4) and frames.tolist() == [3, 5]
    assert stacked[0, :, 3:].abs().sum() == 0


def test_one_seed_one_result() -> None:
    stacks, targets = constructed_ctc(informative=1, n=12)
    a, b = (train_ctc(stacks, targets, 9, None, SuperbConfig(steps=20, seed=3)) for _ in range(2))
    c = train_ctc(stacks, targets, 9, None, SuperbConfig(steps=20, seed=4))
    assert a.layer_weights() == b.layer_weights() != c.layer_weights()
    assert ctc_decode(a, stacks) == ctc_decode(b, stacks)
    pairs = zip(a.head.parameters(), b.head.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)


def test_probe_superb_is_deterministic(
    tiny_corpus: Path, encoder_model: Path, tmp_path: Path
) -> None:
    """One seed, one result; and the same result from cached layer stacks."""
    root, utts = load_corpus(tiny_corpus)
    train, test, parallel = (
        [u for u in utts if u.split == s] for s in ("train", "test", "parallel")
    )
    tok = load_tokenizer(encoder_model)
    threads = torch.get_num_threads()

    def run(seed: int, cache: ArrayCache = OFF) -> dict:
        config = SuperbConfig(utterances=6, steps=15, speaker_steps=15, asr_hidden=8, seed=seed)
        out, notes = probe_superb(tok, root, train, test, parallel, config, cache=cache)
        assert out is not None and notes == []
        return {k: v for k, v in out.items() if k != "seconds"}

    first = run(0)
    assert first == run(0) != run(1)
    cache = ArrayCache(tmp_path)
    assert run(0, cache) == first and cache.hits == 0 and cache.misses > 0
    stacks = cache.misses
    assert run(0, cache) == first and (cache.hits, cache.misses) == (stacks, stacks)
    assert first["speaker"]["voices"] == 22 and first["speaker"]["test_utterances"] == 22
    assert torch.get_num_threads() == threads  # one thread inside, restored after


def test_probe_superb_rows(tiny_corpus: Path, encoder_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "speechtok", "probe", "--model", str(encoder_model),
           "--model", "mfcc-km100", "--superb", "--superb-utterances", "8",
           "--superb-steps", "10", "--no-perturb", "--html-utterances", "0",
           "--corpus", str(tiny_corpus), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # torch tokenizing beside other work
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    enc, mfcc = json.loads((out / "report.json").read_text())["tokenizers"]
    s = enc["superb"]
    assert s["layers"] == 5 and s["train_utterances"] == 8
    assert s["phones"]["weighted"]["per"] >= 0 and s["asr"]["last"]["wer"] >= 0
    assert s["speaker"]["data"] == "parallel" and s["speaker"]["voices"] == 22
    assert len(s["speaker"]["weighted"]["layer_weights"]) == 5
    assert s["phones"]["last"]["layer_weights"] == [0, 0, 0, 0, 1]
    assert mfcc["superb"] is None and any("SUPERB: skipped" in n for n in mfcc["notes"])
    md = (out / "report.md").read_text()
    assert "| SUPERB PER, weighted layers ↓ |" in md and "layer_weights.png" in md
    assert (out / "layer_weights.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert 'alt="layer_weights.png"' in html
