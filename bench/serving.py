"""``speechtok bench serving``: the service (Ray Serve + gRPC on loopback) against the same ONNX
Runtime in process, in one run — unary throughput at concurrency 1 / 8 / 32 and its ratio to
in-process (passes by turns, medians), then N concurrent real-time streams with p50 / p95
per-chunk latency (time from sending the chunk that completes a window to receiving that
window's units) and how many of the machine's cores were busy meanwhile."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tokenizer.steps import StepSpec
from tokenizer.windows import WindowSpec


def add_parser(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("serving", help="served vs in-process throughput; concurrent streams")
    p.add_argument("--model", help="exported model (default: the default model)")
    p.add_argument("--corpus", type=Path, help="audio source (default: synthesized)")
    p.add_argument("--split", default="test")
    p.add_argument("--seconds", type=float, default=60.0, help="audio per throughput run")
    p.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 32])
    p.add_argument("--streams", type=int, nargs="*", default=[16, 64])
    p.add_argument("--stream-seconds", type=float, default=10.0)
    p.add_argument("--chunk-ms", type=float, default=100.0)
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads per replica")
    p.add_argument("--replicas", type=int, default=1, help="model replicas")
    p.add_argument(
        "--repeats", type=int, default=3, help="in-process / served unary passes, by turns"
    )
    p.add_argument(
        "--spinning", action="store_true", help="let the served model's idle threads busy-wait"
    )
    p.add_argument(
        "--capacity-ms",
        type=float,
        help="also search the most real-time streams whose p95 per-chunk latency stays within "
        "this many ms",
    )
    p.add_argument("--plot", type=Path, help="PNG of stream latency and busy cores vs streams")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_bench_serving)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _unary(addr: str, files: list[bytes], concurrency: int) -> float:
    from serving.client import AsyncClient

    client = AsyncClient(addr)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for f in files:
        queue.put_nowait(f)

    async def worker() -> None:
        while not queue.empty():
            await client.tokenize(queue.get_nowait())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    await client.close()
    return wall


async def _streams(
    addr: str, audio: np.ndarray, n: int, chunk_ms: float, spec: WindowSpec | StepSpec
) -> list[float]:
    """Per-answer latencies (s) of ``n`` concurrent streams sent in real time: from the client
    chunk that completed the answer's last window (or step) to the answer. Independent clients
    start at unrelated moments, so their windows complete at unrelated moments: the streams
    start evenly spread over one window (or step) hop (starting them within one client chunk
    would make every stream complete its windows in the same burst)."""
    from serving.client import AsyncClient

    client = AsyncClient(addr, timeout=600)
    step = int(chunk_ms * 16)
    latencies: list[float] = []

    async def one(delay: float) -> None:
        await asyncio.sleep(delay)
        sent: list[tuple[int, float]] = []  # (samples sent so far, time)

        async def chunks() -> Any:
            start = time.perf_counter()
            for i, at in enumerate(range(0, len(audio), step)):
                await asyncio.sleep(max(0.0, start + i * chunk_ms / 1000 - time.perf_counter()))
                sent.append((min(len(audio), at + step), time.perf_counter()))
                yield audio[at : at + step]

        async for answer in client.stream(chunks(), ""):
            now = time.perf_counter()
            if answer.final or not answer.units:
                continue
            need = spec.final_at(answer.offset + len(answer.units) - 1)  # samples that made it
            when = next(t for s, t in sent if s >= need)
            latencies.append(now - when)

    hop = (spec.step_ms if isinstance(spec, StepSpec) else spec.chunk_ms) / 1000
    await asyncio.gather(*(one(i * hop / n) for i in range(n)))
    await client.close()
    return latencies


MAX_STREAMS = 1024
"""Most streams a capacity search tries."""


def _capacity(
    rows: list[dict[str, Any]], target_ms: float, measure: Callable[[int], dict[str, Any]]
) -> int:
    """The most streams whose p95 stays within ``target_ms``: doubling from the rows measured so
    far until one is over, then bisecting; every measurement is appended to ``rows``. One run
    per count, so near the boundary the answer carries the machine's noise."""

    def within(n: int) -> bool:
        row = next((r for r in rows if r.get("streams") == n), None)
        if row is None:
            row = measure(n)
            rows.append(row)
        return bool(row["p95_ms"] <= target_ms)

    measured = [r["streams"] for r in rows if "streams" in r]
    good = max((n for n in measured if within(n)), default=0)
    bad = min((n for n in measured if n > good and not within(n)), default=None)
    while bad is None:
        n = min(max(2 * good, 1), MAX_STREAMS)
        if within(n):
            good = n
            if n == MAX_STREAMS:
                return n
        else:
            bad = n
    while bad - good > 1:
        n = (good + bad) // 2
        good, bad = (n, bad) if within(n) else (good, n)
    return good


def _busy_cores() -> float | None:
    """Busy CPU seconds of the whole machine so far (Linux ``/proc/stat``; None elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_bench_serving(args: argparse.Namespace) -> int:
    import io

    import ray
    import soundfile as sf
    from ray import serve

    from bench.common import bench_audio, print_json
    from serving.app import build_app
    from serving.config import ServeConfig
    from serving.local_ray import start_local_ray
    from tokenizer.audio import SAMPLE_RATE, decode_audio
    from tokenizer.kinds import load_served
    from tokenizer.shipped import resolve

    path = resolve(args.model)
    audios = bench_audio(args)

    files = []
    for a in audios:
        buf = io.BytesIO()
        sf.write(buf, a, SAMPLE_RATE, format="WAV", subtype="FLOAT")
        files.append(buf.getvalue())
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    local = load_served(path, threads=args.threads, spinning=args.spinning)

    def in_process_x() -> float:
        start = time.perf_counter()
        for f in files:
            local.tokenize(decode_audio(f))
        return seconds / (time.perf_counter() - start)

    config = ServeConfig(
        models=[str(path)],
        port=_port(),
        threads=args.threads,
        spinning=args.spinning,
        max_streams=MAX_STREAMS if args.capacity_ms else max(args.streams, default=0) + 8,
        client_streams=0,  # every stream comes from this one client
        model_replicas=args.replicas,
        model_cpus=1.0 / args.replicas,
    )
    start_local_ray(2)
    rows: list[dict[str, Any]] = []
    capacity: int | None = None
    try:
        serve.start(proxy_location="Disabled")
        addr = (
            serve.run(build_app(config), name="speechtok-bench", route_prefix=None)
            .ready.remote()
            .result()
        )
        asyncio.run(_unary(addr, files[:4], 4))  # warm-up
        in_process_x()
        local_runs: list[float] = []
        for c in args.concurrency:
            # in process and served by turns, so that noise from other tenants of the machine
            # falls on both; the row gives the medians
            served, ratios = [], []
            for _ in range(args.repeats):
                local_runs.append(in_process_x())
                served.append(seconds / asyncio.run(_unary(addr, files, c)))
                ratios.append(served[-1] / local_runs[-1])
            rows.append(
                {
                    "test": f"unary, concurrency {c}",
                    "x_realtime": float(np.median(served)),
                    "ratio_to_in_process": float(np.median(ratios)),
                }
            )
            print(f"  unary c={c}: {rows[-1]['x_realtime']:.1f}x real time", file=sys.stderr)
        in_process = float(np.median(local_runs)) if local_runs else in_process_x()
        stream_audio = np.concatenate(audios)[: int(args.stream_seconds * SAMPLE_RATE)]

        def stream_row(n: int) -> dict[str, Any]:
            busy, client, start = _busy_cores(), time.process_time(), time.perf_counter()
            spec = local.steps or local.window
            assert spec is not None
            lat = np.array(asyncio.run(_streams(addr, stream_audio, n, args.chunk_ms, spec)))
            wall = time.perf_counter() - start
            row = {
                "test": f"{n} real-time stream{'s' * (n > 1)} ({args.chunk_ms:g} ms chunks)",
                "streams": n,
                "p50_ms": float(np.percentile(lat, 50) * 1000),
                "p95_ms": float(np.percentile(lat, 95) * 1000),
                "windows": len(lat),
                "client_cores": (time.process_time() - client) / wall,
            }
            now = _busy_cores()
            if busy is not None and now is not None:
                row["busy_cores"] = (now - busy) / wall
            print(f"  {n} streams: p95 {row['p95_ms']:.1f} ms", file=sys.stderr)
            return row

        for n in args.streams:
            rows.append(stream_row(n))
        if args.capacity_ms:
            capacity = _capacity(rows, args.capacity_ms, stream_row)
    finally:
        serve.shutdown()
        ray.shutdown()
    rows.sort(key=lambda r: r.get("streams", 0))  # unary rows first, then streams by count
    result: dict[str, Any] = {
        "model": local.name,
        "fingerprint": local.fingerprint,
        "audio_s": round(seconds, 1),
        "in_process_x_realtime": in_process,
        "rows": rows,
    }
    if capacity is not None:
        result["capacity"] = {"p95_ms": args.capacity_ms, "streams": capacity}
    if args.plot:
        plot_streams(
            args.plot,
            rows,
            f"{local.name}: {args.replicas} replica(s) x {args.threads} "
            f"threads, {os.cpu_count()} cores",
            args.capacity_ms or 100.0,
        )
    if args.json:
        print_json(args, result)
        return 0
    print(
        f"model {local.name} ({local.fingerprint[:12]}); in process (ONNX Runtime, "
        f"{args.threads} threads, median pass): {in_process:.1f}x real time on {seconds:.0f} s of "
        f"audio; {args.replicas} replica(s) x {args.threads} threads served\n"
    )
    print(
        f"busy cores: the machine's ({os.cpu_count()} cores) during the run; client cores: "
        "the bench's own stream clients, part of it\n"
    )
    print(
        "| test | x real time | vs in process | p50 ms | p95 ms | busy cores | client cores |\n"
        "|---|---|---|---|---|---|---|"
    )
    for r in rows:
        cells = [
            _cell(r, "x_realtime", "{:.1f}"),
            _cell(r, "ratio_to_in_process", "{:.0%}"),
            _cell(r, "p50_ms", "{:.1f}"),
            _cell(r, "p95_ms", "{:.1f}"),
            _cell(r, "busy_cores", "{:.2f}"),
            _cell(r, "client_cores", "{:.2f}"),
        ]
        print(f"| {r['test']} | " + " | ".join(cells) + " |")
    if capacity is not None:
        print(
            f"\ncapacity: {capacity} real-time streams within {args.capacity_ms:g} ms p95 "
            "(one run per count: near the boundary it carries the machine's noise)"
        )
    return 0


def plot_streams(path: Path, rows: list[dict[str, Any]], title: str, target_ms: float) -> None:
    """p50 / p95 per-chunk latency (log scale, a dashed line at ``target_ms``) and busy cores
    against concurrent streams."""
    from lm_probe.plots import pyplot

    streams = [r for r in rows if "p95_ms" in r]
    if not streams:
        return
    n = [r["streams"] for r in streams]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(n, [r["p50_ms"] for r in streams], marker="o", label="p50 latency")
    ax.plot(n, [r["p95_ms"] for r in streams], marker="o", label="p95 latency")
    ax.axhline(target_ms, color="grey", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent real-time streams")
    ax.set_ylabel("per-chunk latency (ms)")
    if all("busy_cores" in r for r in streams):
        cores = ax.twinx()
        cores.plot(n, [r["busy_cores"] for r in streams], color="grey", marker=".", lw=0.8)
        cores.set_ylabel("busy cores (grey)")
        cores.set_ylim(0, os.cpu_count() or 2)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    return fmt.format(row[key]) if key in row else "—"
