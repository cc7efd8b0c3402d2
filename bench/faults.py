"""Replicas killed under load: SIGKILL a Serve replica (the model's, then the ingress's) while
SDK clients call ``Tokenize`` in a loop and stream files, and count what every client saw.

Each unary request and each stream is one accepted request; it is answered when the client got
its units (after the SDK's retries and stream resumes) and lost when the client got an error.
Every answer is compared with the offline units of its file. ``bench/faults.sh`` runs it on
``speechtok serve`` with the shipped default; ``tests/test_serving.py`` runs it in CI.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import numpy as np

from bench.common import add_file_args, bench_files
from bench.procs import titled
from serving.client import Client
from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.kinds import load_served
from tokenizer.shipped import resolve


@dataclass
class KillResult:
    replica: str
    """Which replica was killed (the title's part after the app name)."""
    accepted: int = 0
    answered: int = 0
    lost: int = 0
    wrong: int = 0
    """Answers whose units differ from the offline units."""
    streams_answered: int = 0
    retries: int = 0
    resumes: int = 0
    """Streams cut by the kill and resumed where they left off."""
    restart_s: float = 0.0
    """From the kill to the first answer from the new replica's era."""
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"| {self.replica} | {self.accepted} | {self.answered} | {self.lost} | "
            f"{self.wrong} | {self.retries} | {self.resumes} | {self.restart_s:.1f} s |"
        )


HEADER = (
    "| killed (SIGKILL) | requests accepted | answered | lost | wrong units | SDK retries "
    "| streams resumed | kill to new replica answering |\n| --- | --- | --- | --- | --- | --- "
    "| --- | --- |"
)


def _chunks(audio: np.ndarray, chunk_ms: int = 100) -> list[np.ndarray]:
    step = SAMPLE_RATE * chunk_ms // 1000
    return [audio[at : at + step] for at in range(0, len(audio), step)]


class Load:
    """``unary`` clients calling Tokenize and ``streams`` clients streaming files, each in a
    loop on its own thread, until stopped."""

    def __init__(
        self,
        address: str,
        files: list[Path],
        expected: dict[Path, list[int]],
        api_key: str | None,
        unary: int = 4,
        streams: int = 2,
    ) -> None:
        self.files, self.expected = files, expected
        self.audio = {f: decode_audio(f) for f in files}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[str, bool]] = []
        """(kind, equal to offline) per answer, in order."""
        self.errors: list[str] = []
        self.clients = [Client(address, api_key=api_key, timeout=60) for _ in range(unary)]
        self.streamers = [Client(address, api_key=api_key, timeout=60) for _ in range(streams)]
        calls: list[Callable[[Client, Path], list[int]]] = [self._unary] * unary
        calls += [self._stream] * streams
        self.threads = [
            threading.Thread(target=self._loop, args=(c, call, i), daemon=True)
            for i, (c, call) in enumerate(zip(self.clients + self.streamers, calls, strict=True))
        ]

    def _unary(self, client: Client, f: Path) -> list[int]:
        return list(client.tokenize(f).units)

    def _stream(self, client: Client, f: Path) -> list[int]:
        units: list[int] = []
        for answer in client.stream(_chunks(self.audio[f])):
            assert answer.offset == len(units), "answers out of order"
            units += answer.units
        return units

    def _loop(self, client: Client, call: Callable[[Client, Path], list[int]], first: int) -> None:
        kind = "stream" if call == self._stream else "unary"
        for i in itertools.count(first):
            if self.stop.is_set():
                return
            f = self.files[i % len(self.files)]
            try:
                units = call(client, f)
                with self.lock:
                    self.answers.append((kind, units == self.expected[f]))
            except grpc.RpcError as e:
                with self.lock:
                    self.errors.append(f"{kind}: {e.code().name}: {e.details()}")

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)
        for c in self.clients + self.streamers:
            c.close()

    def wait_for(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.answers) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.answers) >= n


def kill_under_load(
    address: str,
    title: str,
    files: list[Path],
    expected: dict[Path, list[int]],
    api_key: str | None = None,
    unary: int = 4,
    streams: int = 2,
    before: int = 8,
    after: int = 20,
) -> KillResult:
    """SIGKILL the one process titled ``title`` under load (after ``before`` answers), wait
    for its successor and ``after`` answers from it, then stop the load and count."""
    (replica,) = titled(title)
    result = KillResult(replica=title.split(":", 2)[-1].rstrip("-"))
    with Load(address, files, expected, api_key, unary, streams) as load:
        if not load.wait_for(before, 60 + before):
            raise RuntimeError(f"expected answers before the kill, found {len(load.answers)}")
        os.kill(replica, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 120 + after
        while time.monotonic() < deadline and not ((new := titled(title)) and replica not in new):
            time.sleep(0.1)
        restarted = len(load.answers)
        load.wait_for(restarted + 1, deadline - time.monotonic())
        result.restart_s = time.monotonic() - killed
        load.wait_for(restarted + after, deadline - time.monotonic())
    result.answered = len(load.answers)
    result.streams_answered = sum(kind == "stream" for kind, _ in load.answers)
    result.wrong = sum(not same for _, same in load.answers)
    result.errors = load.errors
    result.lost = len(load.errors)
    result.accepted = result.answered + result.lost
    result.retries = sum(c.retried for c in load.clients + load.streamers)
    result.resumes = sum(c.resumed for c in load.streamers)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addr", required=True)
    p.add_argument("--api-key")
    p.add_argument("--app", default="speechtok", help="the Serve application's name")
    p.add_argument("--model", default=None, help="the served model (default: the shipped one)")
    add_file_args(p)
    p.add_argument("--unary", type=int, default=4)
    p.add_argument("--streams", type=int, default=2)
    p.add_argument("--before", type=int, default=100, help="answers before the kill")
    p.add_argument("--after", type=int, default=300, help="answers from the new replica")
    a = p.parse_args(argv)
    files = bench_files(a)[: a.files]
    offline = load_served(resolve(a.model))
    expected = {f: offline.tokenize(decode_audio(f)).tolist() for f in files}
    results = []
    for part in ("model-", "GrpcIngress"):
        r = kill_under_load(a.addr, f"ServeReplica:{a.app}:{part}", files, expected,
                            a.api_key, a.unary, a.streams, a.before, a.after)  # fmt: skip
        results.append(r)
        print(json.dumps(asdict(r)), file=sys.stderr)
    print(HEADER)
    for r in results:
        print(r.line())
    return int(any(r.lost or r.wrong for r in results))


if __name__ == "__main__":
    sys.exit(main())
