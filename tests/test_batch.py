"""Batch jobs on Ray Data: inputs, the real pipeline end to end (the CLI in a subprocess, so
Ray starts and stops with it), exactly-once after a SIGKILL of the driver, bad inputs, readers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from serving.batch.inputs import list_inputs
from serving.batch.layout import JobDir, read_table, read_units
from serving.batch.verify import verify
from tokenizer.corpus.manifest import load_corpus
from tokenizer.errors import CorpusError
from tokenizer.kinds import load_tokenizer

CLI = [sys.executable, "-m", "speechtok"]
BAD = ("corrupt", "empty", "missing")


def test_list_inputs_folder_sorted_with_relative_ids(tmp_path: Path) -> None:
    for rel in ("b/2.flac", "a.wav", "b/1.WAV", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    inputs = list_inputs(tmp_path)
    assert [i.id for i in inputs] == ["a", "b/1", "b/2"]
    assert all(Path(i.path).is_absolute() for i in inputs)


def test_list_inputs_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="found none"):
        list_inputs(tmp_path)
    (tmp_path / "x.wav").write_bytes(b"x")
    (tmp_path / "x.flac").write_bytes(b"x")
    with pytest.raises(CorpusError, match="'x' twice"):
        list_inputs(tmp_path)
    with pytest.raises(CorpusError, match="no such file"):
        list_inputs(tmp_path / "nope.txt")


def _job_input(corpus: Path, folder: Path, copies: int) -> Path:
    """A manifest of the corpus's audio (``copies`` times, under new ids) and three bad inputs
    in the middle: corrupt bytes, a WAV with zero samples, a missing path."""
    root, utts = load_corpus(corpus)
    folder.mkdir()
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    sf.write(folder / "empty.wav", np.zeros(0, np.float32), 16000)
    records = [
        {"id": f"{u.id}-{c}", "audio": str(u.audio_path(root))} for c in range(copies) for u in utts
    ]
    mid = len(records) // 2
    records[mid:mid] = [
        {"id": "corrupt", "audio": "corrupt.wav"},
        {"id": "empty", "audio": "empty.wav"},
        {"id": "missing", "audio": "no/such/file.flac"},
    ]
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return manifest


def _batch(manifest: Path, out: Path, model: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *CLI, "batch", "--input", str(manifest), "--out", str(out), "--model", str(model),
            "--shard-size", "3", "--batch-size", "2", "--no-progress", *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: Ray's processes go with it
    )  # fmt: skip


def _finish(proc: subprocess.Popen) -> dict:
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        _kill_group(proc)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL whatever is left of the process group we started (Ray's helpers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def job_input(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _job_input(tiny_corpus, tmp_path_factory.mktemp("batch") / "in", copies=1)


@pytest.fixture(scope="module")
def straight(job_input: Path, exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("straight") / "out"
    summary = _finish(_batch(job_input, out, exported))
    assert summary["errors"] == len(BAD)
    assert summary["rows"] + summary["errors"] == summary["files"]
    return out


@pytest.mark.slow
def test_batch_rows_equal_tokenize_and_bad_inputs_are_recorded(
    straight: Path, job_input: Path, exported: Path
) -> None:
    tok = load_tokenizer(exported)
    table = read_table(straight)
    rows = table.to_pylist()
    records = [json.loads(line) for line in job_input.read_text().splitlines()]
    good = [r for r in records if r["id"] not in BAD]
    assert [r["id"] for r in rows] == [r["id"] for r in good]  # input order, each once
    from tokenizer.audio import decode_audio

    for row, rec in zip(rows, good, strict=True):
        units = tok.tokenize(decode_audio(rec["audio"]))
        assert row["units"] == units.tolist(), row["id"]
        assert row["n_frames"] == len(units)
        assert row["fingerprint"] == tok.fingerprint
        assert row["durations"] is None
    errors = [json.loads(line) for line in JobDir(straight).errors.read_text().splitlines()]
    reasons = {e["id"]: e["error"] for e in errors}
    assert set(reasons) == set(BAD)
    assert "undecodable" in reasons["corrupt"] or "expected" in reasons["corrupt"]
    assert "at least one sample" in reasons["empty"]
    assert "readable audio file" in reasons["missing"]
    report = verify(straight)
    assert report["ok"], report["problems"]
    assert read_units(straight)[rows[0]["id"]].tolist() == rows[0]["units"]


@pytest.mark.slow
def test_batch_killed_driver_then_rerun_equals_uninterrupted_run(
    straight: Path, job_input: Path, exported: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    n_shards = json.loads((straight / "job.json").read_text())["n_shards"]
    proc = _batch(job_input, out, exported)
    done = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        done = len(list((out / "shards").glob("*.parquet"))) if (out / "shards").is_dir() else 0
        if done >= 1:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # the driver, mid-job
    _kill_group(proc)
    assert 1 <= done < n_shards, f"the job was not killed part way ({done}/{n_shards} shards)"
    assert not verify(out)["ok"]  # incomplete, and verify says so
    summary = _finish(_batch(job_input, out, exported))
    assert summary["skipped_shards"] >= 1
    assert read_table(out).to_pylist() == read_table(straight).to_pylist()  # row for row
    assert JobDir(out).errors.read_text() == JobDir(straight).errors.read_text()
    assert not list(out.rglob("*.tmp"))
    assert verify(out)["ok"]


@pytest.mark.slow
def test_batch_refuses_another_jobs_folder_and_verify_finds_damage(
    straight: Path, job_input: Path, exported: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(straight, out)
    proc = subprocess.run(
        [*CLI, "batch", "--input", str(job_input), "--out", str(out), "--model", str(exported),
         "--shard-size", "4"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "differs in shard_size" in proc.stderr
    (out / "shards" / "shard-00001.parquet").unlink()
    table = pq.read_table(out / "shards" / "shard-00000.parquet")
    pq.write_table(table.slice(0, 1), out / "shards" / "shard-00000.parquet")
    report = verify(out)
    assert not report["ok"]
    text = " ".join(report["problems"])
    assert "missing [1]" in text and "shard 0" in text
    cli = subprocess.run([*CLI, "batch", "verify", str(out)], capture_output=True, text=True)
    assert cli.returncode == 1


@pytest.mark.slow
def test_batch_dedup_and_hf_datasets_reader(
    job_input: Path, exported: Path, tmp_path: Path, straight: Path
) -> None:
    out = tmp_path / "dedup"
    _finish(_batch(job_input, out, exported, "--dedup"))
    assert verify(out)["ok"]
    full = read_table(straight).to_pylist()
    for row, ref in zip(read_table(out).to_pylist(), full, strict=True):
        expanded = np.repeat(row["units"], row["durations"]).tolist()
        assert expanded == ref["units"]
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import datasets

    ds = datasets.load_dataset(
        "parquet",
        data_files=str(out / "shards" / "*.parquet"),
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert ds[0]["id"] == full[0]["id"] and len(ds) == len(full)
