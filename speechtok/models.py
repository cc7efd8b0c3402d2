"""``speechtok tokenize``, ``info``, ``models`` and ``export``: thin commands over the
tokenizer core."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.dedup import dedup
from tokenizer.errors import InvalidInputError
from tokenizer.kinds import load_tokenizer, model_info
from tokenizer.protocol import BACKENDS, Tokenizer
from tokenizer.shipped import resolve, shipped
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
    exp.set_defaults(func=run_export)


def run_tokenize(args: argparse.Namespace) -> int:
    tok = load_tokenizer(args.model, args.backend)
    for path in args.files:
        audio = decode_audio(path)
        if args.simulate_stream:
            units = simulate_stream(tok, audio, args.simulate_stream, args.seed)
        else:
            units = tok.tokenize(audio, full_utterance=args.full_utterance)
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

    session = StreamSession(window)
    parts, at = [], 0
    while at < len(audio):
        n = size()
        parts.append(session.feed(audio[at : at + n], tok.encode_windows).units)
        at += n
    parts.append(session.flush(tok.encode_windows).units)
    return np.concatenate(parts)


def run_info(args: argparse.Namespace) -> int:
    print(json.dumps(model_info(args.model)))
    return 0


def run_models(args: argparse.Namespace) -> int:
    for record in shipped():
        print(json.dumps(record))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from tokenizer.export import export_model
    from tokenizer.model_dir import load_model_dir

    start = time.perf_counter()
    path = resolve(args.model)
    hashes = export_model(path, args.window)
    model = load_model_dir(path)
    assert model.config.window is not None
    print(
        json.dumps(
            {
                "model": str(path),
                "graphs": hashes,
                "window": model.config.window.to_dict(),
                "fingerprint": model.fingerprint,
                "wall_s": round(time.perf_counter() - start, 1),
            }
        )
    )
    return 0
