"""Frames on which two tokenizers with the same unit ids (a student and its teacher) give the
same unit, over a corpus split, each tokenizing as it serves.
Usage: python scripts/unit_agreement.py MODEL_A MODEL_B --corpus DIR [--split test]"""

from __future__ import annotations

import argparse
import json

import numpy as np

from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import load_corpus
from tokenizer.kinds import load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    a, b = load_tokenizer(args.a), load_tokenizer(args.b)
    root, utts = load_corpus(args.corpus, args.split)
    audios = [decode_audio(u.audio_path(root)) for u in utts]
    ua = np.concatenate([a.tokenize(x) for x in audios])
    ub = np.concatenate([b.tokenize(x) for x in audios])
    line = {
        "a": a.name,
        "b": b.name,
        "split": args.split,
        "frames": len(ua),
        "frames_equal": round(float(np.mean(ua == ub)), 4),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
