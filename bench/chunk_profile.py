"""Where a streamed chunk's CPU time goes: py-spy samples the gRPC ingress and the model
replica while real-time streams run, and each sample is put in one stage of a chunk's path
(gRPC, the servicer and stream sessions, the coalescer, the Ray handle and router, Ray
core, Serve's batching and replica machinery, ONNX Runtime's encode, the event loop waiting).

Prints a table of each process's samples per stage (% of its samples of threads on the CPU:
py-spy leaves out idle threads) and writes the raw stacks and a JSON summary to ``--out``.
``bench/chunk_profile.sh`` runs it beside ``speechtok serve``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench.common import add_file_args, bench_files
from bench.procs import titled
from bench.soak import Soak

STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("encode (ONNX Runtime)", ("onnxruntime", "onnx_tokenizer.py")),
    (
        "idle (waiting)",
        (
            "epoll_wait",
            "select (selectors",
            "wait (threading",
            "_wait_for_tstate_lock",
            "poll (",
        ),
    ),
    (
        "stream session, windows and steps",
        (
            "serving/sessions.py",
            "tokenizer/streaming.py",
            "tokenizer/windows.py",
            "tokenizer/steps.py",
        ),
    ),
    ("coalescer", ("serving/coalesce.py",)),
    ("PCM decode", ("serving/requests.py", "tokenizer/audio.py")),
    ("Serve batching", ("serve/batching.py",)),
    (
        "Ray handle and router",
        ("serve/handle.py", "serve/_private/router", "request_router", "replica_scheduler"),
    ),
    ("Serve replica machinery", ("serve/_private/replica",)),
    ("Ray core", ("ray/_private", "_raylet", "ray/actor.py", "ray/remote_function")),
    ("gRPC", ("grpc/", "grpc_health", "protobuf")),
    ("servicer and model code", ("serving/", "model_deployment.py")),
    ("native threads (Ray's and gRPC's C++ cores)", ("Thread.run (threading",)),
]
"""Stages, first match wins, tested innermost frame outwards."""


def stage(stack: list[str]) -> str:
    """The stage of one sampled stack (frames outermost first)."""
    for frame in reversed(stack):
        for name, needles in STAGES:
            if any(n in frame for n in needles):
                return name
    return "other Python" if any(stack) else STAGES[-1][0]  # no Python frame: native


def read_raw(path: Path) -> Counter[str]:
    """Samples per stage from py-spy's ``--format raw`` (collapsed stacks with counts)."""
    out: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out[stage(stack.split(";"))] += int(count)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chunk_profile",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--addr", required=True)
    p.add_argument("--api-key")
    p.add_argument("--app", default="speechtok")
    p.add_argument("--streams", type=int, default=12, help="real-time streams (100 ms chunks)")
    p.add_argument("--seconds", type=float, default=30.0, help="sampling time")
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    add_file_args(p)
    p.add_argument("--out", type=Path, default=Path("data/chunk-profile"))
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    soak = Soak(a.addr, a.api_key, bench_files(a)[: a.files], lambda: [], a.streams)
    streamers = [threading.Thread(target=soak._streamer, args=(k,), daemon=True)
                 for k in range(a.streams)]  # fmt: skip
    for t in streamers:
        t.start()
    time.sleep(3.0)  # the streams are under way
    processes = {
        "ingress": f"ServeReplica:{a.app}:GrpcIngress",
        "model replica": f"ServeReplica:{a.app}:model-",
    }
    spies = {}
    py_spy = str(Path(sys.executable).parent / "py-spy")  # the dev extra's py-spy
    for name, title in processes.items():
        (pid,) = titled(title)
        raw = a.out / f"{name}.txt"
        spies[name] = (raw, subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--rate", str(a.rate),
             "--duration", str(int(a.seconds)), "--format", "raw", "--nonblocking",
             "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    for _, spy in spies.values():
        _, err = spy.communicate(timeout=a.seconds + 120)
        if spy.returncode:
            print(f"py-spy failed: {err[-1000:]}", file=sys.stderr)
            return 1
    soak.stop.set()
    for t in streamers:
        t.join(timeout=30)
    table = {name: read_raw(raw) for name, (raw, _) in spies.items()}
    summary = {name: {k: round(100 * v / max(1, sum(c.values())), 1) for k, v in c.most_common()}
               for name, c in table.items()}  # fmt: skip
    cores = {n: round(sum(c.values()) / (a.rate * a.seconds), 2) for n, c in table.items()}
    facts = {"streams": a.streams, "seconds": a.seconds, "percent": summary, "cores": cores}
    (a.out / "profile.json").write_text(json.dumps(facts, indent=1))
    stages = [s for s, _ in STAGES] + ["other Python"]
    print(
        f"{a.streams} real-time streams, {a.seconds:g} s sampled at {a.rate}/s per process; "
        f"% of each process's on-CPU samples; errors {len(soak.errors)}"
    )
    print("| stage | " + " | ".join(table) + " |\n|---|" + "---|" * len(table))
    for s in stages:
        print(f"| {s} | " + " | ".join(f"{summary[n].get(s, 0.0)} %" for n in table) + " |")
    print("| cores busy (on-CPU samples / samples per thread) | "
          + " | ".join(f"{v:.2f}" for v in cores.values()) + " |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
