"""Fairness: the p95 latency of a well-behaved client, alone and beside an abusive one.

The well-behaved client calls ``Tokenize`` at a steady ``rate`` a second; the abusive client
calls as fast as ``abuse`` threads go, never waiting. Three phases of ``seconds`` each: the
well-behaved client alone, beside an abuser whose key has no quota, and beside an abuser whose
key has a quota (``client_quotas`` of the service, set by ``bench/fairness.sh``). Prints a table
of the well-behaved client's p50/p95 and what the abuser got through and was refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import grpc
import numpy as np

from bench.common import add_file_args, bench_files
from serving.client import Client


def _abuse(address: str, key: str, data: bytes, stop: threading.Event, counts: dict) -> None:
    with Client(address, api_key=key, timeout=60, retries=0) as client:
        while not stop.is_set():
            try:
                client.tokenize(data)
                counts["answered"] += 1
            except grpc.RpcError as e:
                counts[e.code().name] = counts.get(e.code().name, 0) + 1


def phase(address: str, good_key: str, abuser_key: str | None, files: list[bytes],
          seconds: float, rate: float, abuse: int) -> dict[str, float]:  # fmt: skip
    """The well-behaved client's latencies over ``seconds``, beside ``abuse`` threads of
    ``abuser_key`` (none: alone)."""
    stop = threading.Event()
    counts: dict[str, int] = {"answered": 0}
    threads = []
    for k in range(abuse if abuser_key else 0):
        args = (address, abuser_key, files[k % len(files)], stop, counts)
        threads.append(threading.Thread(target=_abuse, args=args, daemon=True))
    for t in threads:
        t.start()
    time.sleep(1.0 if threads else 0.0)  # the abuse is under way
    latencies = []
    with Client(address, api_key=good_key, timeout=60) as good:
        start = time.monotonic()
        for n in range(int(seconds * rate)):
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
            t0 = time.perf_counter()
            good.tokenize(files[n % len(files)])
            latencies.append(time.perf_counter() - t0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    ms = np.array(latencies) * 1000
    return {
        "good_p50_ms": round(float(np.percentile(ms, 50)), 1),
        "good_p95_ms": round(float(np.percentile(ms, 95)), 1),
        "good_calls": len(ms),
        "abuser_answered_per_s": round(counts.pop("answered") / (seconds + 1), 1),
        "abuser_refused_per_s": round(counts.pop("RESOURCE_EXHAUSTED", 0) / (seconds + 1), 1),
        "abuser_other_errors": sum(counts.values()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fairness",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--addr", required=True)
    p.add_argument("--good-key", required=True)
    p.add_argument("--free-key", required=True, help="an abuser's key with no quota")
    p.add_argument("--limited-key", required=True, help="an abuser's key with a quota")
    p.add_argument("--quota", default="", help="the limited key's quota (for the table)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=4.0, help="well-behaved calls per second")
    p.add_argument("--abuse", type=int, default=16, help="abusive threads")
    add_file_args(p)
    a = p.parse_args(argv)
    files = [f.read_bytes() for f in bench_files(a)[: a.files]]
    abusers = {
        "alone": None,
        "beside an abuser without a quota": a.free_key,
        f"beside an abuser with a quota ({a.quota})": a.limited_key,
    }
    rows = {
        name: phase(a.addr, a.good_key, key, files, a.seconds, a.rate, a.abuse)
        for name, key in abusers.items()
    }
    print(json.dumps(rows), file=sys.stderr)
    alone = rows["alone"]["good_p95_ms"]
    print(
        f"| well-behaved client ({a.rate:g} calls/s) | p50 | p95 | p95 / alone | abuser "
        f"({a.abuse} threads) answered/s | refused/s |\n| --- | --- | --- | --- | --- | --- |"
    )
    for name, r in rows.items():
        print(f"| {name} | {r['good_p50_ms']} ms | {r['good_p95_ms']} ms | "
              f"{r['good_p95_ms'] / alone:.2f}x | {r['abuser_answered_per_s']} | "
              f"{r['abuser_refused_per_s']} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
