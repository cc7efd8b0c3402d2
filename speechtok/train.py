"""``speechtok train kmeans|hubert|spin|dcspin|rspin|distill|colld|phones``. k-means fits in one
call; the others are resumable training runs that end in a model directory: ``--run`` holds the
training state (checkpoint, log), ``--out`` gets the inference model, written at the end of every
call (so a run stopped early still leaves a usable model). ``phones`` is supervised (phone
labels)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tokenizer.corpus.manifest import Utterance, load_corpus, synth_command
from tokenizer.errors import CorpusError
from tokenizer.kmeans import KmeansConfig
from tokenizer.model_dir import ModelError
from tokenizer.train.runconfig import load_run_config

if TYPE_CHECKING:
    from tokenizer.model_dir import ModelDir
    from tokenizer.protocol import Tokenizer
    from tokenizer.torch_tokenizer import TorchTokenizer
    from tokenizer.train.devices import Devices

log = logging.getLogger(__name__)

C = TypeVar("C")


def add_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train tokenizers")
    tsub = train.add_subparsers(dest="train_command", required=True)
    km = tsub.add_parser("kmeans", help="k-means tokenizer over acoustic features")
    add_corpus_args(km)
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
    km.add_argument(
        "--max-utterances",
        type=int,
        help="fit on a seeded random subset of this many utterances (default: all)",
    )
    km.add_argument("--seed", type=int, default=0)
    km.set_defaults(func=run_train_kmeans)

    hub = tsub.add_parser("hubert", help="pretrain a HuBERT-style encoder from scratch")
    add_run_args(hub)
    hub.add_argument(
        "--targets",
        required=True,
        help="tokenizer whose units are the targets "
        "(e.g. models/mfcc-km100; iteration 2: k-means on this encoder)",
    )
    hub.add_argument(
        "--init",
        help="start the encoder from this encoder model's weights (same preset), e.g. the "
        "previous iteration or the shipped base when a run folder is gone; the head starts afresh",
    )
    hub.set_defaults(func=run_train_hubert)

    for kind, text in (
        ("spin", "Spin: one codebook"),
        ("dcspin", "DC-Spin: primary + auxiliary codebook"),
        ("rspin", "R-Spin: DC-Spin on noisy views, with pseudo-labels and acoustic pieces"),
    ):
        p = tsub.add_parser(kind, help=f"fine-tune a base encoder into a {text} tokenizer")
        add_run_args(p)
        p.add_argument("--base", required=True, help="base encoder model (kind hubert)")
        labels = p.add_mutually_exclusive_group(required=kind == "rspin")
        labels.add_argument(
            "--pseudo-labels",
            metavar="MODEL",
            help="also predict this tokenizer's units of the original audio from the top layer "
            "(R-Spin's pseudo-label loss, weight pseudo_weight), e.g. k-means on the base: "
            "keeps the base's phonetic content while the swapped loss removes the speaker",
        )
        labels.add_argument(
            "--phone-labels",
            action="store_true",
            help="SUPERVISED: predict the phones of the corpus's alignments instead (the "
            "same head and weight): DC-Spin's supervised variant keeping its phone loss",
        )
        p.set_defaults(func=run_train_spin, kind=kind)

    for kind, text in (
        ("distill", "distil a spin/dcspin tokenizer into a streaming-exact student (bounded "
                    "context)"),
        ("colld", "compress a spin/dcspin tokenizer (e.g. the served student) into a cheaper "
                  "streaming-exact one by CoLLD: masked inputs, contrastive layer-to-layer "
                  "distillation, the teacher's codebook and unit ids"),
    ):  # fmt: skip
        dis = tsub.add_parser(kind, help=text)
        add_run_args(dis)
        dis.add_argument("--teacher", required=True, help="spin or dcspin model to distil")
        dis.add_argument(
            "--phone-labels",
            action="store_true",
            help="SUPERVISED: the student's tokens also predict the phones of the corpus's "
            "alignments (weight unit_label_weight, e.g. --set unit_label_weight=3)",
        )
        dis.set_defaults(func=run_train_distill, kind=kind)

    ph = tsub.add_parser(
        "phones",
        help="SUPERVISED: fine-tune a base encoder by frame-level phone classification on the "
        "corpus's phone alignments (DC-Spin's supervised variant)",
    )
    add_run_args(ph)
    ph.add_argument("--base", required=True, help="base encoder model (kind hubert)")
    ph.set_defaults(func=run_train_phones)


def add_corpus_args(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", type=Path, help="corpus folder (manifest.jsonl + audio)")
    source.add_argument(
        "--manifest",
        type=Path,
        help="a manifest instead: jsonl, fairseq .tsv (LibriSpeech style) or Lhotse "
        "recordings / whole-recording cuts (.jsonl or .jsonl.gz); --split applies when its "
        "records carry splits",
    )


def corpus_source(args: argparse.Namespace) -> Path:
    """The --corpus folder or the --manifest file."""
    return Path(args.corpus or args.manifest)


def valid_set(args: argparse.Namespace) -> tuple[Path, list[Utterance]] | None:
    """The --valid-manifest utterances (a corpus folder's dev split), or None."""
    if args.valid_manifest is None:
        return None
    root, utts = load_corpus(args.valid_manifest, "dev")
    if not utts:
        raise CorpusError(f"expected validation utterances in {args.valid_manifest}, found none")
    return root, utts


def add_run_args(p: argparse.ArgumentParser) -> None:
    add_corpus_args(p)
    p.add_argument(
        "--valid-manifest",
        type=Path,
        help="validation set: a manifest (as --manifest) or a corpus folder (its dev split); "
        "its losses are logged as valid_* every valid_every steps",
    )
    p.add_argument("--split", default="train")
    p.add_argument("--run", required=True, type=Path, help="training state folder (resumable)")
    p.add_argument("--out", required=True, type=Path, help="model directory to write")
    p.add_argument("--name", help="model name (default: the --out folder name)")
    p.add_argument("--config", type=Path, help="YAML run config overriding the defaults")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one run-config field (repeatable)",
    )
    p.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this long")
    p.add_argument("--until-step", type=int, help="stop (with a checkpoint) at this step")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda or cuda:N (bf16 autocast, TF32); under torchrun each process takes "
        "its share of every batch (cuda: its LOCAL_RANK device)",
    )


def train_info(args: argparse.Namespace, config: Any, step: int, wall_s: float) -> dict[str, Any]:
    info: dict[str, Any] = {
        "corpus": str(corpus_source(args)),
        "split": args.split,
        "steps_done": step,
        "run_config": dataclasses.asdict(config),
        "command": "speechtok " + shlex.join(sys.argv[1:]),
        "wall_s_last_call": round(wall_s, 1),
    }
    if built_with := synth_command(corpus_source(args)):
        info["corpus_built_with"] = built_with
    return info


def run_setup(args: argparse.Namespace, defaults: C) -> tuple[C, Devices]:
    """The run config (``defaults`` <- --config YAML <- --set), torch threads and the devices
    (this process's rank when launched by torchrun)."""
    import torch

    from tokenizer.train.devices import devices

    if args.threads:
        torch.set_num_threads(args.threads)
    return load_run_config(defaults, args.config, args.set), devices(args.device)


def _train_and_export(
    args: argparse.Namespace,
    config: Any,
    devices: Devices,
    source: dict[str, Any],
    train: Callable[[Path, list[Utterance]], tuple[Any, int]],
    export: Callable[[Any, str, dict[str, Any]], ModelDir],
) -> int:
    """Load the corpus, ``train(root, utts)``, and on the main process write the model
    directory (its card naming ``source``: the targets, base or teacher, as ``built_from``
    gives it) and the last line."""
    root, utts = load_corpus(corpus_source(args), args.split)
    start = time.perf_counter()
    model, step = train(root, utts)
    if not devices.main:
        return 0
    from tokenizer.train.checkpoint import log_call

    wall_s = time.perf_counter() - start
    info = train_info(args, config, step, wall_s) | log_call(args.run, step, wall_s) | source
    out = export(model, args.name or args.out.name, info)
    line = {"model": str(args.out), "step": step, "steps": config.steps}
    print(json.dumps({**line, "fingerprint": out.fingerprint}))
    return 0


def built_from(key: str, spec: str, tok: Tokenizer) -> dict[str, Any]:
    """What a trained model records of the model ``spec`` it was built from (``key``: targets,
    base, teacher or encoder): its name and fingerprint, and ``supervised`` when that model
    learnt from labels (``train phones``): whatever is built on a supervised model is
    supervised too, and says so."""
    from tokenizer.model_dir import read_config
    from tokenizer.shipped import resolve

    out: dict[str, Any] = {key: {"name": tok.name, "fingerprint": tok.fingerprint}}
    if supervised := read_config(resolve(spec)).train.get("supervised"):
        out["supervised"] = f"{key} {tok.name} is supervised ({supervised})"
    return out


def add_supervision(source: dict[str, Any], what: str) -> None:
    """Record in ``source`` (``built_from``'s) that the new model itself learnt from labels."""
    source["supervised"] = "; ".join(filter(None, (source.get("supervised"), what)))


def run_train_hubert(args: argparse.Namespace) -> int:

    from tokenizer.kinds import load_tokenizer
    from tokenizer.train.hubert import HubertConfig, export_hubert, train_hubert

    config, devices = run_setup(args, HubertConfig())
    targets = load_tokenizer(args.targets)
    init = _encoder_tokenizer(args.init, "--init", ("hubert",)) if args.init else None
    source = built_from("targets", args.targets, targets)
    if init is not None:
        source |= built_from("init", args.init, init)
    return _train_and_export(
        args, config, devices, source,
        lambda root, utts: train_hubert(args.run, root, utts, targets, config, args.max_minutes,
                                        args.until_step, devices, valid_set(args), init),
        lambda model, name, info: export_hubert(model, args.out, name, info),
    )  # fmt: skip


def run_train_spin(args: argparse.Namespace) -> int:

    from tokenizer.distort.conditions import CHANNELS
    from tokenizer.errors import InvalidInputError
    from tokenizer.train.spin import SpinConfig, export_spin, train_spin

    presets = {
        "spin": SpinConfig(),
        "dcspin": SpinConfig(K2=1024),
        "rspin": SpinConfig(K2=1024, distortions=CHANNELS, piece_vocab=500),
    }
    config, devices = run_setup(args, presets[args.kind])
    if args.kind != "rspin" and (config.K2 > 0) != (args.kind == "dcspin"):
        raise InvalidInputError(
            f"expected K2 > 0 for dcspin and K2 = 0 for spin, found K2={config.K2} for {args.kind}"
        )
    if (args.kind == "rspin") != bool(config.distortions):
        raise InvalidInputError(
            f"expected distortions for rspin and none for {args.kind}, found "
            f"{list(config.distortions)} (train rspin for noisy views)"
        )
    from tokenizer.kinds import load_tokenizer

    base = _encoder_tokenizer(args.base, "--base", ("hubert",))
    source = built_from("base", args.base, base)
    pseudo = load_tokenizer(args.pseudo_labels) if args.pseudo_labels else None
    if pseudo is not None:
        source |= built_from("pseudo_labels", args.pseudo_labels, pseudo)
    if args.phone_labels:
        add_supervision(source, "the top layer also predicts the phones of the corpus's alignments")
    return _train_and_export(
        args, config, devices, source,
        lambda root, utts: train_spin(args.run, base, utts, root, config, args.max_minutes,
                                      args.until_step, devices, valid_set(args), pseudo,
                                      args.phone_labels),
        lambda model, name, info: export_spin(model, args.out, name, config, info),
    )  # fmt: skip


def run_train_distill(args: argparse.Namespace) -> int:

    from tokenizer.train.distill import DistillConfig, colld, export_student, train_distill

    config, devices = run_setup(args, colld() if args.kind == "colld" else DistillConfig())
    teacher = _encoder_tokenizer(args.teacher, "--teacher")
    source = built_from("teacher", args.teacher, teacher)
    if args.phone_labels:
        add_supervision(source, "its tokens also predict the phones of the corpus's alignments")
    return _train_and_export(
        args, config, devices, source,
        lambda root, utts: train_distill(args.run, teacher, utts, root, config, args.max_minutes,
                                         args.until_step, devices, valid_set(args),
                                         args.phone_labels),
        lambda model, name, info: export_student(model, args.out, name, teacher, info),
    )  # fmt: skip


def run_train_phones(args: argparse.Namespace) -> int:

    from tokenizer.train.phones import PhonesConfig, export_phones, train_phones

    config, devices = run_setup(args, PhonesConfig())
    base = _encoder_tokenizer(args.base, "--base", ("hubert",))
    return _train_and_export(
        args, config, devices, built_from("base", args.base, base),
        lambda root, utts: train_phones(args.run, base, utts, root, config, args.max_minutes,
                                        args.until_step, devices, valid_set(args)),
        lambda model, name, info: export_phones(model, args.out, name, info),
    )  # fmt: skip


def run_train_kmeans(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from tokenizer.audio import decode_audio
    from tokenizer.features import FeatureConfig, extract
    from tokenizer.kmeans import fit_kmeans, save_kmeans_tokenizer
    from tokenizer.save import save_encoder_kmeans

    root, utts = load_corpus(corpus_source(args), args.split)
    if args.max_utterances is not None and len(utts) > args.max_utterances:
        pick = np.random.default_rng(args.seed).choice(
            len(utts), args.max_utterances, replace=False
        )
        utts = [utts[i] for i in sorted(pick)]
    feat_cfg = FeatureConfig(type=args.features)
    start = time.perf_counter()
    encoder = _encoder_tokenizer(args.encoder, "--encoder") if args.encoder else None
    feats = []
    for u in tqdm(utts, desc="features", unit="utt", file=sys.stderr):
        x = decode_audio(u.audio_path(root))
        feats.append(encoder.layer_features(x, args.layer) if encoder else extract(x, feat_cfg))
    config = KmeansConfig(
        K=args.K, max_frames=args.max_frames, seed=args.seed, standardize=encoder is None
    )
    tensors = fit_kmeans(np.concatenate(feats), config)
    info = {
        "corpus": str(corpus_source(args)),
        "split": args.split,
        "utterances": len(utts),
        "frames": int(sum(len(f) for f in feats)),
        "seed": args.seed,
        "command": "speechtok " + shlex.join(sys.argv[1:]),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    if built_with := synth_command(corpus_source(args)):
        info["corpus_built_with"] = built_with
    name = args.name or args.out.name
    if encoder is None:
        model = save_kmeans_tokenizer(args.out, name, feat_cfg, tensors, info)
    else:
        info |= built_from("encoder", args.encoder, encoder)
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


def _encoder_tokenizer(spec: str, flag: str, kinds: tuple[str, ...] = ()) -> TorchTokenizer:
    """The encoder model ``spec`` in torch (of one of ``kinds``, if given) for ``flag``."""
    from tokenizer.kinds import load_tokenizer
    from tokenizer.torch_tokenizer import TorchTokenizer

    tok = load_tokenizer(spec, "torch")
    if not isinstance(tok, TorchTokenizer) or (kinds and tok.kind not in kinds):
        what = f"a {' or '.join(kinds)}" if kinds else "an encoder"
        raise ModelError(f"expected {what} model as {flag}, found kind {tok.kind!r} in {spec}")
    return tok
