"""Training a unit HiFi-GAN (``speechtok vocoder train``).

One optimizer step trains the discriminators (least-squares GAN on real vs generated segments),
then the generator (adversarial + 2 x feature matching + 45 x log-mel L1) and its duration
predictor (MSE on log durations of whole utterances' deduplicated units). One AdamW
(betas 0.8, 0.99) holds both parameter groups; each half of the step drops the other half's
gradients, so each step updates only its own networks. Batches depend only on (seed, step), so
a resumed run continues exactly. Audio samples go to ``RUN/samples`` during training.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import nn

from tokenizer.audio import SAMPLE_RATE
from tokenizer.corpus.manifest import synth_command
from tokenizer.errors import InvalidInputError
from tokenizer.protocol import Tokenizer
from tokenizer.train.checkpoint import log_call, read_log
from tokenizer.train.devices import CPU, Devices
from tokenizer.train.loop import resume, train_loop
from vocoder.config import GeneratorConfig, VocoderTrainConfig
from vocoder.data import build_cache, corpus_speakers, duration_batch, segment_batch
from vocoder.discriminators import Discriminators
from vocoder.losses import LogMel, discriminator_loss, feature_loss, generator_loss
from vocoder.model import Generator

SAMPLES = "samples"


class VocoderPair(nn.Module):
    def __init__(self, generator: Generator, discriminators: Discriminators) -> None:
        super().__init__()
        self.generator = generator
        self.discriminators = discriminators


def _drop_grads(module: nn.Module) -> None:
    for p in module.parameters():
        p.grad = None


def train_vocoder(
    run: Path,
    corpus: Path,
    tok: Tokenizer,
    config: VocoderTrainConfig,
    split: str = "train",
    max_minutes: float | None = None,
    until_step: int | None = None,
    devices: Devices = CPU,
) -> tuple[Generator, dict[str, Any]]:
    """Train (or resume) a vocoder run; returns the generator and the training facts. One
    process, float32 (TF32 on CUDA: the mel loss's STFT has no bf16 kernel), no accumulation:
    the GAN's alternating steps are not split."""
    if devices.world > 1 or config.accum != 1 or config.stream_audio or config.workers:
        raise InvalidInputError(
            f"expected vocoder training in one process with accum 1, in-memory audio and no "
            f"batch workers, found {devices.world} processes, accum {config.accum}, "
            f"stream_audio {config.stream_audio}, workers {config.workers}"
        )
    torch.manual_seed(config.seed)
    speakers = corpus_speakers(corpus, split)
    gen_config = GeneratorConfig(n_units=tok.K, speakers=tuple(speakers), **config.generator)
    run_config = {
        "train": dataclasses.asdict(config),
        "generator": dataclasses.asdict(gen_config),
        "units_model": tok.fingerprint,
        "corpus": str(corpus),
        "split": split,
    }
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(run_config, indent=2) + "\n")
    started = time.perf_counter()
    data = build_cache(corpus, split, tok, speakers, config.full_utterance_units, run / "cache")
    cache_s = time.perf_counter() - started
    pair = VocoderPair(Generator(gen_config), Discriminators())
    gen, disc = pair.generator, pair.discriminators
    opt = torch.optim.AdamW(
        [{"params": gen.parameters()}, {"params": disc.parameters()}], betas=(0.8, 0.99)
    )
    start = resume(run, run_config, pair, opt)
    devices.wrap(pair, opt)
    mel = LogMel().to(devices.device)
    on = devices.device

    def step_fn(step: int) -> dict[str, float]:
        units, speaker, real = (
            x.to(on)
            for x in segment_batch(
                data, config.batch_size, config.segment_frames, config.seed, step
            )
        )
        fake = gen(units, speaker)
        gan = step >= config.gan_start_step
        stats: dict[str, float] = {}
        if gan:
            real_scores, _ = disc(real)
            fake_scores, _ = disc(fake.detach())
            d_loss = discriminator_loss(real_scores, fake_scores)
            opt.zero_grad(set_to_none=True)
            d_loss.backward()
            _drop_grads(gen)
            opt.step()
            stats["disc"] = float(d_loss.item())

        mel_loss = F.l1_loss(mel(fake), mel(real))
        du, ds, dd, dm = (
            x.to(on) for x in duration_batch(data, config.batch_size, config.seed, step)
        )
        dur = F.mse_loss(gen.durations(du, ds)[dm], torch.log(dd[dm]))
        g_loss = config.mel_weight * mel_loss + config.duration_weight * dur
        if gan:
            with torch.no_grad():
                _, real_fmaps = disc(real)
            fake_scores, fake_fmaps = disc(fake)
            adv = generator_loss(fake_scores)
            fm = feature_loss(real_fmaps, fake_fmaps)
            g_loss = g_loss + adv + config.fm_weight * fm
            stats.update(adv=float(adv.item()), fm=float(fm.item()))
        opt.zero_grad(set_to_none=True)
        g_loss.backward()
        _drop_grads(disc)
        opt.step()
        if config.sample_every and (step + 1) % config.sample_every == 0:
            _write_samples(run, step + 1, real, fake)
        return {
            "loss": float(g_loss.item()),
            "mel": float(mel_loss.item()),
            "duration": float(dur.item()),
            **stats,
        }

    pair.train()
    step = train_loop(
        run,
        run_config,
        pair,
        opt,
        config,
        step_fn,
        start,
        "vocoder",
        ("mel", "mel"),
        max_minutes=max_minutes,
        until_step=until_step,
    )
    info = {
        "units_model": tok.name,
        "units_fingerprint": tok.fingerprint,
        "corpus": str(corpus),
        "split": split,
        "speakers": len(speakers),
        "utterances": data.n_utterances,
        "hours": round(len(data.audio) / SAMPLE_RATE / 3600, 2),
        "units": "full utterance" if config.full_utterance_units else "canonical windows",
        "steps": step,
        "segment_frames": config.segment_frames,
        "batch_size": config.batch_size,
        "cache_s": round(cache_s, 1),
        "last_logged": {
            k: round(v, 4)
            for k, v in next((r for r in reversed(read_log(run)) if "loss" in r), {}).items()
            if k != "lr"
        },
        "command": "speechtok " + shlex.join(sys.argv[1:]),
    }
    if built := synth_command(corpus):
        info["corpus_built_with"] = built
    info |= log_call(run, step, time.perf_counter() - started)
    return gen.cpu().eval(), info


def _write_samples(run: Path, step: int, real: torch.Tensor, fake: torch.Tensor) -> None:
    out = run / SAMPLES
    out.mkdir(parents=True, exist_ok=True)
    for name, x in (("real", real[0]), ("fake", fake[0])):
        sf.write(
            out / f"step-{step:06d}-{name}.wav",
            x.detach().cpu().numpy().astype(np.float32),
            SAMPLE_RATE,
        )
