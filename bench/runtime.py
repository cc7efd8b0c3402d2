"""``speechtok bench runtime``: the same model on the same audio, side by side in one run —
torch eager vs ONNX Runtime (full utterance, batch 1 and 8), canonical windows offline, the
incremental steps offline (models exported with a step graph) and a simulated stream (100 ms
client chunks, by steps when the model has them) — plus the encoder's FLOPs per second of audio
and the fraction of the machine's measured matmul peak that each path reaches."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.common import bench_audio, print_json, seconds_per_call
from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.corpus.manifest import load_corpus

if TYPE_CHECKING:
    from tokenizer.torch_tokenizer import TorchTokenizer


def add_parsers(bsub: argparse._SubParsersAction) -> None:
    rt = bsub.add_parser("runtime", help="torch eager vs ONNX Runtime, streaming, batching")
    rt.add_argument("--model", help="exported encoder model (default: the default model)")
    rt.add_argument(
        "--corpus",
        type=Path,
        help="audio source (default: a small corpus is synthesized into a temporary folder)",
    )
    rt.add_argument("--split", default="test")
    rt.add_argument("--seconds", type=float, default=60.0, help="audio per path")
    rt.add_argument("--threads", type=int, default=2)
    rt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rt.set_defaults(func=run_bench_runtime)
    par = bsub.add_parser("parity", help="ONNX Runtime vs torch units and scores on a split")
    par.add_argument("--model", help="exported encoder model (default: the default model)")
    par.add_argument("--corpus", required=True, type=Path)
    par.add_argument("--split", default="test")
    par.set_defaults(func=run_bench_parity)


def _torch_twin(path: Path) -> TorchTokenizer:
    """The torch tokenizer of the same model directory (an encoder model, as exported ones
    are)."""
    from tokenizer.model_dir import load_model_dir
    from tokenizer.torch_tokenizer import TorchTokenizer

    return TorchTokenizer(load_model_dir(path))


def encoder_flops(model: TorchTokenizer, samples: int) -> float:
    """Multiply-adds x 2 of the encoder + quantizer on one input of ``samples`` (torch's FLOP
    counter; attention costs grow with the input, so a window is counted at its own length)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, samples)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.scores(x, torch.tensor([samples]))
    return float(counter.get_total_flops())


def step_flops(model: TorchTokenizer) -> float:
    """FLOPs of one incremental step of one stream (``encoder_flops``' counter)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from tokenizer.steps import StepJob, stack

    assert model.steps is not None
    job = StepJob(np.zeros(model.steps.samples, np.float32), 64, 0, 10**9, model.initial_state())
    feeds = [torch.from_numpy(v) for v in stack([job]).values()]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.step_module(*feeds)
    return float(counter.get_total_flops())


def matmul_peak(threads: int) -> float:
    """Measured float32 GEMM FLOP/s of this machine with ``threads`` threads (torch/MKL)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    per = seconds_per_call(lambda: a @ b, 1.0)
    return 2 * 2048**3 / per


def run_bench_runtime(args: argparse.Namespace) -> int:
    import torch

    from tokenizer.kinds import load_served
    from tokenizer.steps import StepSession, tokenize_by_steps
    from tokenizer.streaming import StreamSession
    from tokenizer.windows import tokenize_windowed

    torch.set_num_threads(args.threads)
    onnx = load_served(args.model, threads=args.threads)
    eager = _torch_twin(onnx.path)
    assert onnx.window is not None
    window = onnx.window
    audios = bench_audio(args)
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    batches = [audios[i : i + 8] for i in range(0, len(audios), 8)]
    groups = [audios[i : i + 16] for i in range(0, len(audios), 16)]

    steps = onnx.steps

    def stream() -> None:
        for a in audios:
            if steps is not None:
                stepped = StepSession(steps, onnx.initial_state())
                for at in range(0, len(a), 1600):
                    stepped.feed(a[at : at + 1600], onnx.run_steps)
                stepped.flush(onnx.run_steps)
                continue
            s = StreamSession(window)
            for at in range(0, len(a), 1600):
                s.feed(a[at : at + 1600], onnx.encode_windows)
            s.flush(onnx.encode_windows)

    def by_steps(tok: Any) -> Callable[[], object]:
        assert steps is not None
        return lambda: [
            tokenize_by_steps([a], steps, tok.initial_state(), tok.run_steps) for a in audios
        ]

    paths: list[tuple[str, Callable[[], object]]] = [
        ("torch eager, full utterance, batch 1", lambda: [eager.encode_batch([a]) for a in audios]),
        ("torch eager, full utterance, batch 8", lambda: [eager.encode_batch(b) for b in batches]),
        ("onnxruntime, full utterance, batch 1", lambda: [onnx.encode_batch([a]) for a in audios]),
        ("onnxruntime, full utterance, batch 8", lambda: [onnx.encode_batch(b) for b in batches]),
        (
            "torch eager, canonical windows",
            lambda: [tokenize_windowed([a], window, eager.encode_batch) for a in audios],
        ),
        (
            "onnxruntime, canonical windows",
            lambda: [tokenize_windowed([a], window, onnx.encode_windows) for a in audios],
        ),
    ]
    if steps is not None:
        paths.append(("torch eager, incremental steps", by_steps(eager)))
        paths.append(("onnxruntime, incremental steps", by_steps(onnx)))
        paths.append(
            (  # the service's case: steps of many streams share each call
                "onnxruntime, incremental steps, 16 files in lockstep",
                lambda: [onnx.tokenize_batch(g) for g in groups],
            )
        )
    paths.append((f"onnxruntime, stream of 100 ms chunks{' (steps)' if steps else ''}", stream))
    flops = encoder_flops(eager, 10 * SAMPLE_RATE) / 10  # per audio second, whole utterances
    window_flops = encoder_flops(eager, window.window_samples) / (window.chunk_ms / 1000)
    stepped_flops = step_flops(eager) / (steps.step_ms / 1000) if steps is not None else None
    peak = matmul_peak(args.threads)
    rows: list[dict[str, Any]] = []
    for name, fn in paths:
        per = seconds_per_call(fn)
        per_s = window_flops if "window" in name or "stream" in name else flops
        if "step" in name and stepped_flops is not None:
            per_s = stepped_flops
        work = seconds * per_s
        rows.append(
            {
                "path": name,
                "audio_s": round(seconds, 1),
                "wall_s": per,
                "x_realtime": seconds / per,
                "ms_per_audio_s": 1000 * per / seconds,
                "peak_fraction": work / per / peak,
            }
        )
        print(f"  {name}: {seconds / per:.1f}x real time", file=sys.stderr)

    def variant(row: dict[str, Any]) -> str:
        return str(row["path"]).split(",", 1)[1]

    base = {variant(r): r["wall_s"] for r in rows if r["path"].startswith("torch")}
    for r in rows:
        kind = variant(r)
        r["speedup_vs_torch"] = base[kind] / r["wall_s"] if kind in base else None
    result = {
        "model": onnx.name,
        "fingerprint": onnx.fingerprint,
        "window": window.to_dict(),
        "threads": args.threads,
        "encoder_gflop_per_audio_s": flops / 1e9,
        "window_gflop_per_audio_s": window_flops / 1e9,
        "step": None if steps is None else {"step_ms": steps.step_ms, "lag": steps.lag},
        "step_gflop_per_audio_s": None if stepped_flops is None else stepped_flops / 1e9,
        "matmul_peak_gflops": peak / 1e9,
        "rows": rows,
    }
    if args.json:
        print_json(args, result)
    else:
        print(table(result))
    return 0


def table(result: dict[str, Any]) -> str:
    lines = [
        f"model {result['model']} ({result['fingerprint'][:12]}), window {result['window']}, "
        f"{result['threads']} threads",
        f"encoder: {result['encoder_gflop_per_audio_s']:.2f} GFLOP per second of audio "
        f"({result['window_gflop_per_audio_s']:.2f} by canonical windows"
        + (
            f", {result['step_gflop_per_audio_s']:.2f} by incremental steps"
            if result.get("step_gflop_per_audio_s")
            else ""
        )
        + "); "
        f"measured fp32 matmul peak {result['matmul_peak_gflops']:.0f} GFLOP/s",
        "",
        "| path | x real time | ms per audio s | vs torch eager | % of peak |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ratio = "—" if r["speedup_vs_torch"] is None else f"{r['speedup_vs_torch']:.2f}x"
        lines.append(
            f"| {r['path']} | {r['x_realtime']:.1f} | {r['ms_per_audio_s']:.2f} | "
            f"{ratio} | {100 * r['peak_fraction']:.1f} |"
        )
    return "\n".join(lines)


def run_bench_parity(args: argparse.Namespace) -> int:
    """Full-utterance units and scores of both backends on every utterance of a split: equal
    frames, max score difference, and whether every differing frame is a near-tie."""
    import torch

    from tokenizer.kinds import load_served

    onnx = load_served(args.model)
    eager = _torch_twin(onnx.path)
    root, utts = load_corpus(args.corpus, args.split)
    frames = same = near_ties = windowed_same = windowed_total = 0
    max_diff = 0.0
    for u in utts:
        audio = decode_audio(u.audio_path(root))
        with torch.inference_mode():
            scores, _ = eager.scores(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
            ref = scores[0].numpy()
        got = onnx.scores(audio)
        max_diff = max(max_diff, float(np.abs(got - ref).max()))
        differ = got.argmax(1) != ref.argmax(1)
        top2 = np.sort(ref, axis=1)[:, -2:]
        near_ties += int(np.sum(differ & (top2[:, 1] - top2[:, 0] < 1e-3)))
        same += int(np.sum(~differ))
        frames += len(ref)
        w_eager, w_onnx = eager.tokenize(audio), onnx.tokenize(audio)
        windowed_same += int(np.sum(w_eager == w_onnx))
        windowed_total += len(w_eager)
    print(
        json.dumps(
            {
                "model": onnx.name,
                "split": args.split,
                "utterances": len(utts),
                "frames": frames,
                "equal_fraction": same / frames,
                "differing": frames - same,
                "differing_near_ties": near_ties,
                "max_score_diff": max_diff,
                "windowed_equal_fraction": windowed_same / windowed_total,
            }
        )
    )
    return 0
