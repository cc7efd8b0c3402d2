"""The ``speechtok`` command line: real subprocesses, real exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path


def speechtok(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "speechtok", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_synth_then_check(tmp_path: Path) -> None:
    out = tmp_path / "c"
    done = speechtok("corpus", "synth", "--out", str(out), "--sentences", "6",
                     "--parallel-sentences", "1", "--seed", "3", "--jobs", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    speakers = {json.loads(line)["speaker"] for line in (out / "manifest.jsonl").open()}
    assert summary["utterances"] == 6 + 22 and summary["voices"] == len(speakers) >= 22
    assert summary["hours"] > 0
    checked = speechtok("corpus", "check", str(out))
    assert checked.returncode == 0 and "ok: 28 utterances" in checked.stderr
    again = speechtok("corpus", "synth", "--out", str(out), "--sentences", "6")
    assert again.returncode == 2 and "use --force" in again.stderr


def test_check_fails_on_broken_corpus(tiny_corpus: Path, tmp_path: Path) -> None:
    broken = tmp_path / "b"
    shutil.copytree(tiny_corpus, broken)
    victim = next((broken / "audio" / "train").glob("*.flac"))
    victim.write_bytes(b"garbage")
    done = speechtok("corpus", "check", str(broken))
    assert done.returncode == 1
    assert victim.stem in done.stdout and "1 problem(s)" in done.stderr
    missing = speechtok("corpus", "check", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "found nothing" in missing.stdout
