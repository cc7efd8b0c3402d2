"""``speechtok bench batch``: the Ray Data batch job against the same ONNX Runtime in process,
on the same files, in one run — decode + tokenize by canonical windows, audio seconds per wall
second, and their ratio."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from bench.common import print_json


def add_parser(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("batch", help="Ray Data batch job vs in-process runtime, same files")
    p.add_argument("--input", required=True, type=Path, help="folder or .jsonl/.tsv manifest")
    p.add_argument("--model", help="exported model (default: the default model)")
    p.add_argument("--seconds", type=float, default=900.0, help="audio to use (first files)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_bench_batch)


def run_bench_batch(args: argparse.Namespace) -> int:
    from serving.batch.inputs import list_inputs
    from serving.batch.job import BatchConfig, run_batch
    from tokenizer.audio import decode_audio
    from tokenizer.kinds import load_served
    from tokenizer.shipped import resolve

    path = resolve(args.model)
    files, seconds = [], 0.0
    for inp in list_inputs(args.input):
        if seconds >= args.seconds:
            break
        files.append(inp)
        seconds += sf.info(inp.path).duration
    tmp = Path(tempfile.mkdtemp(prefix="speechtok-bench-batch-"))
    manifest = tmp / "inputs.jsonl"
    manifest.write_text("".join(json.dumps({"id": f.id, "audio": f.path}) + "\n" for f in files))

    tok = load_served(path, threads=args.threads)
    start = time.perf_counter()
    for i in range(0, len(files), args.batch_size):
        group = files[i : i + args.batch_size]
        tok.tokenize_batch([decode_audio(f.path) for f in group])
    in_process = seconds / (time.perf_counter() - start)
    print(f"  in process: {in_process:.1f}x real time", file=sys.stderr)

    summary = run_batch(
        BatchConfig(
            input=manifest,
            out=tmp / "out",
            model=str(path),
            threads=args.threads,
            batch_size=args.batch_size,
            shard_size=100,
        )
    )
    pipeline = seconds / summary.pipeline_s
    wall = seconds / summary.wall_s
    result = {
        "model": tok.name,
        "fingerprint": tok.fingerprint,
        "files": len(files),
        "audio_s": round(seconds, 1),
        "in_process_x_realtime": in_process,
        "batch_pipeline_x_realtime": pipeline,
        "batch_wall_x_realtime": wall,
        "pipeline_ratio": pipeline / in_process,
        "wall_ratio": wall / in_process,
        "ray_startup_s": summary.wall_s - summary.pipeline_s,
    }
    if args.json:
        print_json(args, result)
        return 0
    print(
        f"model {tok.name} ({tok.fingerprint[:12]}), {len(files)} files, {seconds:.0f} s of "
        f"audio, ONNX Runtime {args.threads} threads, {args.batch_size} utterances per call\n"
    )
    print("| path | x real time | vs in process |\n|---|---|---|")
    print(f"| in process (decode + tokenize) | {in_process:.1f} | 100% |")
    print(f"| Ray Data job, pipeline | {pipeline:.1f} | {pipeline / in_process:.0%} |")
    print(
        f"| Ray Data job, with Ray start-up ({result['ray_startup_s']:.0f} s) "
        f"| {wall:.1f} | {wall / in_process:.0%} |"
    )
    return 0
