"""HuBERT pretraining from scratch: masked prediction of frame targets (``speechtok train
hubert``).

Targets are the units of any tokenizer on the 50 Hz grid: MFCC k-means for iteration 1, k-means
on this model's own layer for iteration 2. Spans of ``mask_length`` frames starting at
``mask_prob / mask_length`` of the frames are replaced by a learned mask vector; logits are
cosine similarities between a projection of the final output and label embeddings, divided by
``temperature``. The loss is cross-entropy on masked frames plus ``unmasked_weight`` times
cross-entropy on unmasked frames, with full gradients into the conv front-end: on these machines
the plain recipe (masked frames only, conv gradients x0.1) sat on the ln(K) plateau.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from tokenizer.audio import SAMPLE_RATE
from tokenizer.corpus.manifest import Utterance
from tokenizer.encoder import config as presets
from tokenizer.encoder.model import Encoder
from tokenizer.errors import InvalidInputError
from tokenizer.model_dir import ModelDir, card_facts
from tokenizer.protocol import Tokenizer
from tokenizer.quantizer import HUBERT_KEYS, CosineCodebook
from tokenizer.save import save_encoder_tokenizer
from tokenizer.train.data import Batch, TrainAudio, compute_targets
from tokenizer.train.devices import CPU, Devices
from tokenizer.train.loop import (
    TrainConfig,
    resume,
    run_identity,
    train_on_crops,
)


@dataclass(frozen=True, kw_only=True)
class HubertConfig(TrainConfig):
    preset: Literal["tiny", "base"] = "tiny"
    """Encoder shape (``tokenizer.encoder.config`` presets)."""
    steps: int = 3000
    batch_size: int = 8
    lr: float = 5e-4
    warmup_steps: int = 200
    weight_decay: float = 0.01
    clip_norm: float = 10.0
    mask_prob: float = 0.8
    mask_length: int = 10
    unmasked_weight: float = 0.5
    final_dim: int = 256
    temperature: float = 0.1
    dropout: float = 0.1
    """Dropout in the transformer during pretraining (removed for inference)."""


class HubertPretrainer(nn.Module):
    """Encoder + mask vector + prediction head (projection and label embeddings)."""

    def __init__(self, config: HubertConfig, K: int) -> None:
        super().__init__()
        enc = getattr(presets, config.preset)()
        enc = dataclasses.replace(
            enc,
            dropout=config.dropout,
            attention_dropout=config.dropout,
            activation_dropout=0.0,
            dropout_input=config.dropout,
        )
        self.encoder = Encoder(enc)
        self.mask_embedding = nn.Parameter(torch.empty(enc.embed_dim).uniform_())
        self.head = CosineCodebook(
            enc.embed_dim, config.final_dim, K, HUBERT_KEYS, lambda t: t.uniform_(-1, 1)
        )
        self.temperature = config.temperature

    def forward(self, waves: Tensor, lengths: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        x, frames = self.encoder(waves, lengths, mask=mask, mask_embedding=self.mask_embedding)
        return self.head.scores(x) / self.temperature, frames


def span_mask(
    frame_lengths: list[int], width: int, prob: float, length: int, rng: np.random.Generator
) -> Tensor:
    """fairseq-style span mask: ``prob * F / length`` (stochastically rounded) spans of
    ``length`` frames per utterance, starts without replacement, overlaps allowed."""
    mask = np.zeros((len(frame_lengths), width), dtype=bool)
    for row, frames in enumerate(frame_lengths):
        if frames <= length:
            continue
        n = int(prob * frames / length + rng.random())
        starts = rng.choice(frames - length, size=min(n, frames - length), replace=False)
        for s in starts:
            mask[row, s : s + length] = True
    return torch.from_numpy(mask)


def train_hubert(
    run: Path,
    root: Path,
    utts: list[Utterance],
    targets: Tokenizer,
    config: HubertConfig,
    max_minutes: float | None = None,
    until_step: int | None = None,
    devices: Devices = CPU,
    valid: tuple[Path, list[Utterance]] | None = None,
    init: Tokenizer | None = None,
) -> tuple[HubertPretrainer, int]:
    """Train (or resume) in ``run``; returns the model and the step reached. Stops at
    ``config.steps`` or ``until_step``, after ``max_minutes`` of this call, or on SIGINT/SIGTERM,
    always after writing a checkpoint. Batches, masks and dropout depend only on (seed, step)
    (dropout also on the process's rows and micro-batches), so a run in pieces gives the same
    model as one run. ``init`` (an encoder model of the same preset) starts the encoder from its
    weights instead of random ones (the next HuBERT iteration); the head starts afresh."""
    sources = {"targets": targets.fingerprint}
    if init is not None:
        sources["init"] = init.fingerprint
    run_config = run_identity(config, utts, **sources)
    torch.manual_seed(config.seed)
    model = HubertPretrainer(config, targets.K)
    if init is not None:
        _load_encoder(model.encoder, init)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=config.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
        weight_decay=config.weight_decay,
    )
    start = resume(run, run_config, model, opt)  # before the slow part: fail fast on a mismatch
    audio = TrainAudio(root, utts, in_memory=not config.stream_audio)
    labels = compute_targets(targets, utts, audio)
    checked = None
    if valid is not None:
        valid_audio = TrainAudio(*valid, in_memory=not config.stream_audio)
        checked = (valid_audio, compute_targets(targets, valid[1], valid_audio))
    step = train_on_crops(
        run, run_config, model, opt, config, start, (audio, labels), train_step,
        ("hubert", ("acc", "acc_masked")), max_minutes, until_step, devices, checked,
        weights=config.draw_weights(utts),
    )  # fmt: skip
    return model.cpu(), step


def _load_encoder(encoder: Encoder, init: Tokenizer) -> None:
    """Copy ``init``'s encoder weights into ``encoder``; the shapes must be the preset's."""
    source = getattr(init, "encoder", None)
    if not isinstance(source, Encoder):
        raise InvalidInputError(f"expected an encoder model for --init, found {init.name}")
    mine, theirs = encoder.state_dict(), source.state_dict()
    bad = [k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape]
    if bad or len(mine) != len(theirs):
        raise InvalidInputError(
            f"expected --init {init.name} to have this run's encoder shape, found "
            f"{len(bad)} missing or differently shaped tensors (first: {bad[:3]})"
        )
    encoder.load_state_dict(theirs)


def train_step(
    model: nn.Module,
    opt: torch.optim.Optimizer | None,
    batch: Batch,
    labels: list[np.ndarray],
    config: HubertConfig,
    step: int,
    devices: Devices,
) -> dict[str, float]:
    """One optimizer step on ``batch``, the global batch of ``step``: this process's rows in
    ``accum`` micro-batches, losses normalised by the global batch's frame counts. Without an
    optimizer: the same losses in eval mode, nothing learnt (validation)."""
    model.train(opt is not None)
    frame_lengths, target = batch.frame_labels(labels)
    rng = np.random.default_rng([config.seed, step, 1])
    mask = span_mask(frame_lengths, target.shape[1], config.mask_prob, config.mask_length, rng)
    valid = target >= 0
    n_masked, n_unmasked = (valid & mask).sum().clamp(min=1), (valid & ~mask).sum().clamp(min=1)
    sums = torch.zeros(4)  # masked CE, unmasked CE, masked hits, unmasked hits
    if opt is not None:
        opt.zero_grad(set_to_none=True)
    micro = devices.rows(config.batch_size, config.accum)
    for j, rows in enumerate(micro):
        idx = list(rows)
        frames = max(frame_lengths[i] for i in idx)
        waves = batch.waveforms[idx, : int(batch.lengths[idx].max())].to(devices.device)
        m = mask[idx, :frames].to(devices.device)
        t = target[idx, :frames].to(devices.device)
        torch.manual_seed(config.seed * 1_000_003 + step * 1009 + devices.rank * 31 + j)  # dropout
        with (
            torch.set_grad_enabled(opt is not None),
            devices.no_sync(model, last=j == len(micro) - 1),
            devices.autocast(),
        ):
            logits, _ = model(waves, batch.lengths[idx].to(devices.device), m)
        ce = nn.functional.cross_entropy(
            logits.float().transpose(1, 2), t.clamp(min=0), reduction="none"
        )
        hit = logits.argmax(-1) == t
        is_m, is_u = (t >= 0) & m, (t >= 0) & ~m
        part = torch.stack([(ce * is_m).sum(), (ce * is_u).sum()])
        loss = part[0] / n_masked + config.unmasked_weight * part[1] / n_unmasked
        if opt is not None:
            (loss * devices.world).backward()
        sums += torch.stack([*part.detach(), (hit & is_m).sum(), (hit & is_u).sum()]).cpu()
    if opt is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        opt.step()
    sums = devices.all_sum(sums.to(devices.device)).cpu()
    loss_m, loss_u = sums[0] / n_masked, sums[1] / n_unmasked
    return {
        "loss": float(loss_m + config.unmasked_weight * loss_u),
        "loss_masked": float(loss_m),
        "acc_masked": float(sums[2] / n_masked),
        "acc_unmasked": float(sums[3] / n_unmasked),
        "audio_s": float(batch.lengths.sum()) / SAMPLE_RATE,
    }


def export_hubert(
    model: HubertPretrainer, out: Path, name: str, train_info: dict[str, Any]
) -> ModelDir:
    """The pretrained encoder as a ``hubert`` tokenizer (its prediction head's argmax)."""
    facts = card_facts(train_info)
    card = (
        f"# {name}\n\nHuBERT-style encoder pretrained from scratch by masked prediction; its "
        f"units are the prediction head's argmax over K={model.head.K} "
        f"targets on unmasked audio. Use it as the base encoder for `speechtok train spin|dcspin` "
        f"and `speechtok train kmeans --encoder`.\n\n## Training\n\n{facts}\n\n"
        f"```\n{train_info.get('command', '')}\n```\n"
    )
    return save_encoder_tokenizer(
        out,
        name=name,
        kind="hubert",
        encoder=model.encoder,
        layer=None,
        quantizer=model.head,
        train_info=train_info,
        card=card,
    )
