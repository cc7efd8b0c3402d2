"""``speechtok bench serving`` end to end on a tiny model: the real service on loopback, unary
passes against in-process, real-time streams, the table's numbers in JSON, and the plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tokenizer.corpus.manifest import load_corpus


def test_bench_serving_reports_ratios_latencies_and_plot(
    exported: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    _, utts = load_corpus(tiny_corpus)
    plot = tmp_path / "streams.png"
    args = ["bench", "serving", "--model", str(exported), "--corpus", str(tiny_corpus)]
    args += ["--split", utts[0].split, "--seconds", "2", "--concurrency", "2", "--repeats", "1"]
    args += ["--streams", "1", "3", "--stream-seconds", "1.5", "--threads", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "speechtok", *args, "--plot", str(plot), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # --json: nothing else on stdout
    unary, *streams = result["rows"]
    assert unary["test"] == "unary, concurrency 2" and 0 < unary["ratio_to_in_process"] < 5
    assert [r["streams"] for r in streams] == [1, 3]
    for r in streams:
        assert r["windows"] > 0 and 0 < r["p50_ms"] <= r["p95_ms"] < 30_000
        assert 0 <= r["client_cores"] <= r.get("busy_cores", 2.0) + 0.5
    assert plot.stat().st_size > 10_000


def test_capacity_search_finds_the_largest_count_within_the_target() -> None:
    from bench.serving import _capacity

    measured: list[int] = []

    def measure(n: int) -> dict[str, float]:  # p95 grows 10 ms per stream
        measured.append(n)
        return {"streams": n, "p95_ms": 10.0 * n}

    rows: list[dict[str, object]] = [
        {"test": "unary, concurrency 8"},
        {"streams": 4, "p95_ms": 40.0},
        {"streams": 64, "p95_ms": 640.0},
    ]
    assert _capacity(rows, 175.0, measure) == 17  # type: ignore[arg-type]
    assert {17, 18} <= set(measured) and len(measured) <= 6  # bisected between 4 and 64
    assert len(rows) == 3 + len(measured)  # every measurement is reported
    measured.clear()
    assert _capacity([], 95.0, measure) == 9  # type: ignore[arg-type]
    assert measured[:5] == [1, 2, 4, 8, 16]  # doubling from nothing, then bisecting
    assert _capacity([], 5.0, measure) == 0  # type: ignore[arg-type]
