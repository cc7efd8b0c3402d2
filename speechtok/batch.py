"""``speechtok batch [run] --input ... --out ...`` and ``speechtok batch verify OUTDIR``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

SUBCOMMANDS = ("run", "verify")


def add_parser(sub: argparse._SubParsersAction) -> None:
    batch = sub.add_parser(
        "batch",
        help="tokenize a corpus on Ray Data into Parquet shards (resumable); verify a job",
        description="speechtok batch [run] --input IN --out OUT ...  |  speechtok batch verify OUT",
    )
    bsub = batch.add_subparsers(dest="batch_command", required=True)
    run = bsub.add_parser("run", help="run (or resume) a batch job; 'run' may be left out")
    run.add_argument(
        "--input",
        required=True,
        type=Path,
        help="a folder of audio files or a .jsonl/.tsv manifest",
    )
    run.add_argument("--out", required=True, type=Path, help="output folder (resumed if it exists)")
    run.add_argument("--model", help="exported model directory or shipped name (default: default)")
    run.add_argument(
        "--address",
        help="Ray cluster to attach to (auto, ray://HOST:10001); default: start Ray locally",
    )
    run.add_argument("--shard-size", type=int, default=1000, help="inputs per Parquet shard")
    run.add_argument("--dedup", action="store_true", help="collapse repeats, add durations")
    run.add_argument("--workers", type=int, default=1, help="tokenizer actors")
    run.add_argument("--threads", type=int, help="ONNX Runtime threads per actor")
    run.add_argument("--batch-size", type=int, default=8, help="utterances per tokenizer call")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=run_batch_command)
    ver = bsub.add_parser("verify", help="check a finished job's outputs")
    ver.add_argument("out", type=Path)
    ver.set_defaults(func=run_verify)


def default_subcommand(argv: list[str]) -> list[str]:
    """``speechtok batch --input ...`` means ``speechtok batch run --input ...``."""
    if argv[:1] == ["batch"] and argv[1:2] and argv[1] not in (*SUBCOMMANDS, "-h", "--help"):
        return ["batch", "run", *argv[1:]]
    return argv


def run_batch_command(args: argparse.Namespace) -> int:
    from serving.batch.job import BatchConfig, run_batch

    summary = run_batch(
        BatchConfig(
            input=args.input,
            out=args.out,
            model=args.model,
            address=args.address,
            shard_size=args.shard_size,
            dedup=args.dedup,
            workers=args.workers,
            threads=args.threads,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
    )
    print(
        f"batch: {summary.rows} rows, {summary.errors} errors, "
        f"{summary.audio_hours:.3f} h of audio in {summary.shards} shards "
        f"({summary.skipped_shards} already done); this run: {summary.run_files} files, "
        f"{summary.run_audio_hours:.3f} h in {summary.pipeline_s:.1f} s "
        f"= {summary.hours_per_hour:.1f} h/h",
        file=sys.stderr,
    )
    print(json.dumps(asdict(summary)))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from serving.batch.verify import verify

    report = verify(args.out)
    print(json.dumps(report))
    return 0 if report["ok"] else 1
