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
        [sys.executable, "-m", "tokenizer.cli", *args, "--plot", str(plot), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("{") :])
    unary, *streams = result["rows"]
    assert unary["test"] == "unary, concurrency 2" and 0 < unary["ratio_to_in_process"] < 5
    assert [r["streams"] for r in streams] == [1, 3]
    for r in streams:
        assert r["windows"] > 0 and 0 < r["p50_ms"] <= r["p95_ms"] < 30_000
        assert 0 <= r["client_cores"] <= r.get("busy_cores", 2.0) + 0.5
    assert plot.stat().st_size > 10_000
