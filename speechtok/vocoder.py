"""``speechtok vocoder train`` and ``speechtok synthesize``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from speechtok.train import add_run_args, corpus_source, run_setup
from tokenizer.errors import InvalidInputError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    voc = sub.add_parser("vocoder", help="unit HiFi-GAN vocoders")
    vsub = voc.add_subparsers(dest="vocoder_command", required=True)
    tr = vsub.add_parser("train", help="train (or resume) a unit HiFi-GAN on a corpus")
    tr.add_argument("--units-model", help="tokenizer whose units it speaks (default: default)")
    add_run_args(tr)
    tr.set_defaults(func=run_train)

    syn = sub.add_parser("synthesize", help="units (or audio, tokenized first) -> speech")
    syn.add_argument("--vocoder", help="vocoder directory or shipped name (default: default)")
    src = syn.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--units",
        type=Path,
        help="a JSON line as `speechtok tokenize` prints (units, and durations with --dedup), "
        "or whitespace-separated unit ids",
    )
    src.add_argument("--audio", type=Path, help="tokenize this file with the vocoder's units model")
    syn.add_argument(
        "--units-model",
        help="tokenizer for --audio (default: the units model the vocoder was trained on)",
    )
    syn.add_argument("--speaker", help="speaker name or index (default: 0)")
    syn.add_argument("--out", required=True, type=Path, help="output WAV")
    syn.set_defaults(func=run_synthesize)


def run_train(args: argparse.Namespace) -> int:
    from tokenizer.kinds import load_tokenizer
    from vocoder.config import VocoderTrainConfig
    from vocoder.export import save_vocoder
    from vocoder.train import train_vocoder

    if args.valid_manifest is not None:
        raise InvalidInputError("expected no --valid-manifest for vocoder train (no validation)")
    config, devices = run_setup(args, VocoderTrainConfig())
    tok = load_tokenizer(args.units_model)
    gen, info = train_vocoder(
        args.run,
        corpus_source(args),
        tok,
        config,
        args.split,
        args.max_minutes,
        args.until_step,
        devices,
    )
    model = save_vocoder(args.out, args.name or args.out.name, gen, tok, info)
    print(
        json.dumps(
            {"vocoder": str(args.out), "steps": info["steps"], "fingerprint": model.fingerprint}
        )
    )
    return 0


def read_units(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Units (and durations, if deduplicated) from a `speechtok tokenize` JSON line or plain
    whitespace-separated ids."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(
            f"expected a readable text file of units at {path}, found {e}"
        ) from e
    if text.startswith("{"):
        try:
            line = json.loads(text.splitlines()[0])
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"expected a JSON line of units in {path}, found {e}") from e
        if not isinstance(line, dict) or "units" not in line:
            raise InvalidInputError(f"expected a 'units' field in {path}, found {list(line)}")
        d = line.get("durations")
        return np.asarray(line["units"], np.int64), None if d is None else np.asarray(d, np.int64)
    try:
        return np.asarray([int(t) for t in text.split()], np.int64), None
    except ValueError as e:
        raise InvalidInputError(
            f"expected a JSON line or whitespace-separated unit ids in {path}, found {text[:40]!r}"
        ) from e


def run_synthesize(args: argparse.Namespace) -> int:
    import soundfile as sf

    from tokenizer.audio import decode_audio
    from tokenizer.kinds import load_tokenizer
    from vocoder.runtime import Vocoder

    voc = Vocoder.load(args.vocoder)
    if args.audio:
        tok = load_tokenizer(args.units_model or voc.units_model["name"])
        if tok.fingerprint != voc.units_model["fingerprint"]:
            print(
                f"speechtok: warning: {tok.name} has fingerprint {tok.fingerprint[:12]}, the "
                f"vocoder was trained on {voc.units_model['fingerprint'][:12]}",
                file=sys.stderr,
            )
        units, durations = tok.tokenize(decode_audio(args.audio)), None
    else:
        units, durations = read_units(args.units)
    audio = voc.synthesize(units, args.speaker, durations)
    sf.write(args.out, audio, voc.sample_rate, subtype="PCM_16")
    print(
        json.dumps(
            {"out": str(args.out), "seconds": len(audio) / voc.sample_rate, "vocoder": voc.name}
        )
    )
    return 0
