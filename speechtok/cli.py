"""The ``speechtok`` command: one entry point, a subcommand per job, each a thin function.
This module is the only place that knows every subcommand."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bench import cli as bench_cli
from speechtok import batch, checkpoints, corpus, models, probe, serve, train, vocoder
from tokenizer.errors import SpeechtokError

EXTRAS = {
    "torch": "train",
    "torchaudio": "train",
    "onnx": "train",
    "onnxscript": "train",
    "parselmouth": "train",
    "sklearn": "train",
    "joblib": "train",
    "scipy": "probe",
    "kenlm": "probe",
    "sentencepiece": "probe",
    "matplotlib": "probe",
    "onnxruntime": "cpu",
    "ray": "serve",
    "grpc": "serve",
    "grpc_health": "serve",
    "grpc_reflection": "serve",
    "pyarrow": "serve",
}
"""Optional packages -> the extra of ``pyproject.toml`` that installs them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechtok", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    corpus.add_parser(sub)
    train.add_parser(sub)
    checkpoints.add_parser(sub)
    models.add_parsers(sub)
    probe.add_parser(sub)
    bench_cli.add_parser(sub)
    serve.add_parsers(sub)
    batch.add_parser(sub)
    vocoder.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = batch.default_subcommand(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except SpeechtokError as e:
        print(f"speechtok: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        print(
            f"speechtok: error: `speechtok {args.command}` needs {top}, which is not installed: "
            f"pip install 'speechtok[{EXTRAS[top]}]'",
            file=sys.stderr,
        )
        return 2
