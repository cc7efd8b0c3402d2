"""``bench/gpu.sh``: what one accelerator buys, in one short run on random-init models.

- HuBERT pretraining and DC-Spin fine-tuning steps per second (bf16 autocast on CUDA), with the
  trainers' own step functions on synthetic audio (DC-Spin: top 2 layers + heads on cached
  frozen-layer features, as its recipe runs);
- tokenization throughput (x real time) of the encoder + quantizer for whole utterances and for
  canonical windows at several batch sizes: torch (fp32/TF32 and bf16) and, where it can run,
  ONNX Runtime (CUDA provider with onnxruntime-gpu, else the CPU provider; the table says which).

It needs torch only (no Ray, no audio I/O, no Praat), so it runs on a bare GPU machine; with
``--small`` it runs on CPU in a minute and CI keeps it working.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenizer.audio import SAMPLE_RATE
from tokenizer.encoder import config as presets
from tokenizer.encoder.model import Encoder
from tokenizer.features import n_frames
from tokenizer.model_dir import load_model_dir
from tokenizer.quantizer import CosineCodebook
from tokenizer.save import save_encoder_tokenizer
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.train import hubert, spin, views
from tokenizer.train.data import crop_batch
from tokenizer.train.devices import CPU, Devices, devices
from tokenizer.windows import WindowSpec


def timed(fn: Callable[[], object], d: Devices, repeats: int) -> float:
    """Seconds per call (one warm-up call first)."""
    fn()
    if d.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if d.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def speechish(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    x = np.sin(2 * np.pi * (140 + 60 * np.sin(3 * t)) * t) * 0.3 + 0.05 * rng.standard_normal(n)
    return np.round(x * 32767).astype(np.int16)


def training_rows(args: argparse.Namespace, d: Devices) -> list[dict[str, Any]]:
    audio = [speechish(int(args.seconds * SAMPLE_RATE), i) for i in range(16)]
    config = hubert.HubertConfig(
        preset=args.preset, batch_size=args.train_batch, max_seconds=args.seconds
    )
    model = hubert.HubertPretrainer(config, 500)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    wrapped = d.wrap(model, opt)
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 500, n_frames(len(a))) for a in audio]
    samples = int(args.seconds * SAMPLE_RATE)
    step = iter(range(10**6))

    def hubert_step() -> None:
        s = next(step)
        batch = crop_batch(audio, config.seed, s, config.batch_size, samples)
        hubert.train_step(wrapped, opt, batch, labels, config, s, d)

    hub = timed(hubert_step, d, args.steps)
    encoder = Encoder(getattr(presets, args.preset)())
    sc = spin.SpinConfig(
        K1=100, K2=1024, views=1, batch_size=args.train_batch, max_seconds=args.seconds
    )
    sm = spin.SpinModel(encoder, sc)
    sopt = torch.optim.AdamW([p for p in sm.parameters() if p.requires_grad], lr=1e-4)
    swrapped = d.wrap(sm, sopt)
    with tempfile.TemporaryDirectory() as tmp:
        cache = synthetic_cache(Path(tmp), len(audio), n_frames(samples), encoder.config.embed_dim)
        frames = [n_frames(samples)] * len(audio)
        ids = [str(i) for i in range(len(audio))]
        micro = d.rows(sc.batch_size)

        def dcspin_step() -> None:
            batch = views.views_batch(cache, audio, ids, frames, micro, sc, next(step))
            spin.spin_step(sm, swrapped, sopt, batch, sc, d)

        dc = timed(dcspin_step, d, args.steps)
    audio_s = args.train_batch * args.seconds
    return [
        {"what": f"HuBERT pretraining step, batch {args.train_batch} x {args.seconds:g} s",
         "per_s": 1 / hub, "x_realtime": audio_s / hub},
        {"what": f"DC-Spin step (K1 100, K2 1024), batch {args.train_batch} x {args.seconds:g} s",
         "per_s": 1 / dc, "x_realtime": audio_s / dc},
    ]  # fmt: skip


def synthetic_cache(folder: Path, n: int, frames: int, dim: int) -> views.FrozenCache:
    """A frozen-layer cache of ``n`` utterances x 2 views of random features."""
    np.save(folder / "offsets.npy", np.arange(n + 1, dtype=np.int64) * frames)
    rng = np.random.default_rng(0)
    for view in (0, 1):
        np.save(
            folder / f"view{view}.npy", rng.standard_normal((n * frames, dim)).astype(np.float16)
        )
    return views.FrozenCache(folder, views=1)


def tokenizer_model(args: argparse.Namespace, folder: Path) -> TorchTokenizer:
    """A random-init encoder with a Spin head as a model directory (also for the export)."""
    torch.manual_seed(0)
    encoder = Encoder(getattr(presets, args.preset)()).eval()
    head = CosineCodebook(encoder.config.embed_dim, 256, 100)
    save_encoder_tokenizer(folder, name="gpu-bench", kind="spin", encoder=encoder, layer=None,
                           quantizer=head, train_info={}, card="")  # fmt: skip
    return TorchTokenizer(load_model_dir(folder))


def torch_rows(args: argparse.Namespace, d: Devices, tok: TorchTokenizer) -> list[dict[str, Any]]:
    tok.encoder.to(d.device)
    tok.quantizer.to(d.device)
    spec = WindowSpec.parse(args.window)
    rows = []
    for precision in ("fp32", "bf16") if d.device.type == "cuda" else ("fp32",):
        for kind, samples, audio_s in (
            ("whole utterances", int(args.seconds * SAMPLE_RATE), args.seconds),
            (f"windows {args.window}", spec.window_samples, spec.chunk_ms / 1000),
        ):
            for b in args.batches:
                x = torch.randn(b, samples, device=d.device) * 0.1
                lengths = torch.full((b,), samples, device=d.device)

                def run(
                    x: torch.Tensor = x,
                    lengths: torch.Tensor = lengths,
                    bf16: bool = precision == "bf16",
                ) -> None:
                    with (
                        torch.inference_mode(),
                        torch.autocast(d.device.type, dtype=torch.bfloat16, enabled=bf16),
                    ):
                        tok.scores(x, lengths)[0].argmax(-1)

                wall = timed(run, d, args.repeats)
                rows.append({"what": f"torch {d.device.type} {precision}, {kind}, batch {b}",
                             "x_realtime": b * audio_s / wall})  # fmt: skip
    tok.encoder.cpu()
    tok.quantizer.cpu()
    return rows


def onnx_rows(args: argparse.Namespace, tok: TorchTokenizer) -> list[dict[str, Any]]:
    """ONNX Runtime on the exported graphs: the CUDA provider if onnxruntime-gpu sees a GPU,
    else the CPU provider (on a GPU machine without onnxruntime-gpu: skipped, and said)."""
    try:
        import onnxruntime as ort

        from tokenizer.export import export_graph
    except ImportError as e:
        return [{"what": f"ONNX Runtime skipped ({e.name} not installed)", "x_realtime": None}]
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if args.device.startswith("cuda") and not cuda:
        return [{"what": "ONNX Runtime skipped (no onnxruntime-gpu)", "x_realtime": None}]
    providers = ["CUDAExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    spec = WindowSpec.parse(args.window)
    rows = []
    for kind, samples, audio_s in (
        ("whole utterances", int(args.seconds * SAMPLE_RATE), args.seconds),
        (f"windows {args.window}", spec.window_samples, spec.chunk_ms / 1000),
    ):
        graph = export_graph(tok, None if kind == "whole utterances" else samples)
        session = ort.InferenceSession(graph, providers=providers)
        for b in args.batches:
            waves = np.random.default_rng(b).standard_normal((b, samples)).astype(np.float32)
            feeds = {"waveforms": waves * 0.1, "lengths": np.full(b, samples, np.int64)}

            def run(s: Any = session, f: dict[str, np.ndarray] = feeds) -> None:
                s.run(["units"], f)

            wall = timed(run, CPU, args.repeats)
            rows.append({"what": f"onnxruntime {providers[0]}, {kind}, batch {b}",
                         "x_realtime": b * audio_s / wall})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/gpu.sh", description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--small", action="store_true", help="the CPU-sized run (tiny model)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    sizes = {"preset": "tiny", "steps": 2, "train_batch": 4, "seconds": 2.0, "repeats": 2,
             "batches": [1, 8], "window": "160,320,40"}  # fmt: skip
    if not args.small:
        sizes = {"preset": "base", "steps": 10, "train_batch": 32, "seconds": 4.0, "repeats": 5,
                 "batches": [1, 8, 64], "window": "980,320,260"}  # fmt: skip
    vars(args).update(sizes)
    d = devices(args.device)
    name = torch.cuda.get_device_name(d.device) if d.device.type == "cuda" else "cpu"
    start = time.perf_counter()
    rows = training_rows(args, d)
    with tempfile.TemporaryDirectory() as tmp:
        tok = tokenizer_model(args, Path(tmp) / "m")
        rows += torch_rows(args, d, tok) + onnx_rows(args, tok)
    result = {"device": name, "preset": args.preset, "torch": torch.__version__, "rows": rows,
              "wall_s": round(time.perf_counter() - start, 1)}  # fmt: skip
    print(f"{args.preset} encoder on {name} (torch {torch.__version__}), {result['wall_s']} s\n")
    print("| what | steps/s | x real time |\n|---|---|---|")
    for r in rows:
        per_s = f"{r['per_s']:.2f}" if "per_s" in r else ""
        x = "" if r["x_realtime"] is None else f"{r['x_realtime']:.1f}"
        print(f"| {r['what']} | {per_s} | {x} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
