"""The ``speechtok`` command: one entry point, a subcommand per job, each a thin function."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from lm_probe import cli as probe_cli
from serving import cli as serving_cli
from serving.batch import cli as batch_cli
from tokenizer import bench_runtime, model_cli
from tokenizer.corpus import cli as corpus_cli
from tokenizer.errors import SpeechtokError
from vocoder import cli as vocoder_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechtok", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    corpus_cli.add_parser(sub)
    model_cli.add_parsers(sub)
    probe_cli.add_parser(sub)
    bench_runtime.add_parser(sub)
    serving_cli.add_parsers(sub)
    batch_cli.add_parser(sub)
    vocoder_cli.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = batch_cli.default_subcommand(list(sys.argv[1:] if argv is None else argv))
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


if __name__ == "__main__":
    sys.exit(main())
