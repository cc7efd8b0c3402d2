"""Distillation into a streaming-exact student (``speechtok train distill``).

A full-context tokenizer (the teacher, e.g. DC-Spin) gives different units for a window than for
the whole utterance: its GroupNorm and attention see everything. The student has the teacher's
shape with three changes that bound what a frame depends on (``EncoderConfig.context_frames``):
a LayerNorm after every conv (``layer_norm`` extractor mode) instead of the utterance-wide
GroupNorm, band attention (``attention_left`` / ``attention_right`` frames per layer) and a short
positional conv. Canonical windows that cover that span then give exactly the full-utterance
units, so streaming, batch and offline units agree by construction.

The student starts from the teacher's weights (the positional conv keeps its centre taps, the
first conv's GroupNorm affine goes to its LayerNorm), keeps the teacher's head shape and its
codebook, frozen, so unit ids mean what they meant for the teacher, and learns to match the
teacher's full-utterance codeword distribution on every frame: KL divergence at
``temperature`` on random crops. Like Spin, it sees speaker-perturbed copies too (``views``
Praat copies per utterance at ``perturb_strength`` times Spin's ranges, each row of a batch
one of them with probability ``perturbed_prob``) and must still give the teacher's units of
the original audio, so the teacher's speaker invariance carries over. The teacher's scores
and the perturbed copies are computed once per run (``RUN/cache``).

``speechtok train colld`` compresses a served (bounded-context) encoder the same way into a
cheaper student (``student_conv``, ``student_layers``: a lighter conv front-end, fewer
layers) with CoLLD's two additions (Lee et al., 2023, contrastive layer-to-layer
distillation): the student's input features are masked in spans (``mask_prob``,
``mask_length``) while the teacher sees everything, and each student layer, through a linear
map, must pick the teacher's layer at the same relative depth at the same frame among the
other frames of its utterance (InfoNCE at ``layer_temperature``, weight ``layer_weight``).
The codebook, and so the unit ids, stay the teacher's.

SUPERVISED, with ``--phone-labels``: the student's tokens also predict the frame's phone
(``unit_label_weight``), the loss DC-Spin's ``unit_label_weight`` adds through the tokens
(``spin.unit_label_loss``). The codebook is frozen, so each codeword's phone distribution is
fixed: it is counted once, from the teacher's full-utterance codeword distributions on the
training utterances and their phone alignments.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from tokenizer.audio import SAMPLE_RATE
from tokenizer.corpus.manifest import Utterance
from tokenizer.corpus.phones import PHONES
from tokenizer.encoder.config import EncoderConfig
from tokenizer.encoder.model import Encoder
from tokenizer.errors import InvalidInputError
from tokenizer.model_dir import ModelDir, card_facts
from tokenizer.quantizer import SPIN_KEYS, CosineCodebook
from tokenizer.save import save_encoder_tokenizer
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.train.data import TrainAudio, crop_batch, n_frames, utterance_digest
from tokenizer.train.devices import CPU, Devices
from tokenizer.train.hubert import span_mask
from tokenizer.train.loop import (
    VALID_SEED,
    mean_stats,
    resume,
    run_identity,
    train_loop,
)
from tokenizer.train.phones import phone_frame_targets
from tokenizer.train.spin import unit_label_loss
from tokenizer.train.views import DistortConfig, noisy_views, view_audio

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DistillConfig(DistortConfig):
    attention_left: int = 4
    """Frames before its own each frame attends to, per layer."""
    attention_right: int = 1
    """Frames after its own each frame attends to, per layer (the lookahead grows by this
    per layer)."""
    pos_conv_kernel: int = 3
    """Kernel of the student's positional conv, in frames (odd: symmetric)."""
    temperature: float = 0.1
    """Softmax temperature of teacher and student codeword scores (cosine similarities)."""
    views: int = 2
    """Speaker-perturbed copies per training utterance (0: original audio only)."""
    perturbed_prob: float = 0.5
    """Chance that a batch row is a perturbed copy (its targets stay the original's); with
    ``distortions`` (an R-Spin teacher's student) copies are also distorted as R-Spin's."""
    perturb_jobs: int = 2
    perturb_strength: float = 1.0
    """Scale of the copies' speaker perturbation (``ViewsConfig.perturb_strength``)."""
    student_conv: tuple[tuple[int, int, int], ...] | None = None
    """The student's conv front-end, ``(channels, kernel, stride)`` per layer (None: the
    teacher's); layers whose shapes differ from the teacher's start fresh."""
    student_layers: int | None = None
    """The student's transformer layers (None: the teacher's); it starts from the first ones."""
    mask_prob: float = 0.0
    """CoLLD: masked spans of the student's input features (``span_mask``; 0: none)."""
    mask_length: int = 10
    layer_weight: float = 0.0
    """CoLLD: weight of the contrastive layer-to-layer loss (0: none)."""
    layer_temperature: float = 0.1
    unit_label_weight: float = 0.0
    """SUPERVISED (``--phone-labels``): weight of the phones predicted through the student's
    tokens."""
    steps: int = 1500
    batch_size: int = 8
    lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    clip_norm: float = 10.0


def colld() -> DistillConfig:
    """``train colld``'s preset: half the channels in the middle of the conv front-end and
    one transformer layer fewer than the tiny encoder (0.69x its encoder FLOPs per second of audio),
    masked inputs, the layer-to-layer loss beside the unit KL."""
    return DistillConfig(
        student_conv=((64, 10, 5), (64, 3, 2), (128, 3, 2), (128, 3, 2), (256, 3, 2))
        + ((256, 2, 2),) * 2,
        student_layers=3,
        mask_prob=0.4,
        layer_weight=1.0,
    )


def student_config(teacher: EncoderConfig, config: DistillConfig) -> EncoderConfig:
    """The teacher's shape with bounded context (and CoLLD's smaller parts)."""
    return dataclasses.replace(
        teacher.without_dropout(),
        extractor_mode="layer_norm",
        pos_conv_kernel=config.pos_conv_kernel,
        attention_left=config.attention_left,
        attention_right=config.attention_right,
        conv_layers=config.student_conv or teacher.conv_layers,
        num_layers=config.student_layers or teacher.num_layers,
    )


def teacher_layer(i: int, student_layers: int, teacher_layers: int) -> int:
    """The teacher layer (1-based) that student layer ``i`` (1-based) learns from: the same
    relative depth."""
    return max(1, round(i * teacher_layers / student_layers))


def init_from_teacher(student: Encoder, teacher: Encoder) -> list[str]:
    """Copy every teacher tensor whose name and shape fit, and the centre taps of the
    positional conv; returns the student tensors left at their initial values."""
    source = teacher.state_dict()
    state = student.state_dict()
    fresh = []
    for key, value in state.items():
        t = source.get(key)
        if t is not None and t.shape == value.shape:
            state[key] = t.clone()
        elif t is not None and "pos_conv_embed" in key and t.shape[:-1] == value.shape[:-1]:
            first = t.shape[-1] // 2 - value.shape[-1] // 2  # taps on the last axis
            state[key] = t[..., first : first + value.shape[-1]].clone()
        else:
            fresh.append(key)
    student.load_state_dict(state)
    return fresh


@torch.no_grad()
def calibrate_conv_norms(student: Encoder, teacher: Encoder, audios: list[np.ndarray]) -> None:
    """Set the student's conv LayerNorms so that, on typical frames, each reproduces what the
    teacher has there: its utterance-wide GroupNorm after the first conv, nothing after the
    others. LayerNorm divides each frame by its own spread across channels (s_t), GroupNorm
    each channel by its spread over time (sigma_c), so with the averages of both over
    ``audios``, weight = gamma * mean(s) / sigma and the matching bias start the student near
    the teacher."""
    stats: list[list[tuple[Tensor, Tensor, Tensor, Tensor]]] = []
    for a in audios:
        x = torch.from_numpy(np.asarray(a, np.float32))[None, None]
        rows = []
        for block in teacher.feature_extractor.conv_layers:
            x = block.conv(x)[0]  # [C, T]
            rows.append((x.mean(1), x.std(1), x.mean(0).mean(), x.std(0).mean()))
            if block.layer_norm is not None:
                x = block.layer_norm(x[None])[0]
            x = nn.functional.gelu(x)[None]
        stats.append(rows)
    blocks = zip(
        teacher.feature_extractor.conv_layers, student.feature_extractor.conv_layers, strict=True
    )
    for i, (t_block, s_block) in enumerate(blocks):
        mu_c, sigma_c, m_t, s_t = (torch.stack([r[i][j] for r in stats]).mean(0) for j in range(4))
        norm = s_block.layer_norm
        if isinstance(t_block.layer_norm, nn.GroupNorm):
            scale = t_block.layer_norm.weight / sigma_c
            norm.weight.copy_(scale * s_t)
            norm.bias.copy_(t_block.layer_norm.bias - scale * mu_c + scale * m_t)
        else:
            norm.weight.fill_(float(s_t))
            norm.bias.fill_(float(m_t))


class Student(nn.Module):
    """Bounded-context encoder + a copy of the teacher's Spin head; its codebook is frozen.
    With CoLLD, a mask vector and one linear map per layer onto the teacher's layer space."""

    def __init__(self, teacher: TorchTokenizer, config: DistillConfig) -> None:
        super().__init__()
        shape = student_config(teacher.encoder.config, config)
        self.encoder = Encoder(shape)
        fresh = init_from_teacher(self.encoder, teacher.encoder)
        log.info("student tensors without a teacher counterpart: %s", ", ".join(fresh))
        if not isinstance(teacher.quantizer, CosineCodebook):
            raise InvalidInputError(
                f"expected a teacher with a Spin/HuBERT codebook head, found {teacher.kind}"
            )
        self.head = copy.deepcopy(teacher.quantizer)
        self.head.keys = SPIN_KEYS  # stored as a Spin head, with the teacher's unit ids
        self.head.codebook.requires_grad_(False)
        dim = teacher.encoder.config.embed_dim
        self.mask_embedding = (
            nn.Parameter(torch.empty(shape.embed_dim).uniform_()) if config.mask_prob else None
        )
        self.layer_maps = nn.ModuleList(
            nn.Linear(shape.embed_dim, dim)
            for _ in range(shape.num_layers if config.layer_weight else 0)
        )

    def forward(
        self, waves: Tensor, lengths: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Codeword scores, valid frames, and each layer's output mapped onto the teacher's
        layer space (CoLLD; empty without)."""
        embedding = self.mask_embedding if mask is not None else None
        if mask is not None and embedding is None:
            raise InvalidInputError("expected mask_prob > 0 for masked inputs, found 0")
        layers, frames = self.encoder.layer_outputs(waves, lengths, None, mask, embedding)
        x = self.encoder.final_norm(layers[-1])
        mapped = [m(y) for m, y in zip(self.layer_maps, layers, strict=False)]
        return self.head.scores(x), frames, mapped


def teacher_scores(
    folder: Path, teacher: TorchTokenizer, utts: list[Utterance], audio: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """The teacher's full-utterance codeword scores ``[F, K]`` per utterance (float16),
    cached in ``folder`` under a key of the teacher and the utterance list."""
    key = {
        "teacher": teacher.fingerprint,
        "utterances": utterance_digest(utts),
    }
    meta, data = folder / "teacher.json", folder / "teacher_scores.npy"
    if not (meta.is_file() and json.loads(meta.read_text()) == key):
        folder.mkdir(parents=True, exist_ok=True)
        meta.unlink(missing_ok=True)
        rows = []
        with torch.inference_mode():
            for a in tqdm(audio, desc="teacher scores", unit="utt", file=sys.stderr, leave=False):
                wave = torch.from_numpy(a.astype(np.float32) / 32767.0)[None]
                scores, _ = teacher.scores(wave, torch.tensor([wave.shape[1]]))
                rows.append(scores[0].numpy().astype(np.float16))
        np.save(data, np.concatenate(rows))
        meta.write_text(json.dumps(key))
    flat = np.load(data, mmap_mode="r")
    offsets = np.cumsum([0] + [n_frames(len(a)) for a in audio])
    if offsets[-1] != len(flat):
        raise InvalidInputError(
            f"expected {offsets[-1]} cached teacher frames in {data}, found {len(flat)}"
        )
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(audio))]


def codeword_labels(
    targets: Sequence[np.ndarray], labels: Sequence[np.ndarray], n_labels: int, temperature: float
) -> Tensor:
    """Soft label counts per codeword ``[K, n_labels]``: every frame's label, spread over the
    codewords by the teacher's codeword distribution (its scores at ``temperature``)."""
    counts = torch.zeros(targets[0].shape[1], n_labels, dtype=torch.float64)
    for scores, y in zip(targets, labels, strict=True):
        p = torch.softmax(torch.from_numpy(np.asarray(scores, np.float32)) / temperature, -1)
        counts.index_add_(1, torch.from_numpy(y), p.T.double())
    return counts.float()


def perturbed_views(
    folder: Path, utts: list[Utterance], audio: Sequence[np.ndarray], config: DistillConfig
) -> list[list[np.ndarray]]:
    """``config.views`` perturbed (and with ``distortions``, distorted) copies of every
    utterance (int16, the original's length), cached in ``folder``."""
    key: dict[str, Any] = {
        "views": config.views,
        "seed": config.seed,
        "utterances": utterance_digest(utts),
    }
    if config.distortions:
        key["distort"] = config.distort_key()
    if config.perturb_strength != 1:
        key["perturb_strength"] = config.perturb_strength
    meta = folder / "views.json"
    if not (meta.is_file() and json.loads(meta.read_text()) == key):
        folder.mkdir(parents=True, exist_ok=True)
        meta.unlink(missing_ok=True)
        noisy = noisy_views(utts, audio, config)
        for v in range(1, config.views + 1):
            copies = view_audio(
                utts, audio, v, config.seed, config.perturb_jobs, config.perturb_strength
            )
            if noisy is not None:
                copies = [noisy.distort(c, i, f"{u.id}#view{v}", config)
                          for i, (u, c) in enumerate(zip(utts, copies, strict=True))]  # fmt: skip
            flat = np.concatenate([np.clip(c, -1.0, 1.0) for c in copies]) * 32767.0
            np.save(folder / f"view{v}.npy", np.round(flat).astype(np.int16))
        meta.write_text(json.dumps(key))
    offsets = np.cumsum([0] + [len(a) for a in audio])
    out = []
    for v in range(1, config.views + 1):
        flat = np.load(folder / f"view{v}.npy", mmap_mode="r")
        out.append([flat[offsets[i] : offsets[i + 1]] for i in range(len(audio))])
    return out


def train_distill(
    run: Path,
    teacher: TorchTokenizer,
    utts: list[Utterance],
    root: Path,
    config: DistillConfig,
    max_minutes: float | None = None,
    until_step: int | None = None,
    devices: Devices = CPU,
    valid: tuple[Path, list[Utterance]] | None = None,
    phone_labels: bool = False,
) -> tuple[Student, int]:
    """Distil (or resume) in ``run``; returns the student and the step reached. Stops as
    ``train_hubert`` does. ``phone_labels`` (SUPERVISED): the student's tokens also predict
    the utterances' phones (weight ``unit_label_weight``)."""
    if teacher.kind not in ("spin", "dcspin") or teacher.layer is not None:
        raise InvalidInputError(
            f"expected a spin or dcspin teacher on its final layer, found kind "
            f"{teacher.kind!r} at layer {teacher.layer}"
        )
    if config.stream_audio or config.workers:
        raise InvalidInputError(
            "expected stream_audio false and workers 0 for distill (its perturbed copies and "
            "teacher scores are prepared once for the whole corpus), found "
            f"stream_audio {config.stream_audio}, workers {config.workers}"
        )
    if phone_labels != (config.unit_label_weight > 0):
        raise InvalidInputError(
            "expected --phone-labels together with unit_label_weight > 0 (the student's tokens "
            f"predict the phones), found --phone-labels {phone_labels} and unit_label_weight "
            f"{config.unit_label_weight:g}"
        )
    labelled = {"phone_labels": "alignments"} if phone_labels else {}
    run_config = run_identity(config, utts, teacher=teacher.fingerprint, **labelled)
    torch.manual_seed(config.seed)
    model = Student(teacher, config)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        params, lr=config.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=config.weight_decay
    )
    start = resume(run, run_config, model, opt)  # before the slow part: fail fast on a mismatch
    teacher.encoder.to(devices.device)
    audio = TrainAudio(root, utts)
    same_conv = model.encoder.config.conv_layers == teacher.encoder.config.conv_layers
    if start == 0 and same_conv and teacher.encoder.config.extractor_mode == "group_norm":
        calibrate_conv_norms(
            model.encoder,
            teacher.encoder,
            [audio[i].astype(np.float32) / 32767.0 for i in range(min(32, len(audio)))],
        )
    targets = devices.first(lambda: teacher_scores(run / "cache", teacher, utts, audio))
    copies = devices.first(lambda: perturbed_views(run / "cache", utts, audio, config))
    views = [audio, *copies]
    phones = None  # every utterance's frame phones and the codewords' phone counts
    if phone_labels:
        labels = phone_frame_targets(utts, audio.lengths)
        table = codeword_labels(targets, labels, len(PHONES), config.temperature).to(devices.device)
        phones = (labels, table)
    max_samples = int(config.max_seconds * SAMPLE_RATE)
    weights = config.draw_weights(utts)
    wrapped = devices.wrap(model, opt)
    validate = None
    if valid is not None:  # the original audio of the validation set, with its teacher scores
        valid_audio = TrainAudio(*valid)
        valid_targets = devices.first(
            lambda: teacher_scores(run / "cache" / "valid", teacher, valid[1], valid_audio)
        )
        fixed = dataclasses.replace(config, seed=config.seed + VALID_SEED)
        valid_phones = (
            None if phones is None
            else (phone_frame_targets(valid[1], valid_audio.lengths), phones[1])
        )  # fmt: skip

        def validate() -> dict[str, float]:
            return mean_stats(
                _step(
                    wrapped,
                    None,
                    [valid_audio],
                    valid_targets,
                    fixed,
                    k,
                    max_samples,
                    devices,
                    teacher.encoder,
                    valid_phones,
                )
                for k in range(config.valid_batches)
            )

    step = train_loop(
        run,
        run_config,
        model,
        opt,
        config,
        lambda step: _step(
            wrapped,
            opt,
            views,
            targets,
            config,
            step,
            max_samples,
            devices,
            teacher.encoder,
            phones,
            weights,
        ),
        start,
        "distill",
        ("agree", "agree"),
        max_minutes,
        until_step,
        devices,
        validate,
    )
    return model.cpu(), step


def _step(
    model: nn.Module,
    opt: torch.optim.Optimizer | None,
    views: list[Sequence[np.ndarray]],
    targets: list[np.ndarray],
    config: DistillConfig,
    step: int,
    max_samples: int,
    devices: Devices,
    teacher_encoder: Encoder | None = None,
    phones: tuple[list[np.ndarray], Tensor] | None = None,
    weights: np.ndarray | None = None,
) -> dict[str, float]:
    """One step on the global batch of ``step`` (this process's rows, in ``accum``
    micro-batches); ``views[0]`` is the original audio, ``views[1:]`` perturbed copies (the same
    lengths, so every view gives the same crops for a step). Without an optimizer: the same
    loss in eval mode (validation), unmasked. CoLLD's layer loss needs ``teacher_encoder``,
    run on the original audio. ``phones``: every utterance's frame phones and the codewords'
    phone counts, for the phone loss through the tokens. ``weights``: each utterance's chance
    of being drawn (uniform without)."""
    model.train(opt is not None)
    batch = crop_batch(views[0], config.seed, step, config.batch_size, max_samples, None, weights)
    rng = np.random.default_rng([config.seed, step, 2])
    pick = np.where(
        rng.random(config.batch_size) < config.perturbed_prob,
        rng.integers(1, len(views), config.batch_size) if len(views) > 1 else 0,
        0,
    )
    waves = batch.waveforms.clone()
    for v in set(pick.tolist()) - {0}:
        chosen = torch.from_numpy(pick == v)
        other = crop_batch(
            views[v], config.seed, step, config.batch_size, max_samples, None, weights
        )
        waves[chosen] = other.waveforms[chosen]
    frames = [n_frames(int(n)) for n in batch.lengths]
    total = float(sum(frames))

    def teacher(r: int) -> Tensor:
        start = batch.frame_offsets[r]
        return torch.from_numpy(np.asarray(targets[batch.items[r]][start : start + frames[r]]))

    y_all = None if phones is None else batch.frame_labels(phones[0])[1]
    # KL, agreeing frames, layer loss, frames whose layer pick is right, phone loss through the
    # tokens, frames whose token's likeliest phone is right
    sums = torch.zeros(6)
    if opt is not None:
        opt.zero_grad(set_to_none=True)
    micro = devices.rows(config.batch_size, config.accum)
    for j, rows in enumerate(micro):
        idx = list(rows)
        width = int(batch.lengths[idx].max())
        x = waves[idx, :width].to(devices.device)
        lengths = batch.lengths[idx].to(devices.device)
        mask = None
        if opt is not None and config.mask_prob:
            rows_frames = [frames[r] for r in idx]
            mask = span_mask(
                rows_frames, n_frames(width), config.mask_prob, config.mask_length, rng
            )
            mask = mask.to(devices.device)
        with (
            torch.set_grad_enabled(opt is not None),
            devices.no_sync(model, last=j == len(micro) - 1),
            devices.autocast(),
        ):
            scores, _, mapped = model(x, lengths, mask)
            s = torch.cat([scores[row, : frames[r]].float() for row, r in enumerate(idx)])
            t = torch.cat([teacher(r) for r in idx]).float().to(devices.device)
            target = nn.functional.softmax(t / config.temperature, dim=-1)
            log_p = nn.functional.log_softmax(s / config.temperature, dim=-1)
            loss = kl = nn.functional.kl_div(log_p, target, reduction="sum")
            layer_loss, picked = torch.zeros(()), torch.zeros(())
            if mapped:
                assert teacher_encoder is not None
                original = batch.waveforms[idx, :width].to(devices.device)
                with torch.no_grad():
                    targets_by_layer, _ = teacher_encoder.layer_outputs(original, lengths)
                layer_loss, picked = _layer_loss(
                    mapped, targets_by_layer, [frames[r] for r in idx], config.layer_temperature
                )
                loss = kl + config.layer_weight * layer_loss
            unit_loss, unit_hits = torch.zeros(()), torch.zeros(())
            if phones is not None:
                assert y_all is not None
                y = torch.cat([y_all[r, : frames[r]] for r in idx]).to(devices.device)
                unit_loss = unit_label_loss(s, y, phones[1], config.temperature)
                unit_hits = (phones[1].argmax(-1)[s.argmax(-1)] == y).sum().detach()
                loss = loss + config.unit_label_weight * unit_loss
        if opt is not None:
            (loss / total * devices.world).backward()
        sums += torch.stack([
            kl.detach(), (s.argmax(-1) == t.argmax(-1)).sum(), layer_loss.detach(), picked,
            unit_loss.detach(), unit_hits,
        ]).cpu()  # fmt: skip
    if opt is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        opt.step()
    sums = devices.all_sum(sums.to(devices.device)).cpu() / total
    out = {
        "loss": float(sums[0]),
        "agree": float(sums[1]),
        "perturbed_rows": float((pick > 0).mean()),
        "audio_s": float(batch.lengths.sum()) / SAMPLE_RATE,
    }
    if config.layer_weight:
        out["layer_loss"], out["layer_acc"] = float(sums[2]), float(sums[3])
    if phones is not None:
        out["loss_unit"], out["acc_unit"] = float(sums[4]), float(sums[5])
        out["loss"] += config.unit_label_weight * out["loss_unit"]
    return out


def _layer_loss(
    mapped: list[Tensor], teacher_layers: list[Tensor], frames: list[int], temperature: float
) -> tuple[Tensor, Tensor]:
    """CoLLD's contrastive layer-to-layer loss, summed over frames (mean over student layers):
    each student frame, mapped, must be nearest (cosine, at ``temperature``) to the teacher
    layer's frame at the same time among all frames of its row; and how many frames pick it."""
    total, picked = torch.zeros(()), torch.zeros(())
    for i, student in enumerate(mapped, start=1):
        target = teacher_layers[teacher_layer(i, len(mapped), len(teacher_layers)) - 1]
        for row, n in enumerate(frames):
            a = nn.functional.normalize(student[row, :n].float(), dim=-1)
            b = nn.functional.normalize(target[row, :n].float(), dim=-1)
            logits = a @ b.T / temperature
            positive = torch.arange(n, device=logits.device)
            total = total + nn.functional.cross_entropy(logits, positive, reduction="sum")
            picked = picked + (logits.argmax(-1) == positive).sum().detach()
    return total / len(mapped), picked / len(mapped)


def export_student(
    model: Student, out: Path, name: str, teacher: TorchTokenizer, train_info: dict[str, Any]
) -> ModelDir:
    """The student as a ``spin`` tokenizer with the teacher's codebook (the same unit ids)."""
    context = model.encoder.config.context_frames
    assert context is not None
    facts = card_facts(train_info)
    how = "compressed by CoLLD (masked inputs, contrastive layer-to-layer distillation)"
    card = (
        f"# {name}\n\nStreaming-exact tokenizer "
        f"{how if len(model.layer_maps) else 'distilled'} from `{teacher.name}` "
        f"({teacher.fingerprint[:12]}), with its codebook (K={model.head.K}, the same "
        f"unit ids). A frame depends on {context[0]} frames before it and {context[1]} after "
        f"it ({20 * context[0]} / {20 * context[1]} ms; LayerNorm conv features, band attention, "
        f"a {model.encoder.config.pos_conv_kernel}-frame positional conv), so canonical windows "
        f"with at least that much left context and lookahead give exactly the full-utterance "
        f"units.\n\n## Training\n\n{facts}\n\n```\n{train_info.get('command', '')}\n```\n"
    )
    return save_encoder_tokenizer(
        out,
        name=name,
        kind="spin",
        encoder=model.encoder,
        layer=None,
        quantizer=model.head,
        train_info=train_info,
        card=card,
    )
