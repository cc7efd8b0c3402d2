"""What every benchmark shares: the audio it runs on and how a call is timed."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import numpy as np

from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.corpus.manifest import load_corpus
from tokenizer.errors import InvalidInputError


def add_file_args(p: argparse.ArgumentParser, files: int | None = 6) -> None:
    """``--corpus``, ``--split`` and (unless ``files`` is None) ``--files``: the audio of
    :func:`bench_files` a bench's clients cycle through."""
    p.add_argument("--corpus", type=Path, help="default: a small one, synthesized")
    p.add_argument("--split", default="test")
    if files is not None:
        p.add_argument("--files", type=int, default=files, help="files the clients cycle through")


def bench_files(args: argparse.Namespace) -> list[Path]:
    """Audio files of ``args.corpus`` / ``args.split``, sorted by utterance id; with no corpus,
    a small one is synthesized into a temporary folder."""
    if args.corpus is None:
        from tokenizer.corpus.synth import SynthConfig, build_corpus

        tmp = Path(tempfile.mkdtemp(prefix="speechtok-bench-"))
        build_corpus(tmp, SynthConfig(sentences=40, parallel_sentences=0, seed=1), jobs=2)
        args.corpus, args.split = tmp, "train"
    root, utts = load_corpus(args.corpus)
    out = [u.audio_path(root) for u in sorted(utts, key=lambda u: u.id) if u.split == args.split]
    if not out:
        raise InvalidInputError(
            f"expected audio in the {args.split} split of {args.corpus}, found none"
        )
    return out


def bench_audio(args: argparse.Namespace) -> list[np.ndarray]:
    """Utterances of :func:`bench_files` up to ``args.seconds``."""
    out, total = [], 0.0
    for f in bench_files(args):
        if total >= args.seconds:
            break
        out.append(decode_audio(f))
        total += len(out[-1]) / SAMPLE_RATE
    return out


def seconds_per_call(fn: Callable[[], object], min_s: float = 2.0) -> float:
    """Seconds per call (after one warm-up call; repeated until ``min_s`` elapsed)."""
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if time.perf_counter() - start >= min_s:
            return (time.perf_counter() - start) / n


@contextmanager
def json_only_stdout() -> Iterator[TextIO]:
    """From here to the end of the process, everything written to stdout goes to stderr —
    this process's prints, Ray's relayed log lines (at exit too), the file descriptor 1 that
    Ray's processes and C/C++ libraries write to — except what is written to the yielded
    stream: the original stdout, for the JSON, closed when the block ends."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield out
    finally:
        out.close()


def print_json(args: argparse.Namespace, result: object) -> None:
    """``result`` as JSON on the command's stdout (``args.json_out`` under ``--json``)."""
    print(json.dumps(result, indent=2), file=getattr(args, "json_out", None) or sys.stdout)
