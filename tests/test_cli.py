"""The ``speechtok`` command line: real subprocesses, real exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tokenizer.errors import InvalidInputError


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


def test_serve_refuses_to_open_beyond_loopback_without_auth(tmp_path: Path) -> None:
    """Secure by default: a public bind needs API keys or TLS, or an explicit opt-out; the
    refusal comes before anything starts."""
    from serving.config import ServeConfig, check_exposure

    env = {k: v for k, v in os.environ.items() if k != "SPEECHTOK_API_KEYS"}
    done = subprocess.run([sys.executable, "-m", "speechtok", "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert done.returncode == 2 and "--allow-unauthenticated" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    public = ServeConfig(host="0.0.0.0", api_keys_env="SPEECHTOK_TEST_NO_SUCH_VAR")
    for ok in (ServeConfig(), replace(public, api_keys=["k"]), replace(public, tls_cert="c"),
               replace(public, allow_unauthenticated=True)):  # fmt: skip
        check_exposure(ok)
    with pytest.raises(InvalidInputError, match="found neither"):
        check_exposure(public)
