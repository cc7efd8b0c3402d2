"""Manifests: our jsonl round trip, fairseq tsv, users' alignments attached."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tokenizer.corpus.alignment import Segment
from tokenizer.corpus.manifest import (
    Utterance,
    attach_frame_labels,
    attach_textgrids,
    load_corpus,
    read_manifest,
    write_manifest,
)
from tokenizer.errors import CorpusError

from .test_alignment import EXPECTED, LONG


def test_jsonl_roundtrip(tmp_path: Path) -> None:
    u = Utterance(id="a", audio="audio/a.flac", duration=1.0, speaker="x", split="train",
                  alignment=[Segment("SIL", 0.0, 1.0)], extra={"lang": "en"})  # fmt: skip
    write_manifest(tmp_path / "m.jsonl", [u])
    assert read_manifest(tmp_path / "m.jsonl") == [u]


def test_user_jsonl_with_path_key(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text('{"path": "/data/x/utt1.wav"}\n\n{"audio": "b.flac"}\n')
    utts = read_manifest(tmp_path / "m.jsonl")
    assert [u.id for u in utts] == ["utt1", "b"]
    assert utts[1].audio_path(tmp_path) == tmp_path / "b.flac"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json\n", "JSON object on line 1"),
        ('{"id": "a"}\n', "'audio'"),
        ('{"audio": "a.wav"}\n{"audio": "a.wav"}\n', "unique ids"),
        ('{"audio": "a.wav", "alignment": [["K", 0]]}\n', "alignment"),
        ("[1, 2]\n", "JSON object"),
    ],
)
def test_bad_jsonl(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "m.jsonl").write_text(text)
    with pytest.raises(CorpusError, match=match):
        read_manifest(tmp_path / "m.jsonl")


def test_fairseq_tsv(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("/corpus/root\nspk1/a.flac\t16000\nspk2/b.flac\t8000\n")
    utts = read_manifest(tmp_path / "train.tsv")
    assert [u.id for u in utts] == ["spk1/a", "spk2/b"]
    assert utts[0].audio == "/corpus/root/spk1/a.flac" and utts[1].extra["n_samples"] == 8000
    (tmp_path / "bad.tsv").write_text("/root\na.flac\tmany\n")
    with pytest.raises(CorpusError, match="line 2"):
        read_manifest(tmp_path / "bad.tsv")


def test_attach_textgrids_and_frame_labels(tmp_path: Path) -> None:
    (tmp_path / "utt1.TextGrid").write_text(LONG)
    utts = [Utterance(id="utt1", audio="wav/utt1.wav")]
    attach_textgrids(utts, tmp_path)
    assert utts[0].alignment == EXPECTED
    with pytest.raises(CorpusError, match="TextGrid for 'nope'"):
        attach_textgrids([Utterance(id="nope", audio="nope.wav")], tmp_path)
    (tmp_path / "lab.tsv").write_text("utt1\tsil K K\n")
    attach_frame_labels(utts, tmp_path / "lab.tsv")
    assert utts[0].alignment == [Segment("SIL", 0, 0.02), Segment("K", 0.02, 0.06)]
    with pytest.raises(CorpusError, match="none for 1"):
        attach_frame_labels([Utterance(id="x", audio="x.wav")], tmp_path / "lab.tsv")


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="found nothing"):
        read_manifest(tmp_path / "none.jsonl")


def _lhotse_recording(rid: str, seconds: float) -> dict:
    source = {"type": "file", "channels": [0], "source": f"wav/{rid}.flac"}
    return {"id": rid, "sources": [source], "sampling_rate": 16000,
            "num_samples": int(seconds * 16000), "duration": seconds}  # fmt: skip


def test_lhotse_recordings_and_cuts_gzipped(tmp_path: Path) -> None:
    recordings = [_lhotse_recording("r1", 2.0), _lhotse_recording("r2", 1.5)]
    cuts = [{"id": f"{r['id']}-0", "start": 0.0, "duration": r["duration"], "channel": 0,
             "supervisions": [{"id": "s", "recording_id": r["id"], "start": 0.0,
                               "duration": r["duration"], "speaker": "spk1", "text": "HELLO"}],
             "recording": r, "type": "MonoCut"} for r in recordings]  # fmt: skip
    for name, records in (("recordings.jsonl.gz", recordings), ("cuts.jsonl.gz", cuts)):
        (tmp_path / name).write_bytes(gzip.compress("\n".join(map(json.dumps, records)).encode()))
    got = read_manifest(tmp_path / "recordings.jsonl.gz")
    assert [(u.id, u.audio, u.duration) for u in got] == [
        ("r1", "wav/r1.flac", 2.0),
        ("r2", "wav/r2.flac", 1.5),
    ]
    got = read_manifest(tmp_path / "cuts.jsonl.gz")
    assert [(u.id, u.speaker, u.text) for u in got] == [
        ("r1-0", "spk1", "HELLO"),
        ("r2-0", "spk1", "HELLO"),
    ]
    cuts[1]["start"] = 0.5
    (tmp_path / "part.jsonl").write_text("\n".join(map(json.dumps, cuts)))
    with pytest.raises(CorpusError, match="expected Lhotse cuts covering whole recordings"):
        read_manifest(tmp_path / "part.jsonl")


def test_trainers_take_a_manifest(tiny_corpus: Path, tmp_path: Path) -> None:
    """``--manifest`` (here a fairseq .tsv of the corpus's train audio) instead of --corpus;
    ``--max-utterances`` fits on a subset."""
    root, utts = load_corpus(tiny_corpus, "train")
    lines = [str(root)] + [f"{u.audio}\t{int((u.duration or 0) * 16000)}" for u in utts]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "speechtok", "train", "kmeans", "--manifest",
         str(tmp_path / "train.tsv"), "--out", str(tmp_path / "km"), "--K", "8",
         "--max-utterances", str(len(utts) - 2)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = json.loads((tmp_path / "km" / "config.json").read_text())["train"]
    assert info["utterances"] == len(utts) - 2 and info["corpus"].endswith("train.tsv")
