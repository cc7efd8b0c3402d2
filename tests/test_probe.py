"""speechtok probe end to end on the tiny corpus, its building blocks, and users' TextGrids."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lm_probe.cache import OFF, ArrayCache, audio_sha256
from lm_probe.probe import engine_scores, run_lengths
from lm_probe.rates import bitrates
from lm_probe.speaker import edit_distance, phone_units
from tokenizer.audio import decode_audio
from tokenizer.corpus.alignment import Segment, write_textgrid
from tokenizer.corpus.manifest import Utterance, load_corpus
from tokenizer.features import FeatureConfig, extract
from tokenizer.kinds import load_tokenizer
from tokenizer.kmeans import KmeansConfig, fit_kmeans, save_kmeans_tokenizer


@pytest.fixture(scope="module")
def tiny_model(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, utts = load_corpus(tiny_corpus)
    cfg = FeatureConfig(type="mfcc")
    feats = np.concatenate([extract(decode_audio(u.audio_path(root)), cfg)
                            for u in utts if u.split == "train"])  # fmt: skip
    out = tmp_path_factory.mktemp("models") / "mfcc-km16"
    save_kmeans_tokenizer(out, "mfcc-km16", cfg, fit_kmeans(feats, KmeansConfig(K=16)), {})
    return out


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "speechtok", "probe", "--parallel-sentences", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def write_units(model: Path, corpus: Path, path: Path) -> None:
    tok = load_tokenizer(model)
    root, utts = load_corpus(corpus)
    with path.open("w") as f:
        for u in utts:
            units = tok.tokenize(decode_audio(u.audio_path(root))).tolist()
            f.write(json.dumps({"path": str(u.audio_path(root)), "units": units}) + "\n")


def test_probe_two_tokenizers(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    write_units(tiny_model, tiny_corpus, tmp_path / "ext.jsonl")
    out = tmp_path / "report"
    conditions = ["pink:5", "babble:0", "music:0", "reverb:0.6", "codec:opus-8k"]
    done = probe("--model", str(tiny_model), "--units", f"external={tmp_path / 'ext.jsonl'}",
                 "--corpus", str(tiny_corpus), "--out", str(out), "--robustness",
                 "--robustness-utterances", "4", "--conditions", *conditions)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "test"
    a, b = report["tokenizers"]
    assert [a["name"], b["name"]] == ["mfcc-km16", "external"]
    assert 0 < a["pnmi"] < 1 and a["K"] == 16
    assert a["run_length"] >= 1 and a["phone_run_length"] > 1
    assert sum(r["lost"] for r in a["phones"]) == pytest.approx(1 - a["pnmi"])  # by phone
    assert a["pnmi"] == pytest.approx(b["pnmi"])  # same units by either route
    assert a["ngram"]["order"] == 4 and a["ngram"]["ppl"] > 1
    assert 0 <= a["speaker"]["perturb_agreement"] <= 1 and a["speaker"]["pnmi_perturbed"] > 0
    assert b["speaker"]["perturb_agreement"] is None  # precomputed units cannot hear new audio
    assert a["speaker"]["speaker_id_acc"] is not None and a["pieces"][0]["units_per_piece"] >= 1
    assert a["bitrate"]["nominal_bps"] == pytest.approx(50 * 4)
    md = (out / "report.md").read_text()
    assert "| metric | mfcc-km16 | external |" in md and "| PNMI ↑ |" in md
    for png in ("cooccurrence.png", "pnmi_per_voice.png", "robustness.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # robustness: a row per condition for the tokenizer, none for the precomputed units
    rob = a["robustness"]
    n_test = len(load_corpus(tiny_corpus, "test")[1])
    assert rob["utterances"] == min(4, n_test) and b["robustness"] is None
    assert 0 < rob["clean_pnmi"] < 1
    assert [r["condition"] for r in rob["conditions"]] == [
        "pink 5 dB", "babble 0 dB", "music 0 dB", "reverb RT60 0.6 s", "codec opus-8k"
    ]  # fmt: skip
    assert all(0 <= r["agreement"] < 1 and 0 <= r["pnmi"] < 1 for r in rob["conditions"])
    assert "## Robustness" in md and "| pink 5 dB |" in md


def test_probe_from_manifest_with_textgrids(
    tiny_model: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """A user's corpus: audio paths in a manifest, MFA-style TextGrids beside it."""
    root, utts = load_corpus(tiny_corpus)
    test = [u for u in utts if u.split == "test"]
    (tmp_path / "tg").mkdir()
    with (tmp_path / "m.jsonl").open("w") as f:
        for u in test:
            assert u.alignment
            mfa = [Segment("sil" if p == "SIL" else p.lower(), s, e) for p, s, e in u.alignment]
            write_textgrid(tmp_path / "tg" / f"{u.id}.TextGrid", mfa)
            f.write(json.dumps({"id": u.id, "audio": str(u.audio_path(root))}) + "\n")
    out = tmp_path / "r"
    done = probe("--model", str(tiny_model), "--manifest", str(tmp_path / "m.jsonl"),
                 "--textgrids", str(tmp_path / "tg"), "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    user = json.loads((out / "report.json").read_text())["tokenizers"][0]
    ref = probe("--model", str(tiny_model), "--corpus", str(tiny_corpus), "--no-perturb",
                "--out", str(tmp_path / "ref"))  # fmt: skip
    assert ref.returncode == 0, ref.stderr
    expected = json.loads((tmp_path / "ref" / "report.json").read_text())["tokenizers"][0]
    assert user["pnmi"] == pytest.approx(expected["pnmi"], abs=1e-4)
    assert user["ngram"] is None  # no train split in the user's manifest


def test_probe_errors(tiny_corpus: Path, tmp_path: Path) -> None:
    done = probe("--corpus", str(tiny_corpus), "--out", str(tmp_path))
    assert done.returncode == 2 and "at least one --model or --units" in done.stderr
    done = probe("--corpus", str(tiny_corpus), "--split", "nope", "--units", "x=y",
                 "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 2 and "split 'nope'" in done.stderr


def test_edit_distance_matches_reference() -> None:
    def reference(a: list[int], b: list[int]) -> int:
        d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                d[i][j] = min(
                    d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
                )
        return d[-1][-1]

    rng = random.Random(0)
    for _ in range(200):
        a = [rng.randrange(4) for _ in range(rng.randrange(0, 12))]
        b = [rng.randrange(4) for _ in range(rng.randrange(0, 12))]
        assert edit_distance(a, b) == reference(a, b)


def test_phone_units_and_bitrate() -> None:
    units = np.array([1, 1, 2, 3, 3, 3])
    segs = [Segment("A", 0.0, 0.05), Segment("B", 0.05, 0.12)]  # frame centres .01 .03 .05 ...
    assert phone_units(units, segs, 50.0).tolist() == [1, 3]
    rates = bitrates([np.array([0, 0, 1, 1])], K=4, frame_rate=50.0)
    assert rates["nominal_bps"] == 100 and rates["entropy_bps"] == pytest.approx(50.0)
    assert rates["dedup_units_per_s"] == pytest.approx(25.0)


def test_run_lengths_count_runs_within_utterances() -> None:
    """Units 0 0 1 1 1 2 are 3 runs of 6 frames; phones AA (3 frames) then SIL (3 frames)."""
    utt = Utterance(
        id="u", audio="u.flac", alignment=[Segment("AA", 0, 0.06), Segment("SIL", 0.06, 0.12)]
    )
    out = run_lengths({"u": np.array([0, 0, 1, 1, 1, 2])}, [utt], 50.0)
    assert out == {"run_length": 2.0, "phone_run_length": 3.0}


def test_engine_scores_split_the_frames_by_engine() -> None:
    """Units that read one engine's phones perfectly and the other's not at all: PNMI 1 and 0
    apart, and nothing when every utterance comes from one engine."""
    segs = [Segment("AA", 0, 0.06), Segment("SIL", 0.06, 0.12)]
    a = Utterance(id="a", audio="a.flac", alignment=segs, engine="espeak")
    b = Utterance(id="b", audio="b.flac", alignment=segs, engine="flite")
    units = {"a": np.array([0, 0, 0, 1, 1, 1]), "b": np.array([2, 2, 2, 2, 2, 2])}
    out = engine_scores(units, [a, b], 50.0)
    assert out["espeak"]["pnmi"] == pytest.approx(1.0) and out["espeak"]["frames"] == 6
    assert out["flite"]["pnmi"] == pytest.approx(0.0) and out["flite"]["phone_purity"] == 0.5
    assert engine_scores(units, [a], 50.0) == {}


def test_probe_cache_reuses_work(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """A tokenizer added to a report re-uses the first tokenizer's units, ABX features and the
    perturbed copies from the cache, and the numbers are those computed afresh."""
    root, utts = load_corpus(tiny_corpus)
    feats = np.concatenate([extract(decode_audio(u.audio_path(root)), FeatureConfig())
                            for u in utts if u.split == "train"])  # fmt: skip
    other = tmp_path / "fbank-km8"
    save_kmeans_tokenizer(
        other, "fbank-km8", FeatureConfig(), fit_kmeans(feats, KmeansConfig(K=8)), {}
    )
    common = ["--corpus", str(tiny_corpus), "--lm-split", "dev", "--abx", "--html-utterances", "0"]
    cache = ["--cache", str(tmp_path / "cache")]

    def run(out: str, *args: str) -> dict:
        done = probe(*args, *common, "--out", str(tmp_path / out))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])["cache"]

    first = run("a", "--model", str(tiny_model), *cache)
    assert first["hits"] == 0 and first["misses"] > 0
    both = run("ab", "--model", str(tiny_model), "--model", str(other), *cache)
    assert both["hits"] == first["misses"]  # everything of the first tokenizer, and the copies
    fresh = run("b-fresh", "--model", str(other), "--no-cache")
    assert fresh == {"dir": None, "hits": 0, "misses": 0}
    n_test = json.loads((tmp_path / "a" / "report.json").read_text())["tokenizers"][0]["utterances"]
    assert both["misses"] == first["misses"] - n_test  # the second tokenizer's own work
    cached = json.loads((tmp_path / "ab" / "report.json").read_text())["tokenizers"]
    afresh = [json.loads((tmp_path / d / "report.json").read_text())["tokenizers"][0]
              for d in ("a", "b-fresh")]  # fmt: skip
    for c, f in zip(cached, afresh, strict=True):
        assert c["pnmi"] == f["pnmi"] and c["speaker"] == f["speaker"] and c["abx"] == f["abx"]


def test_array_cache_recomputes_what_it_cannot_read(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    value = np.arange(5, dtype=np.float16)
    assert cache.get(("units", "a"), lambda: value).dtype == np.float16
    assert cache.get(("units", "a"), lambda: value * 0).tolist() == value.tolist()  # a hit
    (entry,) = (tmp_path / "units").glob("*/*.npy")
    entry.write_bytes(b"torn")
    assert cache.get(("units", "a"), lambda: value + 1).tolist() == (value + 1).tolist()
    assert (cache.hits, cache.misses) == (1, 2) and not list(tmp_path.rglob("*.tmp"))
    assert audio_sha256(np.zeros(3)) == audio_sha256(np.zeros(3, np.float32))
    assert OFF.get(("units", "a"), lambda: value + 2).tolist() == (value + 2).tolist()
