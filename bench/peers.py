"""Side by side with the peers, one run: the same files and the same k-means model weights
tokenized (a) the textlesslib / fairseq way — the encoder in torch eager mode, one utterance at
a time, the layer's features, then scikit-learn's ``KMeans.predict`` with the model's centroids;
(b) speechtok in process, ONNX Runtime: whole utterances, canonical windows, and incremental
steps when the model has them (a bounded-context encoder exported with ``--step-ms``; what the
service then serves); (c) through the running service (unary ``Tokenize``, 8 calls in flight).
Prints x real time, the ratio to (a), and each path's unit agreement with (a).
``bench/peers.sh`` runs it beside ``speechtok serve`` on the same model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import add_file_args, bench_files
from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.shipped import resolve

Path_ = Callable[[], list[np.ndarray]]
"""One pass of a path over every file: their units."""


def textlesslib_way(model: Path, audio: list[np.ndarray], threads: int) -> Path_:
    """Torch eager, batch 1, features of the model's layer, then sklearn ``KMeans.predict``."""
    import torch
    from sklearn.cluster import KMeans

    from tokenizer.model_dir import load_model_dir
    from tokenizer.quantizer import CENTROIDS
    from tokenizer.torch_tokenizer import TorchTokenizer

    torch.set_num_threads(threads)
    loaded = load_model_dir(model)
    tok = TorchTokenizer(loaded)
    centroids = loaded.tensors[CENTROIDS].astype(np.float32)
    # a fitted KMeans holding exactly these centroids: fitting on the centroids themselves,
    # started from them, assigns each to itself and leaves them where they are
    km = KMeans(len(centroids), init=centroids, n_init=1, max_iter=1).fit(centroids)
    assert np.allclose(km.cluster_centers_, centroids, atol=1e-5)

    def run() -> list[np.ndarray]:
        return [km.predict(tok.layer_features(a, tok.layer)).astype(np.int32) for a in audio]

    return run


def in_process(model: Path, audio: list[np.ndarray], threads: int) -> dict[str, Path_]:
    """Whole utterances, canonical windows, and (a model with them) incremental steps."""
    from tokenizer.kinds import load_served
    from tokenizer.windows import tokenize_windowed

    tok = load_served(model, threads=threads)
    window = tok.window
    assert window is not None
    paths = {
        "whole utterances": lambda: tok.tokenize_batch(audio, full_utterance=True),
        "canonical windows": lambda: tokenize_windowed(audio, window, tok.encode_windows),
    }
    if tok.steps is not None:
        paths[f"incremental steps ({tok.steps.step_ms} ms)"] = lambda: tok.tokenize_batch(audio)
    return {f"speechtok in process, ONNX Runtime, {k}": v for k, v in paths.items()}


def served(addr: str, key: str | None, files: list[Path], model: str) -> Path_:
    from serving.client import Client

    data = [f.read_bytes() for f in files]
    clients = [Client(addr, api_key=key) for _ in range(8)]

    def one(i: int) -> np.ndarray:
        return np.array(clients[i % 8].tokenize(data[i], model=model).units, np.int32)

    def run() -> list[np.ndarray]:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(len(data))))

    return run


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    same = sum(int((x == y).sum()) for x, y in zip(a, b, strict=True))
    return same / max(1, sum(len(x) for x in a))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="hubert-tiny-km100", help="a k-means model (name or dir)")
    p.add_argument("--addr", help="the service, serving --model (omit: no served row)")
    p.add_argument("--api-key")
    add_file_args(p, files=None)
    p.add_argument("--seconds", type=float, default=60.0, help="audio per path")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    model = resolve(a.model)
    files, audio, total = [], [], 0.0
    for f in bench_files(a):
        if total >= a.seconds:
            break
        files.append(f)
        audio.append(decode_audio(f))
        total += len(audio[-1]) / SAMPLE_RATE
    paths = {
        "textlesslib / fairseq way: torch eager, batch 1, sklearn KMeans.predict":
            textlesslib_way(model, audio, a.threads),
        **in_process(model, audio, a.threads),
    }  # fmt: skip
    if a.addr:
        config = json.loads((model / "config.json").read_text())
        how = "steps" if config["tokenizer"].get("step") else "windows"
        paths[f"speechtok served (gRPC, Ray Serve), {how}, 8 in flight"] = served(
            a.addr, a.api_key, files, config["name"]
        )
    rows: list[dict[str, Any]] = []
    reference = None
    for label, run in paths.items():
        run()  # warm-up
        start = time.perf_counter()
        units = run()
        seconds = time.perf_counter() - start
        reference = reference or units
        rows.append({"path": label, "x_real_time": round(total / seconds, 1),
                     "agreement": round(agreement(reference, units), 4)})  # fmt: skip
    print(json.dumps({"model": str(model), "audio_s": round(total, 1), "rows": rows}),
          file=sys.stderr)  # fmt: skip
    base = rows[0]["x_real_time"]
    print(f"{total:.0f} s of audio, {len(audio)} files, model {model.name}, {a.threads} threads")
    print("| path | x real time | vs textlesslib way | units equal to it |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['path']} | {r['x_real_time']} | {r['x_real_time'] / base:.2f}x | "
              f"{r['agreement']:.2%} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
