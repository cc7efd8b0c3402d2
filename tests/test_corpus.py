"""The corpus builder: determinism, split rules, and the checker catching real problems."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tokenizer.corpus.check import check_corpus
from tokenizer.corpus.manifest import read_manifest
from tokenizer.corpus.sentences import wordnet_sentences
from tokenizer.corpus.synth import SynthConfig, build_corpus, plan
from tokenizer.corpus.voices import CORE_VOICES, VOICES, VOICES_BY_ID
from tokenizer.errors import CorpusError

from .conftest import TINY


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_same_seed_same_bytes(tiny_corpus: Path, tmp_path: Path) -> None:
    """Same plan, manifest, alignments and bytes with another worker count. Known exception:
    libespeak-ng's variant voices (``+f2``...) carry synthesis state from one utterance to the
    next within a process, so their samples depend on what a worker spoke before; for them
    only the length (and the alignments, in the manifest) must match."""
    build_corpus(tmp_path, TINY, jobs=1)  # other worker count
    a, b = digests(tmp_path), digests(tiny_corpus)
    assert a.keys() == b.keys()
    espeak = {k for k in a if "/audio/" in f"/{k}" and "-es-" in k}
    assert {k: v for k, v in a.items() if k not in espeak} == {
        k: v for k, v in b.items() if k not in espeak
    }
    for k in espeak:
        assert sf.info(tmp_path / k).frames == sf.info(tiny_corpus / k).frames, k


def test_other_seed_other_plan() -> None:
    sentences = wordnet_sentences()
    a = plan(TINY, sentences)
    b = plan(SynthConfig(sentences=24, parallel_sentences=2, seed=8), sentences)
    assert {i.text for t in a for i in t.items} != {i.text for t in b for i in t.items}


def test_split_rules(tiny_corpus: Path) -> None:
    utts = read_manifest(tiny_corpus / "manifest.jsonl")
    by_split: dict[str, set[str]] = defaultdict(set)
    for u in utts:
        by_split[u.split or ""].add(u.sentence or "")
    assert set(by_split) == {"train", "dev", "test", "unseen", "parallel"}
    for a in by_split:
        for b in by_split:
            assert a == b or not by_split[a] & by_split[b]
    held = {v.id for v in VOICES if v.held_out and v.engine != "festival"}
    assert all(u.split in ("test", "parallel") for u in utts if u.speaker in held)
    assert any(u.speaker in held for u in utts if u.split == "test")
    # the held-out engine speaks only (and alone) in unseen and parallel
    for u in utts:
        if u.split != "parallel":
            assert (u.engine == "festival") == (u.split == "unseen"), u.id
    parallel: dict[str, set[str]] = defaultdict(set)
    for u in utts:
        if u.split == "parallel":
            parallel[u.sentence or ""].add(u.speaker or "")
    assert len(parallel) == 2 and all(v == {x.id for x in CORE_VOICES} for v in parallel.values())
    info = json.loads((tiny_corpus / "corpus.json").read_text())
    assert info["utterances"] == len(utts) == 24 + 2 * len(CORE_VOICES)


def test_core_voices_without_held_out_engine_keep_the_first_plan() -> None:
    """Old corpora rebuild as they were: the core catalogue and no held-out engine give the
    plan of the first corpus builder (festival voices in train, no unseen split)."""
    old = SynthConfig(sentences=200, parallel_sentences=1, extra_voices=False, holdout_engine=None)
    items = [(t.voice_id, it.split) for t in plan(old, wordnet_sentences()) for it in t.items]
    assert {split for _, split in items} == {"train", "dev", "test", "parallel"}
    assert {v for v, _ in items} == {v.id for v in CORE_VOICES}
    assert any(VOICES_BY_ID[v].engine == "festival" for v, split in items if split == "train")


def test_augmented_copies(tmp_path: Path) -> None:
    """Each training utterance gets a seeded copy: other samples, the same phones on a grid
    moved by the drawn speed, and a record of what was drawn; other splits get none."""
    config = SynthConfig(sentences=12, parallel_sentences=0, seed=3, augment=1)
    build_corpus(tmp_path / "a", config)
    a = read_manifest(tmp_path / "a" / "manifest.jsonl")
    by_id = {u.id: u for u in a}
    copies = [u for u in a if u.id.endswith("-aug1")]
    assert copies and len(copies) == sum(u.split == "train" for u in a) / 2
    assert all(u.split == "train" for u in copies)
    for c in copies:
        orig = by_id[c.id.removesuffix("-aug1")]
        drawn = c.extra["augment"]
        assert [p for p, _, _ in c.alignment or []] == [p for p, _, _ in orig.alignment or []]
        assert c.duration == pytest.approx((orig.duration or 0) / drawn["speed"], abs=1e-3)
        assert c.alignment is not None and orig.alignment is not None
        assert c.alignment[1][1] == pytest.approx(orig.alignment[1][1] / drawn["speed"], abs=1e-4)
    assert {c.extra["augment"]["speed"] for c in copies} != {1.0}
    assert check_corpus(tmp_path / "a") == []
    build_corpus(tmp_path / "b", config, jobs=1)
    b = read_manifest(tmp_path / "b" / "manifest.jsonl")
    assert [u.to_json() for u in a] == [u.to_json() for u in b]  # seeded: the same draws


def test_audio_and_alignments(tiny_corpus: Path) -> None:
    assert check_corpus(tiny_corpus) == []
    for u in read_manifest(tiny_corpus / "manifest.jsonl")[:10]:
        x, sr = sf.read(u.audio_path(tiny_corpus))
        assert sr == 16000 and x.ndim == 1 and len(x) / sr == pytest.approx(u.duration, abs=1e-4)
        assert np.max(np.abs(x)) == pytest.approx(0.9, abs=1e-3)


def test_refuses_to_overwrite(tiny_corpus: Path) -> None:
    with pytest.raises(CorpusError, match="use --force"):
        build_corpus(tiny_corpus, TINY)


def broken_copy(src: Path, dst: Path) -> list[str]:
    shutil.copytree(src, dst)
    lines = (dst / "manifest.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["alignment"][2][1] = first["alignment"][0][1]  # boundary goes backwards
    first["alignment"][-1][0] = "XX"  # unknown label
    lines[0] = json.dumps(first)
    held = next(json.loads(x) for x in lines if json.loads(x)["speaker"] == "fl-kal16")
    held_line = lines.index(json.dumps(held))
    held["split"] = "train"  # a held-out voice in train
    lines[held_line] = json.dumps(held)
    (dst / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    second = json.loads(lines[1])
    (dst / second["audio"]).write_bytes((dst / second["audio"]).read_bytes()[:500])
    return [first["id"], held["id"], second["id"]]


def test_check_finds_problems(tiny_corpus: Path, tmp_path: Path) -> None:
    ids = broken_copy(tiny_corpus, tmp_path / "broken")
    problems = "\n".join(check_corpus(tmp_path / "broken"))
    assert f"{ids[0]}: segment 2" in problems and "start >= previous end" in problems
    assert "found 'XX'" in problems
    assert f"{ids[1]}: expected held-out voice fl-kal16 only in test/parallel" in problems
    assert "expected in one split" in problems  # that sentence is now in test and train
    assert ids[2] in problems
