"""Triphone ABX: the DTW against a loop port of libri-light's, items from alignments, the known
answers on constructed items (identical triphones 0 %, random frames 50 %), within <= across
speaker on the tiny corpus, and ``speechtok probe --abx`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lm_probe.abx import (
    AbxConfig,
    Item,
    abx_cells,
    abx_error,
    dense_features,
    dtw,
    frame_distances,
    item_frames,
    triphone_items,
)
from tokenizer.audio import decode_audio
from tokenizer.corpus.alignment import Segment
from tokenizer.corpus.manifest import Utterance, load_corpus
from tokenizer.features import FeatureConfig, extract
from tokenizer.kinds import load_tokenizer
from tokenizer.kmeans import KmeansConfig, fit_kmeans, save_kmeans_tokenizer

from .conftest import speech_like

RATE = 50.0
VOWELS = ("AA", "IY", "UW", "EH", "OW", "AE")
CONTEXTS = (("K", "T"), ("B", "D"))


def reference_dtw(d: np.ndarray) -> float:
    """libri-light's ``dtw.pyx`` ``_dtw(normalized=True)``, line by line."""
    n, m = d.shape
    cost = np.empty((n, m))
    cost[0, 0] = d[0, 0]
    for i in range(1, n):
        cost[i, 0] = d[i, 0] + cost[i - 1, 0]
    for j in range(1, m):
        cost[0, j] = d[0, j] + cost[0, j - 1]
    for i in range(1, n):
        for j in range(1, m):
            cost[i, j] = d[i, j] + min(cost[i - 1, j], cost[i - 1, j - 1], cost[i, j - 1])
    i, j, length = n - 1, m - 1, 1
    while i > 0 and j > 0:
        up, left, diag = cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        length += 1
    return float(cost[n - 1, m - 1] / (length + i + j))


def test_dtw_matches_the_reference_on_padded_batches() -> None:
    rng = np.random.default_rng(0)
    nx, ny = rng.integers(1, 13, 200), rng.integers(1, 13, 200)
    x = rng.standard_normal((2, 200, 12, 8))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    u = rng.integers(0, 3, (2, 200, 12))  # one-hot distances: full of cost ties
    cases = {"features": (x[0], x[1]), "units": (u[0], u[1])}
    for kind, (a, b) in cases.items():
        d = frame_distances(a, b)
        got = dtw(d, nx, ny)
        want = [reference_dtw(d[p, : nx[p], : ny[p]]) for p in range(200)]
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=kind)


def test_units_are_compared_as_one_hot_vectors() -> None:
    a, b = np.array([0, 1, 2]), np.array([2, 1])
    eye = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(frame_distances(a, b), frame_distances(eye[a], eye[b]), atol=1e-6)
    assert set(frame_distances(a, b).ravel().tolist()) == {0.0, 0.5}


def test_items_are_sil_free_triphones_with_their_frames() -> None:
    segs = [("SIL", 0, 0.1), ("K", 0.1, 0.16), ("AE", 0.16, 0.3), ("T", 0.3, 0.36),
            ("S", 0.36, 0.5), ("SIL", 0.5, 0.6)]  # fmt: skip
    utt = Utterance(id="u", audio="u.wav", speaker="s", alignment=[Segment(*s) for s in segs])
    items = triphone_items([utt])
    assert [(i.phone, i.context) for i in items] == [("AE", "K+T"), ("T", "AE+S")]
    assert (items[0].onset, items[0].offset) == (0.1, 0.36)
    frames = item_frames(np.arange(30), items[0], RATE)
    assert frames.tolist() == list(range(5, 18))  # centres 0.11 .. 0.35
    short = Item("u", "s", "AE", "K+T", 0.101, 0.109)  # no frame centre inside: the nearest
    assert item_frames(np.arange(30), short, RATE).tolist() == [5]


def constructed(speakers: int = 6, repeats: int = 4) -> list[Utterance]:
    """Every speaker says each CONTEXT-vowel-CONTEXT triphone ``repeats`` times, every phone
    0.1 s (5 frames), a SIL between triphones: many minimal pairs, all items 15 frames."""
    utts = []
    for s in range(speakers):
        for r in range(repeats):
            segs, t = [Segment("SIL", 0.0, 0.1)], 0.1
            for left, right in CONTEXTS:
                for v in VOWELS:
                    for p in (left, v, right, "SIL"):
                        segs.append(Segment(p, t, t + 0.1))
                        t += 0.1
            utts.append(Utterance(id=f"s{s}-{r}", audio="", speaker=f"s{s}", alignment=segs))
    return utts


def phone_frames(utt: Utterance, table: dict[str, np.ndarray]) -> np.ndarray:
    assert utt.alignment is not None
    return np.concatenate([np.repeat(table[p][None], 5, 0) for p, _, _ in utt.alignment])


def test_identical_triphones_give_no_error() -> None:
    """A and X identical (a fixed vector per phone, whoever speaks), B differing: 0 %."""
    utts = constructed()
    rng = np.random.default_rng(1)
    phones = {p for u in utts for p, _, _ in u.alignment or []}
    table = {p: rng.standard_normal(16).astype(np.float32) for p in sorted(phones)}
    ids = {p: np.array(i) for i, p in enumerate(sorted(phones))}
    for feats in (
        {u.id: phone_frames(u, table) for u in utts},
        {u.id: phone_frames(u, ids) for u in utts},
    ):
        res = abx_error(triphone_items(utts), feats, RATE)
        assert res["within"] == 0.0 and res["across"] == 0.0
        assert res["within_phone_pairs"] == res["across_phone_pairs"] == 30
        assert res["within_triples"] > 5000 and res["across_triples"] > 20000


def test_random_frames_give_half_error() -> None:
    """Random frames (items of equal length, so nothing tells A from B): 50 %."""
    utts = constructed()
    rng = np.random.default_rng(2)
    n = round(utts[0].alignment[-1].end * RATE) if utts[0].alignment else 0
    for feats in (
        {u.id: rng.standard_normal((n, 16)).astype(np.float32) for u in utts},
        {u.id: rng.integers(0, 20, n) for u in utts},
    ):
        res = abx_error(triphone_items(utts), feats, RATE)
        assert res["within"] == pytest.approx(0.5, abs=0.03)
        assert res["across"] == pytest.approx(0.5, abs=0.03)


def test_groups_are_capped_and_seeded() -> None:
    items = triphone_items(constructed(speakers=8, repeats=6))
    capped = AbxConfig(max_size_group=3, max_x_across=2, seed=5)
    cells = abx_cells(items, capped)
    assert max(len(t.a) for t in cells["within"]) == 3
    assert len(cells["across"]) == 2 * len(cells["within"])  # 2 X speakers per cell
    again = abx_cells(items, capped)
    assert all((t.x == u.x).all() for t, u in zip(cells["across"], again["across"], strict=True))
    other = abx_cells(items, AbxConfig(max_size_group=3, max_x_across=2, seed=6))
    assert any((t.x != u.x).any() for t, u in zip(cells["across"], other["across"], strict=True))


def test_within_speaker_error_is_at_most_across_on_the_tiny_corpus(tiny_corpus: Path) -> None:
    root, utts = load_corpus(tiny_corpus)
    mfcc = FeatureConfig(type="mfcc")
    feats = {u.id: extract(decode_audio(u.audio_path(root)), mfcc) for u in utts}
    res = abx_error(triphone_items(utts), feats, RATE)
    assert res["within_triples"] > 0 and res["across_triples"] > 500
    assert 0 < res["within"] <= res["across"] < 0.4  # far below chance, and voices differ


def test_probe_abx_rows(tiny_corpus: Path, tmp_path: Path) -> None:
    root, utts = load_corpus(tiny_corpus)
    cfg = FeatureConfig(type="mfcc")
    feats = np.concatenate([extract(decode_audio(u.audio_path(root)), cfg)
                            for u in utts if u.split == "train"])  # fmt: skip
    model = tmp_path / "mfcc-km16"
    save_kmeans_tokenizer(model, "mfcc-km16", cfg, fit_kmeans(feats, KmeansConfig(K=16)), {})
    cmd = [sys.executable, "-m", "speechtok", "probe", "--model", str(model), "--abx",
           "--no-perturb", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "r")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    abx = json.loads((tmp_path / "r" / "report.json").read_text())["tokenizers"][0]["abx"]
    assert abx["utterances"] == 44 and abx["features"]["source"] == "mfcc (standardised)"
    for part in ("units", "features"):
        assert 0 <= abx[part]["within"] < 0.5 and 0 < abx[part]["across"] < 0.5
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| ABX within (units) ↓ |" in md and "| ABX across (features) ↓ |" in md


def test_encoder_tokenizers_give_their_layer_frames(exported: Path) -> None:
    """An exported (ONNX Runtime) encoder model: the frames its units come from, in torch."""
    tok = load_tokenizer(exported)
    dense = dense_features(tok)
    assert dense is not None and dense[0] == "final layer"
    audio = speech_like(16000, 3)
    frames = dense[1](audio)
    assert frames.shape == (len(tok.tokenize(audio, full_utterance=True)), 256)
    assert dense_features(None) is None
