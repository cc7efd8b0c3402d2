"""Torch only where it is needed: with torch unimportable (as with the serving extras alone),
the serving-path commands work on exported models, and commands that need torch say which
extra to install. Nothing is uninstalled: a ``torch`` package that refuses to import shadows
the real one through ``PYTHONPATH``, which Ray's workers inherit too."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import soundfile as sf

from bench.procs import alive, process_tree
from serving.client import Client
from tokenizer.kinds import load_tokenizer

from .certs import make_certs
from .conftest import speech_like

CLI = [sys.executable, "-m", "speechtok"]
BLOCKED = ("torch", "torchaudio")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    shadow = tmp_path_factory.mktemp("no-torch")
    for name in BLOCKED:
        (shadow / name).mkdir()
        (shadow / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError('{name} is blocked for this test', name='{name}')\n"
        )
    return {**os.environ, "PYTHONPATH": str(shadow)}


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "a.wav"
    sf.write(path, speech_like(24_000, 5), 16000)
    return path


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=300)


def test_the_shadow_really_blocks_torch(env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, env=env)
    assert done.returncode == 1 and b"blocked for this test" in done.stderr


def test_serving_path_commands_run_without_torch(
    env: dict[str, str], wav: Path, exported: Path, tiny_vocoder: tuple[Path, Path], tmp_path: Path
) -> None:
    done = _run(env, "tokenize", "--model", str(exported), "--dedup", str(wav))
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    expected = load_tokenizer(exported).tokenize(speech_like(24_000, 5))
    assert sum(line["durations"]) == len(expected)
    streamed = _run(
        env, "tokenize", "--model", str(exported), "--simulate-stream", "random", str(wav)
    )
    assert json.loads(streamed.stdout)["units"] == expected.tolist(), streamed.stderr
    for args in (("info", "--model", str(exported)), ("info", "--model", str(tiny_vocoder[0]))):
        done = _run(env, *args)
        assert done.returncode == 0 and json.loads(done.stdout)["fingerprint"], done.stderr
    done = _run(env, "models")
    assert done.returncode == 0 and json.loads(done.stdout.splitlines()[0])["kind"], done.stderr
    units = tmp_path / "u.jsonl"
    units.write_text(json.dumps(line) + "\n")
    done = _run(env, "synthesize", "--vocoder", str(tiny_vocoder[0]), "--units", str(units),
                "--out", str(tmp_path / "o.wav"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sf.info(tmp_path / "o.wav").frames == 320 * len(expected)


@pytest.mark.parametrize(
    "args",
    [
        ("export", "MODEL"),
        ("tokenize", "--backend", "torch", "--model", "MODEL", "WAV"),
        ("train", "spin", "--corpus", "x", "--run", "r", "--out", "o", "--base", "MODEL"),
    ],
)
def test_torch_commands_name_the_extra(
    env: dict[str, str], wav: Path, exported: Path, args: tuple[str, ...]
) -> None:
    args = tuple(str(exported) if a == "MODEL" else str(wav) if a == "WAV" else a for a in args)
    done = _run(env, *args)
    assert done.returncode == 2
    assert "needs torch, which is not installed: pip install 'speechtok[train]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_batch_serve_and_client_run_without_torch(
    env: dict[str, str], wav: Path, exported: Path, tmp_path: Path
) -> None:
    expected = load_tokenizer(exported).tokenize(speech_like(24_000, 5)).tolist()
    done = _run(env, "batch", "--input", str(wav.parent), "--out", str(tmp_path / "job"),
                "--model", str(exported))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["rows"], summary["errors"]) == (1, 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    certs = make_certs(tmp_path)  # mutual TLS: clients need a certificate the CA signed
    tls = [f"tls_cert={certs['server']}", f"tls_key={certs['server_key']}",
           f"tls_client_ca={certs['ca']}"]  # fmt: skip
    server = subprocess.Popen(
        [
            *CLI,
            "serve",
            "--model",
            str(exported),
            "--port",
            str(port),
            "--num-cpus",
            "2",
            *(a for setting in tls for a in ("--set", setting)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        assert ready["serving"] == f"127.0.0.1:{port}"
        call = ["client", "tokenize", "--addr", ready["serving"], "--tls", "--root-cert",
                str(certs["ca"]), str(wav)]  # fmt: skip
        anonymous = Client(ready["serving"], tls=True, root_cert=str(certs["ca"]), retries=0)
        with anonymous, pytest.raises(grpc.RpcError) as refused:  # no client certificate
            anonymous.model_info()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        mine = ["--client-cert", str(certs["client"]), "--client-key", str(certs["client_key"])]
        done = _run(env, *call, *mine)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["units"] == expected
        # SIGTERM (what systemd and Kubernetes send): drained and gone within seconds, with
        # every process it started (Ray's GCS, raylet, workers, replicas).
        family = process_tree(server.pid)[1:]
        assert len(family) >= 3
        start = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert time.monotonic() - start < 15
        time.sleep(1.0)
        assert [p for p in family if alive(p)] == []
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
