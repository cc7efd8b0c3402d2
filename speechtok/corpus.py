"""``speechtok corpus synth|check``: thin commands over :mod:`tokenizer.corpus`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from tokenizer.corpus.check import check_corpus
from tokenizer.corpus.manifest import MANIFEST, read_manifest

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    corpus = sub.add_parser("corpus", help="build and check speech corpora with phone alignments")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)

    synth = csub.add_parser("synth", help="synthesize a multi-speaker corpus with alignments")
    synth.add_argument("--out", required=True, type=Path, help="output folder")
    synth.add_argument("--sentences", type=int, default=2000, help="train/dev/test sentences")
    synth.add_argument("--parallel-sentences", type=int, default=100,
                       help="sentences read by every voice (the parallel split)")  # fmt: skip
    synth.add_argument(
        "--holdout-engine",
        choices=["festival", "flite", "espeak", "none"],
        default="festival",
        help="engine whose voices speak only the unseen split (and parallel)",
    )
    synth.add_argument(
        "--core-voices",
        action="store_true",
        help="speak train/dev/test with the 22 core voices only (not the whole catalogue)",
    )
    synth.add_argument(
        "--augment",
        type=int,
        default=0,
        help="seeded speed/formant/pitch/room-augmented copies of each training utterance",
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--jobs", type=int, default=2, help="worker processes")
    synth.add_argument("--force", action="store_true", help="overwrite a corpus in --out")
    synth.set_defaults(func=run_synth)

    check = csub.add_parser("check", help="validate audio, alignments and split rules")
    check.add_argument("dir", type=Path)
    check.set_defaults(func=run_check)


def run_synth(args: argparse.Namespace) -> int:
    from tokenizer.corpus.sentences import wordnet_sentences
    from tokenizer.corpus.synth import SynthConfig, build_corpus, plan

    config = SynthConfig(
        sentences=args.sentences,
        parallel_sentences=args.parallel_sentences,
        seed=args.seed,
        extra_voices=not args.core_voices,
        holdout_engine=None if args.holdout_engine == "none" else args.holdout_engine,
        augment=args.augment,
    )
    items = [it for t in plan(config, wordnet_sentences()) for it in t.items]
    total = len(items) + config.augment * sum(it.split == "train" for it in items)
    start = time.perf_counter()
    with tqdm(total=total, unit="utt", desc="synth", file=sys.stderr) as bar:
        audio = 0.0

        def progress(n: int, seconds: float) -> None:
            nonlocal audio
            audio += seconds
            bar.update(n)
            bar.set_postfix(hours=f"{audio / 3600:.2f}")

        utts = build_corpus(
            args.out, config, jobs=args.jobs, force=args.force, on_progress=progress
        )
    wall = time.perf_counter() - start
    size = sum(f.stat().st_size for f in Path(args.out).rglob("*") if f.is_file())
    summary = {
        "out": str(args.out), "utterances": len(utts), "voices": len({u.speaker for u in utts}),
        "hours": round(audio / 3600, 3), "wall_s": round(wall, 1),
        "x_real_time": round(audio / wall, 1), "size_mb": round(size / 1e6, 1),
    }  # fmt: skip
    print(json.dumps(summary))
    return 0


def run_check(args: argparse.Namespace) -> int:
    n = len(read_manifest(args.dir / MANIFEST)) if (args.dir / MANIFEST).is_file() else 0
    with tqdm(total=n, unit="utt", desc="check", file=sys.stderr) as bar:
        problems = check_corpus(args.dir, on_progress=bar.update)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in {args.dir}", file=sys.stderr)
        return 1
    print(f"ok: {n} utterances in {args.dir}", file=sys.stderr)
    return 0
