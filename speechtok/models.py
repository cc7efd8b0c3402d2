"""``speechtok tokenize``, ``info``, ``models`` and ``export``: thin commands over the
tokenizer core."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.dedup import dedup
from tokenizer.errors import InvalidInputError
from tokenizer.kinds import load_tokenizer, model_info
from tokenizer.model_dir import MODEL_GRAPH, WINDOW_GRAPH, ModelDir
from tokenizer.protocol import BACKENDS, Tokenizer
from tokenizer.shipped import resolve, shipped
from tokenizer.steps import Final, StepSession
from tokenizer.streaming import StreamSession
from tokenizer.windows import Windowed, WindowSpec


def add_parsers(sub: argparse._SubParsersAction) -> None:
    tok = sub.add_parser("tokenize", help="print units of audio files as JSON lines")
    tok.add_argument("--model", help="model directory or shipped name (default: the default)")
    tok.add_argument("--format", choices=["jsonl"], default="jsonl")
    tok.add_argument("--dedup", action="store_true", help="collapse repeats, add durations")
    tok.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="onnx (ONNX Runtime) or torch; auto: onnx once the model is exported",
    )
    mode = tok.add_mutually_exclusive_group()
    mode.add_argument(
        "--full-utterance",
        action="store_true",
        help="encode each file in one pass instead of by canonical windows",
    )
    mode.add_argument(
        "--simulate-stream",
        metavar="CHUNK_MS|random",
        help="feed each file through a streaming session in client chunks of "
        "CHUNK_MS milliseconds or of random sizes (1 sample to 1 s); prints the "
        "same lines as offline tokenization",
    )
    tok.add_argument("--seed", type=int, default=0, help="seed of --simulate-stream random")
    tok.add_argument("files", nargs="+", type=Path)
    tok.set_defaults(func=run_tokenize)

    info = sub.add_parser("info", help="print a model's name, kind, K, frame rate, fingerprint")
    info.add_argument("--model", help="model directory or shipped name (default: the default)")
    info.set_defaults(func=run_info)

    models = sub.add_parser("models", help="list the shipped models, one JSON line each")
    models.set_defaults(func=run_models)

    exp = sub.add_parser(
        "export", help="export an encoder model to ONNX (model.onnx, window.onnx) in its directory"
    )
    exp.add_argument("model", help="model directory")
    exp.add_argument(
        "--window",
        type=WindowSpec.parse,
        metavar="LEFT,CHUNK,RIGHT",
        help="canonical streaming window in ms (default: the model's)",
    )
    exp.add_argument(
        "--precision",
        choices=["fp32", "fp16", "int8"],
        default="fp32",
        help="fp16: graphs that compute in float16 (for GPUs); int8: int8 MatMul/Conv for CPUs "
        "with VNNI/AMX, calibrated on half of the --corpus audio; the unit agreement with the "
        "float32 graph (and int8's speed) is measured and printed",
    )
    exp.add_argument(
        "--step-ms",
        type=int,
        help="also export the incremental step graph (step.onnx) of a bounded-context model, "
        "S ms of new audio per step: the model then tokenizes, offline and streamed, by steps "
        "(each frame encoded once; latency S + the model's lookahead); 0: no step graph "
        "(default: the model's)",
    )
    exp.add_argument("--corpus", type=Path, help="audio for fp16/int8 (default: synthesized)")
    exp.add_argument("--split", default="dev")
    exp.add_argument("--seconds", type=float, default=60.0, help="audio for fp16/int8")
    exp.set_defaults(func=run_export)


TOKENIZE_GROUP = 16
"""Files decoded and tokenized together: their windows or steps share model calls."""


def run_tokenize(args: argparse.Namespace) -> int:
    tok = load_tokenizer(args.model, args.backend)
    for start in range(0, len(args.files), TOKENIZE_GROUP):
        paths = args.files[start : start + TOKENIZE_GROUP]
        audios = [decode_audio(path) for path in paths]
        if args.simulate_stream:
            results = [simulate_stream(tok, a, args.simulate_stream, args.seed) for a in audios]
        elif isinstance(tok, Windowed):
            results = tok.tokenize_batch(audios, full_utterance=args.full_utterance)
        else:
            results = [tok.tokenize(a, full_utterance=args.full_utterance) for a in audios]
        for path, units in zip(paths, results, strict=True):
            line: dict[str, object] = {"path": str(path)}
            if args.dedup:
                units, durations = dedup(units)
                line["durations"] = durations.tolist()
            line.update(
                units=units.tolist(),
                frame_rate=tok.frame_rate,
                model=tok.name,
                fingerprint=tok.fingerprint,
            )
            print(json.dumps(line))
    return 0


def simulate_stream(tok: Tokenizer, audio: np.ndarray, chunking: str, seed: int) -> np.ndarray:
    """Units of ``audio`` fed through a streaming session in client chunks."""
    window = getattr(tok, "window", None)
    if not isinstance(tok, Windowed) or window is None:
        raise InvalidInputError(
            f"expected a model with a streaming window for "
            f"--simulate-stream, found {tok.name} ({tok.kind}) without one"
        )
    if chunking == "random":
        rng = np.random.default_rng(seed)

        def size() -> int:
            return int(rng.integers(1, SAMPLE_RATE + 1))
    else:
        try:
            ms = float(chunking)
        except ValueError:
            ms = 0.0
        if ms <= 0:
            raise InvalidInputError(
                f"expected --simulate-stream CHUNK_MS > 0 or 'random', found {chunking!r}"
            )
        fixed = max(1, round(ms * SAMPLE_RATE / 1000))

        def size() -> int:
            return fixed

    session = StepSession(tok.steps, tok.initial_state()) if tok.steps else StreamSession(window)
    parts, at = [], 0
    while at < len(audio):
        n = size()
        parts.append(_feed(session, audio[at : at + n], tok).units)
        at += n
    parts.append(_feed(session, None, tok).units)
    return np.concatenate(parts)


def run_info(args: argparse.Namespace) -> int:
    print(json.dumps(model_info(args.model)))
    return 0


def _feed(session: StreamSession | StepSession, audio: np.ndarray | None, tok: Windowed) -> Final:
    """A simulated stream's newly final units after ``audio`` (None: the end)."""
    if isinstance(session, StepSession):
        return session.flush(tok.run_steps) if audio is None else session.feed(audio, tok.run_steps)
    if audio is None:
        return session.flush(tok.encode_windows)
    return session.feed(audio, tok.encode_windows)


def run_models(args: argparse.Namespace) -> int:
    for record in shipped():
        print(json.dumps(record))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from bench.common import bench_audio
    from tokenizer.export import export_model
    from tokenizer.model_dir import load_model_dir

    start = time.perf_counter()
    path = resolve(args.model)
    audios = bench_audio(args) if args.precision != "fp32" else []
    calibration, held_out = audios[::2], audios[1::2]  # int8: calibrate on half, measure on half
    fp32: dict[str, bytes] = {}  # int8: the float32 graphs it was quantized from
    hashes = export_model(path, args.window, args.precision, calibration, fp32, args.step_ms)
    model = load_model_dir(path)
    assert model.config.window is not None
    steps = model.config.steps
    line: dict[str, object] = {
        "model": str(path),
        "graphs": hashes,
        "window": model.config.window.to_dict(),
        "step": None if steps is None else {**asdict(steps), "latency_ms": steps.latency_ms},
        "precision": args.precision,
        "fingerprint": model.fingerprint,
    }
    if args.precision != "fp32":
        line[f"{args.precision}_unit_agreement"] = _agreement(
            model, held_out if args.precision == "int8" else audios, fp32.get(MODEL_GRAPH)
        )
    if args.precision == "int8":
        from tokenizer.quantize import int8_instructions

        line["int8_speed"] = _window_speed(model, held_out, fp32[WINDOW_GRAPH])
        line["cpu_int8_instructions"] = int8_instructions()
    print(json.dumps({**line, "wall_s": round(time.perf_counter() - start, 1)}))
    return 0


def _agreement(model: ModelDir, audios: list[np.ndarray], fp32: bytes | None) -> dict[str, float]:
    """Frames of ``audios`` whose units the exported graph (fp16 or int8) gives as a float32
    export of the same model (``fp32``, or exported here) does (whole utterances)."""
    from tokenizer.export import export_graph, unit_agreement
    from tokenizer.torch_tokenizer import TorchTokenizer

    fp32 = fp32 or export_graph(TorchTokenizer(model), None)
    graph = (model.path / MODEL_GRAPH).read_bytes()
    return {
        "frames_equal": round(unit_agreement(graph, fp32, audios), 4),
        "audio_s": round(sum(len(a) for a in audios) / SAMPLE_RATE, 1),
    }


def _window_speed(model: ModelDir, audios: list[np.ndarray], fp32: bytes) -> dict[str, float]:
    """Canonical windows of ``audios`` per second through the exported window graph and the
    float32 window graph ``fp32`` it was made from, side by side (2 threads, batches of 16,
    best of 3 turns each)."""
    import onnxruntime as ort

    from tokenizer.windows import cut

    spec = model.config.window
    assert spec is not None
    pieces = [p for a in audios for p in cut(a, spec)[1] if len(p) == spec.window_samples]
    x = np.stack(pieces).astype(np.float32)
    lengths = np.full(len(x), spec.window_samples, np.int64)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    graphs = {
        "fp32": fp32,
        model.config.precision: (model.path / WINDOW_GRAPH).read_bytes(),
    }
    sessions = {k: ort.InferenceSession(g, options) for k, g in graphs.items()}
    best = {k: float("inf") for k in sessions}
    for _ in range(3):
        for k, s in sessions.items():
            s.run(["units"], {"waveforms": x[:16], "lengths": lengths[:16]})
            t = time.perf_counter()
            for i in range(0, len(x), 16):
                s.run(["units"], {"waveforms": x[i : i + 16], "lengths": lengths[i : i + 16]})
            best[k] = min(best[k], time.perf_counter() - t)
    out = {f"{k}_windows_per_s": round(len(x) / v, 1) for k, v in best.items()}
    out["speedup"] = round(best["fp32"] / best[model.config.precision], 2)
    out["windows"] = len(x)
    return out
