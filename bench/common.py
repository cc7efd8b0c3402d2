"""What every benchmark shares: the audio it runs on and how a call is timed."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.corpus.manifest import load_corpus
from tokenizer.errors import InvalidInputError


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
def json_only_stdout() -> Iterator[None]:
    """Inside, only this process's ``print`` (the JSON) reaches stdout: file descriptor 1,
    which Ray's processes started inside and C/C++ libraries write to, points at stderr, and
    ``sys.stdout`` at the original stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = sys.stdout
    sys.stdout = os.fdopen(os.dup(saved), "w")
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout.close()
        sys.stdout = real
        os.dup2(saved, 1)
        os.close(saved)
