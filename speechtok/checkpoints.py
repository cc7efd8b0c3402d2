"""``speechtok import fairseq|hf``: a real HuBERT-style checkpoint as a model directory, and
optionally its fairseq / textlesslib k-means model as a ``kmeans`` tokenizer beside it."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser("import", help="import a fairseq or Hugging Face HuBERT checkpoint")
    isub = imp.add_subparsers(dest="import_command", required=True)
    fs = isub.add_parser(
        "fairseq", help="an original fairseq HuBERT .pt (e.g. hubert_base_ls960.pt)"
    )
    fs.add_argument("checkpoint", type=Path)
    fs.add_argument(
        "--trust-pickle",
        action="store_true",
        help="unpickle Python objects the checkpoint holds besides tensors (runs code from the "
        "file: trusted files only); also for a joblib --kmeans",
    )
    hf = isub.add_parser(
        "hf", help="a Hugging Face HubertModel / Wav2Vec2Model folder (or config.json + weights)"
    )
    hf.add_argument("paths", nargs="+", type=Path, help="the folder, or config.json and weights")
    hf.add_argument("--trust-pickle", action="store_true", help="for a joblib --kmeans")
    for p in (fs, hf):
        p.add_argument("--out", required=True, type=Path, help="model directory to write")
        p.add_argument("--name", help="model name (default: the --out folder name)")
        p.add_argument(
            "--kmeans",
            type=Path,
            help="also import this k-means model (.npy centroids [K, D], or a joblib sklearn "
            "k-means with --trust-pickle) as a kmeans tokenizer on --layer",
        )
        p.add_argument("--layer", type=int, help="encoder layer of --kmeans (default: final)")
        p.add_argument("--kmeans-out", type=Path, help="its model directory (default: OUT-kmK)")
        p.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from tokenizer.importing import import_fairseq, import_hf, import_kmeans, read_centroids

    command = "speechtok " + shlex.join(sys.argv[1:])
    if args.import_command == "fairseq":
        model = import_fairseq(
            args.checkpoint,
            args.out,
            name=args.name,
            trust_pickle=args.trust_pickle,
            command=command,
        )
    else:
        model = import_hf(args.paths, args.out, name=args.name, command=command)
    line: dict[str, Any] = {
        "model": str(args.out),
        "kind": model.config.kind,
        "K": model.config.K,
        "fingerprint": model.fingerprint,
    }
    if args.kmeans:
        centroids = read_centroids(args.kmeans, args.trust_pickle)
        out = args.kmeans_out or args.out.with_name(f"{args.out.name}-km{len(centroids)}")
        km = import_kmeans(
            args.out,
            args.kmeans,
            centroids,
            out,
            layer=args.layer,
            command=command,
        )
        line["kmeans"] = {"model": str(out), "K": km.config.K, "fingerprint": km.fingerprint}
    print(json.dumps(line))
    return 0
