"""Soak: mixed unary and streaming load on a running service for minutes, at a share of its
measured capacity, sampling every process's memory, the open file descriptors, the p95 latency
of unary calls and the errors; a plot over time and a pass/fail on growth.

Load: ``streams`` clients stream files in 100 ms chunks at real-time pace, in a loop; beside
them, unary ``Tokenize`` calls are paced at ``share`` of the unary capacity measured first (4
clients as fast as they go, with the streams running). ``bench/soak.sh`` runs it on
``speechtok serve``; a one-minute version runs in the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import numpy as np

from bench.common import add_file_args, bench_files
from bench.procs import process_tree, rss_bytes
from serving.client import Client
from tokenizer.audio import SAMPLE_RATE, decode_audio

Pids = Callable[[], list[int]]
"""The processes to watch (asked again at every sample: replicas may restart)."""


def label(pid: int) -> str:
    """A process's role, from its command line (Serve replicas by deployment)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    for part in ("GrpcIngress", "model-", "vocoder-", "ServeController"):
        if part in cmd:
            return part.rstrip("-")
    for part in ("raylet", "gcs_server", "dashboard", "log_monitor", "speechtok serve"):
        if part in cmd:
            return part
    return "other"


def open_fds(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += len(list(Path(f"/proc/{pid}/fd").iterdir()))
        except OSError:
            continue
    return total


@dataclass
class Sample:
    t_s: float
    rss_mb: dict[str, float]
    fds: int
    calls: int
    p95_ms: float
    errors: int


@dataclass
class SoakResult:
    minutes: float
    capacity_rps: float
    rate_rps: float
    streams: int
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stream_answers: int = 0

    def summary(self) -> dict[str, float]:
        """Growth after the first fifth (warm-up): total RSS (MB per hour, a linear fit), open
        descriptors (the most in the last third minus the most in the first: clients closing
        at the very end do not count as a fall), p95 drift (medians of the last and first
        thirds), errors."""
        s = self.samples[len(self.samples) // 5 :]
        t = np.array([x.t_s for x in s]) / 3600
        rss = np.array([sum(x.rss_mb.values()) for x in s])
        slope = float(np.polyfit(t, rss, 1)[0]) if len(s) >= 3 else 0.0
        third = max(1, len(s) // 3)
        p95 = [x.p95_ms for x in s]
        return {
            "rss_start_mb": round(float(rss[0]), 1),
            "rss_end_mb": round(float(rss[-1]), 1),
            "rss_growth_mb_per_h": round(slope, 1),
            "fd_growth": max(x.fds for x in s[-third:]) - max(x.fds for x in s[:third]),
            "p95_first_ms": round(float(np.median(p95[:third])), 1),
            "p95_last_ms": round(float(np.median(p95[-third:])), 1),
            "calls": sum(x.calls for x in self.samples),
            "stream_answers": self.stream_answers,
            "errors": len(self.errors),
        }


class Soak:
    def __init__(
        self, address: str, api_key: str | None, files: list[Path], pids: Pids, streams: int = 4
    ) -> None:
        self.address, self.api_key, self.pids = address, api_key, pids
        self.files = [f.read_bytes() for f in files]
        self.audio = [decode_audio(f) for f in files]
        self.streams = streams
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.stream_answers = 0

    def _client(self) -> Client:
        return Client(self.address, api_key=self.api_key, timeout=60, retries=0)

    def _call(self, client: Client, i: int) -> None:
        start = time.perf_counter()
        try:
            client.tokenize(self.files[i % len(self.files)])
            with self.lock:
                self.latencies.append(time.perf_counter() - start)
        except grpc.RpcError as e:
            with self.lock:
                self.errors.append(f"unary {e.code().name}: {e.details()}")

    def _paced_chunks(self, audio: np.ndarray) -> Iterator[np.ndarray]:
        step = SAMPLE_RATE // 10
        start = time.monotonic()
        for n, at in enumerate(range(0, len(audio), step)):
            if self.stop.is_set():
                return
            time.sleep(max(0.0, start + n * 0.1 - time.monotonic()))
            yield audio[at : at + step]

    def _streamer(self, first: int) -> None:
        client = self._client()
        for i in range(first, 1 << 30):
            if self.stop.is_set():
                break
            try:
                for _ in client.stream(self._paced_chunks(self.audio[i % len(self.audio)])):
                    with self.lock:
                        self.stream_answers += 1
            except grpc.RpcError as e:
                with self.lock:
                    self.errors.append(f"stream {e.code().name}: {e.details()}")
        client.close()

    def capacity(self, seconds: float = 10.0, clients: int = 4) -> float:
        """Unary calls per second, ``clients`` calling as fast as they go."""
        done = [0] * clients
        end = time.monotonic() + seconds

        def run(k: int) -> None:
            with self._client() as c:
                while time.monotonic() < end:
                    self._call(c, k + done[k] * clients)
                    done[k] += 1

        threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self.lock:
            self.latencies.clear()
        return sum(done) / seconds

    def run(self, minutes: float, share: float = 0.7, every_s: float = 5.0) -> SoakResult:
        streamers = [threading.Thread(target=self._streamer, args=(k,), daemon=True)
                     for k in range(self.streams)]  # fmt: skip
        for t in streamers:
            t.start()
        try:
            capacity = self.capacity()
            result = SoakResult(minutes, round(capacity, 2), round(share * capacity, 2),
                                self.streams)  # fmt: skip
            self._paced(minutes * 60, share * capacity, every_s, result)
        finally:
            self.stop.set()
            for t in streamers:
                t.join(timeout=60)
        result.errors = list(self.errors)
        result.stream_answers = self.stream_answers
        return result

    def _paced(self, seconds: float, rate: float, every_s: float, result: SoakResult) -> None:
        """Unary calls at ``rate`` a second (4 callers keep the schedule), sampled every
        ``every_s``."""
        start = time.monotonic()
        ticket = iter(range(1 << 30))
        tickets = threading.Lock()

        def caller() -> None:
            with self._client() as c:
                while not self.stop.is_set():
                    with tickets:
                        n = next(ticket)
                    due = start + n / rate
                    if due > start + seconds:
                        return
                    time.sleep(max(0.0, due - time.monotonic()))
                    self._call(c, n)

        callers = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
        for t in callers:
            t.start()
        next_sample = start
        while any(t.is_alive() for t in callers):
            next_sample += every_s
            time.sleep(max(0.0, next_sample - time.monotonic()))
            result.samples.append(self._sample(time.monotonic() - start))
        for t in callers:
            t.join()

    def _sample(self, t_s: float) -> Sample:
        with self.lock:
            lat, self.latencies = self.latencies, []
            errors = len(self.errors)
        pids = self.pids()
        rss: dict[str, float] = {}
        for pid in pids:
            rss[label(pid)] = rss.get(label(pid), 0.0) + rss_bytes([pid]) / 2**20
        p95 = float(np.percentile(lat, 95) * 1000) if lat else 0.0
        return Sample(round(t_s, 1), {k: round(v, 1) for k, v in sorted(rss.items())},
                      open_fds(pids), len(lat), round(p95, 1), errors)  # fmt: skip


def plot(result: SoakResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t_s / 60 for s in result.samples]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    for name in sorted({k for s in result.samples for k in s.rss_mb}):
        axes[0].plot(minutes, [s.rss_mb.get(name, 0) for s in result.samples], label=name)
    axes[0].set_ylabel("RSS (MB)")
    axes[0].legend(fontsize=7, ncol=3)
    axes[1].plot(minutes, [s.fds for s in result.samples])
    axes[1].set_ylabel("open file descriptors")
    axes[2].plot(minutes, [s.p95_ms for s in result.samples], label="unary p95")
    errors = [s.errors for s in result.samples]
    if any(errors):
        axes[2].twinx().step(minutes, errors, color="red", label="errors (cumulative)")
    axes[2].set_ylabel("p95 latency (ms)")
    axes[2].set_xlabel("minutes")
    fig.suptitle(f"soak: {result.streams} real-time streams + {result.rate_rps:g} unary calls/s "
                 f"({result.rate_rps / result.capacity_rps:.0%} of capacity)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--addr")
    p.add_argument("--api-key")
    p.add_argument("--server-pid", type=int, help="watch this process tree")
    p.add_argument("--from-json", type=Path, help="summarize and plot a saved run instead")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--share", type=float, default=0.7, help="of the measured unary capacity")
    p.add_argument("--streams", type=int, default=4, help="real-time streams")
    add_file_args(p)
    p.add_argument("--out", type=Path, default=Path("data/soak"))
    p.add_argument("--max-rss-growth-mb-per-h", type=float, default=50.0)
    p.add_argument("--max-fd-growth", type=int, default=20)
    a = p.parse_args(argv)
    if a.from_json:
        d = json.loads(a.from_json.read_text())
        samples = [Sample(**x) for x in d.pop("samples")]
        result = SoakResult(**{**d, "samples": samples})
        a.minutes = result.minutes
    elif a.addr and a.server_pid:
        soak = Soak(a.addr, a.api_key, bench_files(a)[: a.files],
                    lambda: process_tree(a.server_pid), a.streams)  # fmt: skip
        result = soak.run(a.minutes, a.share)
    else:
        p.error("expected --addr and --server-pid (or --from-json)")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "soak.json").write_text(json.dumps(asdict(result), indent=1))
    plot(result, a.out / "soak.png")
    summary = result.summary()
    ok = (summary["errors"] == 0 and summary["fd_growth"] <= a.max_fd_growth
          and summary["rss_growth_mb_per_h"] <= a.max_rss_growth_mb_per_h)  # fmt: skip
    print(json.dumps({**summary, "capacity_rps": result.capacity_rps, "rate_rps": result.rate_rps,
                      "streams": result.streams, "minutes": a.minutes, "ok": ok}))  # fmt: skip
    for e in result.errors[:10]:
        print("ERROR", e, file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
