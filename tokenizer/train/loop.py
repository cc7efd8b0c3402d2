"""The training loop every run shares: resume from the run's checkpoint, a linear-warmup /
linear-decay learning rate, logging to ``RUN/log.jsonl`` and a progress bar, periodic and final
checkpoints, and stopping at the last step, ``until_step``, after ``max_minutes``, or on
SIGINT/SIGTERM (at a step boundary, with a checkpoint)."""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tokenizer.audio import SAMPLE_RATE
from tokenizer.corpus.manifest import Utterance
from tokenizer.errors import InvalidInputError
from tokenizer.train.checkpoint import load_checkpoint, log_line, save_checkpoint
from tokenizer.train.data import Batch, Prefetched, TrainAudio, crop_batch, engine_weights
from tokenizer.train.devices import CPU, Devices


def lr_factor(step: int, warmup_steps: int, steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then linear decay to 0 at ``steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (steps - step) / max(1, steps - warmup_steps))


class StopFlag:
    """Set by SIGINT/SIGTERM so training stops at the next step boundary with a checkpoint."""

    def __init__(self) -> None:
        self.stop = False

    def __enter__(self) -> StopFlag:
        self._old = {s: signal.signal(s, self._set) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)

    def _set(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """What every run config has: the schedule, the batches, the seed, the cadence."""

    steps: int = 1000
    """Total optimizer steps; the learning rate decays linearly to 0 at the last one."""
    batch_size: int = 16
    max_seconds: float = 3.0
    """Longer utterances are cropped (random frame-aligned offset)."""
    lr: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    accum: int = 1
    """Micro-batches per optimizer step in each process (gradient accumulation): the global
    batch stays ``batch_size`` rows whatever the number of processes and micro-batches."""
    stream_audio: bool = False
    """Read each crop from disk instead of holding the corpus in memory (large corpora)."""
    workers: int = 0
    """Worker processes that read and prepare the next batches while a step runs."""
    valid_every: int = 100
    """Steps between validations (with a validation set; also after the last step)."""
    valid_batches: int = 4
    """Batches of the validation set (fixed crops, the same every time) per validation."""
    balance_engines: bool = False
    """Draw each step's utterances so that every synthesis engine (the manifest's ``engine``)
    gives the same share of the crops however many utterances it has (``engine_weights``);
    off: uniform over utterances. Validation crops stay uniform."""

    def __post_init__(self) -> None:
        low = {"steps": 1, "batch_size": 1, "accum": 1, "workers": 0, "checkpoint_every": 1}
        low |= {"log_every": 1, "valid_every": 1, "valid_batches": 1}
        bad = [
            f"{k}={getattr(self, k)} (at least {v})" for k, v in low.items() if getattr(self, k) < v
        ]
        if bad:
            raise InvalidInputError(f"expected run-config values in range, found {', '.join(bad)}")

    def draw_weights(self, utts: Sequence[Utterance]) -> np.ndarray | None:
        """Each training utterance's chance of being drawn into a step's crops: the same share
        for every engine with ``balance_engines``, else None (uniform over utterances)."""
        return engine_weights(utts) if self.balance_engines else None


EXECUTION = ("accum", "stream_audio", "workers", "valid_every", "valid_batches")
"""Run-config fields that change how a step is computed, not what: a run may resume with
others."""


VALID_SEED = 7919
"""Added to a run's seed for its validation batches (fixed crops, apart from training's)."""


def mean_stats(stats: Iterable[dict[str, float]]) -> dict[str, float]:
    """The mean of each statistic over batches."""
    rows = list(stats)
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def run_identity(config: TrainConfig, utts: list[Utterance], **sources: str) -> dict[str, Any]:
    """What a checkpoint must match to resume: the run config (but ``EXECUTION``), the
    fingerprints it was built from (``sources``, e.g. ``base=...``) and
    the training utterances."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in EXECUTION}
    return {**fields, **sources, "utterances": [u.id for u in utts]}


def resume(
    run: Path, run_config: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer
) -> int:
    """Load the run's checkpoint into ``model`` and ``opt``; the step to continue from."""
    state = load_checkpoint(run, run_config)
    if state is None:
        return 0
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return int(state["step"])


def train_loop(
    run: Path,
    run_config: dict[str, Any],
    model: nn.Module,
    opt: torch.optim.Optimizer,
    schedule: TrainConfig,
    step_fn: Callable[[int], dict[str, float]],
    start: int,
    desc: str,
    postfix: tuple[str, str],
    max_minutes: float | None = None,
    until_step: int | None = None,
    devices: Devices = CPU,
    validate: Callable[[], dict[str, float]] | None = None,
) -> int:
    """Run ``step_fn(step)`` (one optimizer step, returning stats) from ``start``; the step
    reached. ``validate()`` (the losses on the validation set) is logged as ``valid_*`` every
    ``valid_every`` steps and after the last one. Only the main process logs and writes
    checkpoints; every process stops at the same step (a stop asked of one is agreed by all)."""
    step, started = start, time.perf_counter()
    bar = tqdm(
        total=schedule.steps,
        initial=step,
        desc=desc,
        unit="step",
        file=sys.stderr,
        disable=not devices.main,
    )
    window: list[dict[str, float]] = []

    def save() -> None:
        if not devices.main:
            return
        save_checkpoint(
            run,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "config": run_config,
            },
        )

    last = schedule.steps if until_step is None else min(schedule.steps, until_step)
    with StopFlag() as flag:
        while step < last:
            late = max_minutes is not None and time.perf_counter() - started > max_minutes * 60
            if devices.all_max(torch.tensor(float(flag.stop or late))).item():
                break
            t0 = time.perf_counter()
            lr = schedule.lr * lr_factor(step, schedule.warmup_steps, schedule.steps)
            for group in opt.param_groups:
                group["lr"] = lr
            stats = step_fn(step)
            step += 1
            stats["s_per_step"] = time.perf_counter() - t0
            window.append(stats)
            bar.update(1)
            if step % schedule.log_every == 0 or step == schedule.steps:
                record = {
                    "step": step,
                    "lr": lr,
                    **{k: float(np.mean([w[k] for w in window if k in w])) for k in window[-1]},
                    "elapsed_s": round(time.perf_counter() - started, 1),
                }
                if devices.main:
                    log_line(run, record)
                bar.set_postfix(
                    loss=f"{record['loss']:.3f}", **{postfix[0]: f"{record[postfix[1]]:.3f}"}
                )
                window = []
            if validate is not None and (step % schedule.valid_every == 0 or step == last):
                checked = {f"valid_{k}": v for k, v in validate().items()}
                if devices.main:
                    log_line(run, {"step": step, **checked})
            if step % schedule.checkpoint_every == 0:
                save()
    bar.close()
    save()
    return step


CropStep = Callable[
    [nn.Module, torch.optim.Optimizer | None, Batch, list[np.ndarray], Any, int, Devices],
    dict[str, float],
]
"""``step(model, opt, batch, labels, config, step, devices)``: one optimizer step on the crops
of ``batch`` against per-utterance frame ``labels``; without an optimizer, the same losses in
eval mode (validation)."""


def train_on_crops(
    run: Path,
    run_config: dict[str, Any],
    model: nn.Module,
    opt: torch.optim.Optimizer,
    config: TrainConfig,
    start: int,
    data: tuple[TrainAudio, list[np.ndarray]],
    step: CropStep,
    progress: tuple[str, tuple[str, str]],
    max_minutes: float | None = None,
    until_step: int | None = None,
    devices: Devices = CPU,
    valid: tuple[TrainAudio, list[np.ndarray]] | None = None,
    augment: Callable[[Batch, int], Batch] | None = None,
    weights: np.ndarray | None = None,
) -> int:
    """``train_loop`` over seeded random crops of ``data`` (audio, frame labels; utterances
    drawn by ``weights``, ``TrainConfig.draw_weights``): this process's
    rows of every global batch, prepared by ``config.workers`` and, with ``augment``, changed by
    ``augment(batch, step)`` (same lengths; validation crops stay clean); validation on
    ``config.valid_batches`` fixed crops of ``valid`` (seeded apart from training's). The
    frame-label trainers (HuBERT, phones) share it; ``progress`` is the bar's name and postfix."""
    audio, labels = data
    max_samples = int(config.max_seconds * SAMPLE_RATE)
    mine = {r for rows in devices.rows(config.batch_size) for r in rows}

    def make(k: int) -> Batch:
        batch = crop_batch(audio, config.seed, k, config.batch_size, max_samples, mine, weights)
        return batch if augment is None else augment(batch, k)

    batches = Prefetched(
        make,
        start,
        config.steps,
        config.workers,
    )
    wrapped = devices.wrap(model, opt)
    validate = None
    if valid is not None:
        valid_audio, valid_labels = valid
        fixed = dataclasses.replace(config, seed=config.seed + VALID_SEED)
        valid_set = [
            crop_batch(valid_audio, fixed.seed, k, config.batch_size, max_samples, mine)
            for k in range(config.valid_batches)
        ]

        def validate() -> dict[str, float]:
            return mean_stats(
                step(wrapped, None, b, valid_labels, fixed, k, devices)
                for k, b in enumerate(valid_set)
            )

    return train_loop(
        run,
        run_config,
        model,
        opt,
        config,
        lambda k: step(wrapped, opt, batches.get(k), labels, config, k, devices),
        start,
        *progress,
        max_minutes,
        until_step,
        devices,
        validate,
    )
