"""``speechtok bench runtime|parity|serving|batch``; with ``--json`` only the JSON goes to
stdout (logs, Ray's included, go to stderr)."""

from __future__ import annotations

import argparse
from typing import Any

from bench import batch, runtime, serving
from bench.common import json_only_stdout


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    runtime.add_parsers(bsub)
    serving.add_parser(bsub)
    batch.add_parser(bsub)
    for command in bsub.choices.values():  # --json: nothing but the JSON on stdout
        run = command.get_default("func")
        command.set_defaults(func=lambda args, run=run: _json_guarded(run, args))


def _json_guarded(run: Any, args: argparse.Namespace) -> int:
    if getattr(args, "json", None) is not True:
        return int(run(args))
    with json_only_stdout() as args.json_out:
        return int(run(args))
