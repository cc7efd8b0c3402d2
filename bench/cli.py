"""``speechtok bench runtime|parity|serving|batch``."""

from __future__ import annotations

import argparse

from bench import batch, runtime, serving


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    runtime.add_parsers(bsub)
    serving.add_parser(bsub)
    batch.add_parser(bsub)
