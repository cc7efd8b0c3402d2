"""``speechtok train kmeans``, ``speechtok tokenize`` and ``speechtok info``: thin commands over
the library."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import load_corpus, synth_command
from tokenizer.errors import InvalidInputError
from tokenizer.features import FeatureConfig, extract
from tokenizer.kmeans import KmeansConfig, fit_kmeans, save_kmeans_tokenizer
from tokenizer.model_dir import ModelDirError, load_model_dir
from tokenizer.registry import resolve, shipped
from tokenizer.streaming import StreamSession
from tokenizer.tokenizers import BACKENDS, Tokenizer, dedup, load_tokenizer
from tokenizer.train import cli as train_cli
from tokenizer.windows import Windowed, WindowSpec

if TYPE_CHECKING:
    from tokenizer.encoder_tokenizer import EncoderTokenizer

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train tokenizers")
    tsub = train.add_subparsers(dest="train_command", required=True)
    km = tsub.add_parser("kmeans", help="k-means tokenizer over acoustic features")
    km.add_argument("--corpus", required=True, type=Path)
    km.add_argument("--out", required=True, type=Path)
    km.add_argument("--features", choices=["mfcc", "logmel"], default="mfcc")
    km.add_argument(
        "--encoder",
        help="cluster this encoder model's layer instead of acoustic "
        "features (the HuBERT + k-means baseline)",
    )
    km.add_argument(
        "--layer",
        type=int,
        help="encoder layer (default: the final output, the layer Spin/DC-Spin put their head on)",
    )
    km.add_argument("--K", type=int, default=100, help="number of units")
    km.add_argument("--split", default="train")
    km.add_argument("--name", help="model name (default: the --out folder name)")
    km.add_argument("--max-frames", type=int, default=KmeansConfig.max_frames)
    km.add_argument("--seed", type=int, default=0)
    km.set_defaults(func=run_train_kmeans)
    train_cli.add_parsers(tsub)

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


def run_train_kmeans(args: argparse.Namespace) -> int:
    from tokenizer.encoder_tokenizer import save_encoder_kmeans

    root, utts = load_corpus(args.corpus, args.split)
    feat_cfg = FeatureConfig(type=args.features)
    start = time.perf_counter()
    encoder = _encoder_tokenizer(args.encoder) if args.encoder else None
    feats = []
    for u in tqdm(utts, desc="features", unit="utt", file=sys.stderr):
        x = decode_audio(u.audio_path(root))
        feats.append(encoder.layer_features(x, args.layer) if encoder else extract(x, feat_cfg))
    config = KmeansConfig(
        K=args.K, max_frames=args.max_frames, seed=args.seed, standardize=encoder is None
    )
    tensors = fit_kmeans(np.concatenate(feats), config)
    info = {
        "corpus": str(args.corpus),
        "split": args.split,
        "utterances": len(utts),
        "frames": int(sum(len(f) for f in feats)),
        "seed": args.seed,
        "command": "speechtok " + shlex.join(sys.argv[1:]),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    if built_with := synth_command(args.corpus):
        info["corpus_built_with"] = built_with
    name = args.name or args.out.name
    if encoder is None:
        model = save_kmeans_tokenizer(args.out, name, feat_cfg, tensors, info)
    else:
        info["encoder"] = {"name": encoder.name, "fingerprint": encoder.fingerprint}
        model = save_encoder_kmeans(args.out, name, encoder, args.layer, tensors["centroids"], info)
    print(
        json.dumps(
            {
                "model": str(args.out),
                "K": args.K,
                "fingerprint": model.fingerprint,
                "wall_s": info["wall_s"],
            }
        )
    )
    return 0


def _encoder_tokenizer(name: str) -> EncoderTokenizer:
    from tokenizer.encoder_tokenizer import EncoderTokenizer

    tok = load_tokenizer(name, "torch")
    if not isinstance(tok, EncoderTokenizer):
        raise ModelDirError(
            f"expected an encoder model (hubert, spin, dcspin) for --encoder, "
            f"found kind {tok.kind!r} in {name}"
        )
    return tok


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
            return int(rng.integers(1, 16_001))
    else:
        try:
            ms = float(chunking)
        except ValueError:
            ms = 0.0
        if ms <= 0:
            raise InvalidInputError(
                f"expected --simulate-stream CHUNK_MS > 0 or 'random', found {chunking!r}"
            )
        fixed = max(1, round(ms * 16))

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
    path = resolve(args.model)
    if load_model_dir(path).config.get("kind") == "vocoder":
        from vocoder.runtime import Vocoder

        v = Vocoder(path)
        print(
            json.dumps(
                {
                    "name": v.name,
                    "kind": "vocoder",
                    "K": v.K,
                    "speakers": v.speakers,
                    "sample_rate": v.sample_rate,
                    "units_model": v.units_model,
                    "fingerprint": v.fingerprint,
                    "path": str(path),
                }
            )
        )
        return 0
    tok = load_tokenizer(path)
    print(
        json.dumps(
            {
                "name": tok.name,
                "kind": tok.kind,
                "K": tok.K,
                "K1": tok.K,
                "K2": getattr(tok, "K2", None),
                "frame_rate": tok.frame_rate,
                "fingerprint": tok.fingerprint,
                "path": str(path),
            }
        )
    )
    return 0


def run_models(args: argparse.Namespace) -> int:
    for record in shipped():
        print(json.dumps(record))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from tokenizer.export import export_model
    from tokenizer.runtime import OnnxTokenizer

    start = time.perf_counter()
    hashes = export_model(resolve(args.model), args.window)
    model = OnnxTokenizer.load(args.model)
    assert model.window is not None
    print(
        json.dumps(
            {
                "model": str(resolve(args.model)),
                "graphs": hashes,
                "window": model.window.to_dict(),
                "fingerprint": model.fingerprint,
                "wall_s": round(time.perf_counter() - start, 1),
            }
        )
    )
    return 0
