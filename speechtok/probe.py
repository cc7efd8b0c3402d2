"""``speechtok probe``: the tokenizer report card (JSON + Markdown + PNG plots)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from tokenizer.corpus.manifest import (
    Utterance,
    attach_frame_labels,
    attach_textgrids,
    load_corpus,
    read_manifest,
)
from tokenizer.errors import InvalidInputError
from tokenizer.kinds import load_tokenizer
from tokenizer.model_dir import read_config
from tokenizer.shipped import resolve
from tokenizer.windows import Windowed, WindowSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from lm_probe.probe import ProbeResult
    from lm_probe.superb import SuperbConfig
    from lm_probe.units import UnitSource
    from tokenizer.distort.conditions import Condition


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="measure tokenizers: PNMI, n-gram LM, speaker invariance, ...")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="model directory or shipped model name (repeatable)",
    )
    p.add_argument(
        "--units",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="precomputed units (JSON lines with id or path, and units)",
    )
    p.add_argument("--corpus", type=Path, help="corpus directory (manifest.jsonl)")
    p.add_argument(
        "--manifest", type=Path, help="a user's manifest (jsonl/tsv) instead of --corpus"
    )
    p.add_argument("--textgrids", type=Path, help="folder of <id>.TextGrid alignments")
    p.add_argument("--frame-labels", type=Path, help="frame-level phone TSV (id<TAB>labels)")
    p.add_argument("--frame-shift", type=float, default=0.02, help="seconds per label frame")
    p.add_argument("--split", default="test")
    p.add_argument("--lm-split", default="train")
    p.add_argument("--ngram-order", type=int, default=4)
    p.add_argument("--parallel-sentences", type=int, default=20)
    p.add_argument(
        "--full-utterance",
        action="store_true",
        help="tokenize in one pass per utterance instead of by canonical windows",
    )
    p.add_argument("--no-perturb", action="store_true", help="skip perturbation consistency")
    p.add_argument(
        "--vocoder",
        help="resynthesize test utterances with this vocoder (directory or shipped name) and "
        "measure re-tokenized unit agreement, MCD and F0 correlation",
    )
    p.add_argument("--resynth-utterances", type=int, default=40)
    p.add_argument(
        "--abx",
        action="store_true",
        help="triphone ABX error (within / across speaker) on the parallel split, for the "
        "units and for the dense frames they are made from",
    )
    p.add_argument(
        "--superb",
        action="store_true",
        help="SUPERB-style probes of each encoder model, frozen: a learned softmax-weighted sum "
        "of its layers and light heads (phone CTC -> PER, character CTC -> WER, speaker ID "
        "-> accuracy), beside the same heads on the last layer; layer_weights.png",
    )
    p.add_argument(
        "--superb-utterances",
        type=int,
        default=300,
        metavar="N",
        help="--lm-split utterances the phone and ASR heads train on (a seeded draw)",
    )
    p.add_argument("--superb-steps", type=int, default=600, help="Adam steps per phone / ASR head")
    p.add_argument(
        "--robustness",
        action="store_true",
        help="units under noise (white, pink, brown, babble, music, hum at 20/10/5/0 dB), rooms "
        "(RT60 0.3/0.6/1.0 s), a phone line and low-bitrate codecs: agreement with the clean "
        "audio's units and PNMI, held-out noise; robustness.png",
    )
    p.add_argument(
        "--robustness-utterances",
        type=int,
        default=200,
        metavar="N",
        help="first N test utterances (by id) distorted for --robustness",
    )
    p.add_argument(
        "--conditions",
        nargs="+",
        type=_condition,
        metavar="FAMILY[:LEVEL]",
        help="--robustness conditions instead of the full grid, e.g. pink:5 babble:0 reverb:0.6 "
        "telephone codec:opus-8k",
    )
    p.add_argument(
        "--html-utterances",
        type=int,
        default=3,
        metavar="N",
        help="report.html plays the first N test utterances (by id): the original, its "
        "speaker-perturbed copy and, with --vocoder, each tokenizer's resynthesis, with "
        "spectrograms and unit tracks; 0 leaves audio out",
    )
    p.add_argument(
        "--cache",
        type=Path,
        help="folder caching units, features and perturbed copies per (model fingerprint, "
        "audio sha256), so a tokenizer added to a report re-uses the others' work "
        "(default: $SPEECHTOK_CACHE or ~/.cache/speechtok/probe)",
    )
    p.add_argument("--no-cache", action="store_true", help="compute everything afresh")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=run_probe)

    c = sub.add_parser(
        "streaming-curve",
        help="agreement of canonical-window units with "
        "full-utterance units over a grid of windows; picks a default window",
    )
    c.add_argument("--model", required=True, help="model directory or shipped name")
    c.add_argument("--corpus", required=True, type=Path)
    c.add_argument("--split", default="test")
    c.add_argument(
        "--max-utterances",
        type=int,
        default=120,
        help="first N utterances of the split (sorted by id)",
    )
    c.add_argument(
        "--grid",
        nargs="+",
        type=WindowSpec.parse,
        metavar="L,C,R",
        help="windows in ms (default: 3 left x 2 chunk x 4 lookahead)",
    )
    c.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto")
    c.add_argument("--out", required=True, type=Path, help="folder for curve.json/.md/.png")
    c.set_defaults(func=run_streaming_curve)


def _condition(text: str) -> Condition:
    from tokenizer.distort.conditions import Condition

    try:
        return Condition.parse(text)
    except InvalidInputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _load_utterances(args: argparse.Namespace) -> tuple[Path, list[Utterance]]:
    if (args.corpus is None) == (args.manifest is None):
        raise InvalidInputError(
            "expected exactly one of --corpus or --manifest, found "
            f"{'both' if args.corpus else 'neither'}"
        )
    if args.corpus is not None:
        root, utts = load_corpus(args.corpus)
    else:
        root, utts = args.manifest.parent, read_manifest(args.manifest)
        for u in utts:  # a user's manifest without splits is all one split
            u.split = u.split or args.split
    if args.textgrids:
        attach_textgrids(utts, args.textgrids)
    if args.frame_labels:
        attach_frame_labels(utts, args.frame_labels, args.frame_shift)
    return root, utts


def run_probe(args: argparse.Namespace) -> int:
    from lm_probe import plots
    from lm_probe.cache import ArrayCache, default_root
    from lm_probe.listening import listening_examples
    from lm_probe.probe import ProbeConfig, perturbed_copies, probe_source, select_splits
    from lm_probe.report import write_json, write_markdown
    from lm_probe.report_html import write_html
    from lm_probe.units import from_tokenizer, read_units_file

    root, utts = _load_utterances(args)
    config = ProbeConfig(
        split=args.split,
        lm_split=args.lm_split,
        ngram_order=args.ngram_order,
        parallel_max_sentences=args.parallel_sentences,
        perturb=not args.no_perturb,
        seed=args.seed,
        jobs=args.jobs,
        vocoder=args.vocoder,
        resynth_utterances=args.resynth_utterances,
        abx=args.abx,
        superb=_superb_config(args) if args.superb else None,
    )
    splits = select_splits(utts, config)
    cache = ArrayCache(None if args.no_cache else args.cache or default_root())
    sources: list[UnitSource] = [
        from_tokenizer(load_tokenizer(m), args.full_utterance, cache) for m in args.model
    ]
    for spec in args.units:
        name, sep, file = spec.partition("=")
        if not sep:
            raise InvalidInputError(f"expected --units NAME=FILE, found {spec!r}")
        sources.append(read_units_file(name, file, root, utts))
    if not sources:
        raise InvalidInputError("expected at least one --model or --units, found none")
    start = time.perf_counter()
    bars: dict[str, tqdm] = defaultdict(lambda: tqdm(unit="utt", file=sys.stderr))

    def progress(stage: str, n: int) -> None:
        bars[stage].set_description(stage)
        bars[stage].update(n)

    need_audio = config.perturb and any(s.tokenizer is not None for s in sources)
    perturbed = (
        perturbed_copies(root, splits["test"], config, progress, cache) if need_audio else None
    )
    results = [probe_source(s, root, splits, perturbed, config, progress) for s in sources]
    if args.robustness:
        _robustness(args, sources, root, splits["test"], utts, results, progress)
    for bar in bars.values():
        bar.close()
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = str(args.corpus or args.manifest)
    write_json(args.out / "report.json", corpus, args.split, results)
    write_markdown(args.out / "report.md", corpus, args.split, results)
    plots.cooccurrence(args.out / "cooccurrence.png", results)
    plots.per_voice_pnmi(args.out / "pnmi_per_voice.png", results)
    plots.pnmi_bitrate(args.out / "pnmi_bitrate.png", results)
    plots.layer_weights(args.out / "layer_weights.png", results)
    if args.robustness:
        from lm_probe.robustness import plot

        names = [r.summary["name"] for r in results]
        plot(args.out / "robustness.png", names, [r.summary["robustness"] for r in results])
    examples = listening_examples(
        sources, root, splits["test"], perturbed, config, args.html_utterances
    )
    write_html(args.out / "report.html", corpus, args.split, results, examples, args.out)
    seconds = sum(u.duration or 0.0 for u in splits["test"])
    print(
        json.dumps(
            {
                "out": str(args.out),
                "tokenizers": len(results),
                "test_audio_s": round(seconds, 1),
                "wall_s": round(time.perf_counter() - start, 1),
                "cache": cache.stats(),
            }
        )
    )
    return 0


def _robustness(
    args: argparse.Namespace,
    sources: list[UnitSource],
    root: Path,
    test: list[Utterance],
    corpus: list[Utterance],
    results: list[ProbeResult],
    progress: Callable[[str, int], None],
) -> None:
    """``--robustness``: every condition on the first test utterances, for every source that
    can tokenize new audio (a note for the others)."""
    from lm_probe.robustness import RobustnessConfig, robustness
    from tokenizer.distort.conditions import PROBE_CONDITIONS

    config = RobustnessConfig(
        conditions=tuple(args.conditions or PROBE_CONDITIONS),
        utterances=args.robustness_utterances,
        seed=args.seed,
    )
    rows = robustness(sources, root, test, corpus, config, lambda n: progress("robustness", n))
    for result, row in zip(results, rows, strict=True):
        result.summary["robustness"] = row
        if row is None:
            result.summary["notes"].append("robustness: skipped, precomputed units")


def _superb_config(args: argparse.Namespace) -> SuperbConfig:
    """The SUPERB heads' settings (imports torch, so only with --superb)."""
    from lm_probe.superb import SuperbConfig

    return SuperbConfig(utterances=args.superb_utterances, steps=args.superb_steps, seed=args.seed)


def run_streaming_curve(args: argparse.Namespace) -> int:
    from lm_probe import window_curve
    from tokenizer.audio import SAMPLE_RATE, decode_audio

    tok = load_tokenizer(args.model, args.backend)
    if not isinstance(tok, Windowed):
        raise InvalidInputError(
            f"expected an encoder model for streaming-curve, found "
            f"{tok.name} ({tok.kind}), whose units are frame-local"
        )
    root, utts = load_corpus(args.corpus)
    utts = sorted((u for u in utts if u.split == args.split), key=lambda u: u.id)
    utts = utts[: args.max_utterances]
    audios = [decode_audio(u.audio_path(root)) for u in utts]
    encoder = read_config(resolve(args.model)).encoder
    assert encoder is not None  # a Windowed tokenizer is an encoder model
    grid = args.grid or window_curve.grid_for(encoder.context_frames)
    start = time.perf_counter()
    with tqdm(total=len(grid), desc="windows", unit="window", file=sys.stderr) as bar:
        points = window_curve.curve(audios, tok.encode_batch, grid, lambda p: bar.update(1))
    chosen, why = window_curve.choose(points)
    args.out.mkdir(parents=True, exist_ok=True)
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    record = {
        "model": tok.name,
        "fingerprint": tok.fingerprint,
        "corpus": str(args.corpus),
        "split": args.split,
        "utterances": len(utts),
        "audio_s": round(seconds, 1),
        "points": points,
        "chosen": chosen.to_dict(),
        "why": why,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    (args.out / "curve.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "curve.md").write_text(window_curve.markdown(points, chosen, why))
    window_curve.plot(
        args.out / "curve.png",
        points,
        f"{tok.name}: {len(utts)} utterances, {seconds:.0f} s of {args.split}",
    )
    print(json.dumps({"chosen": chosen.to_dict(), "why": why, "out": str(args.out)}))
    return 0
