"""Supervised phone fine-tuning of a base encoder (``speechtok train phones``): DC-Spin's
supervised variant, frame classification on exact phone alignments.

SUPERVISED: the model learns from the corpus's phone labels, so it is not an unsupervised
tokenizer and must not be compared with one as if it were. Every layer of the base encoder
trains (conv front-end included, unless ``freeze_frontend``); a cosine head on the final
output (the layer Spin/DC-Spin put their head on and ``train kmeans --encoder`` clusters by
default) scores each 50 Hz frame against one embedding per phone class of ``PHONES``
(ARPAbet-39 + SIL), and the loss is cross-entropy against the phone at the frame's centre
(``frame_labels``, as the probe labels frames). With ``distortions`` (``DistortConfig``, as
R-Spin's perturbed views) each training crop is distorted with probability
``distort_probability`` (noises, rooms, phone line, codecs, drawn per crop, step and seed),
so the labels are learnt from channels the corpus lacks; with ``perturb_probability`` crops
are first given another speaker as Spin's views are (formants, pitch, equalizer); validation
crops stay clean. The head has HuBERT's shape (projection + label embeddings), so the result
is a ``hubert`` model directory whose units are the predicted phones: a base for ``train
kmeans --encoder`` and ``train spin|dcspin --base`` like any pretrained encoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tokenizer.audio import SAMPLE_RATE
from tokenizer.corpus.alignment import frame_labels
from tokenizer.corpus.manifest import Utterance
from tokenizer.corpus.phones import PHONES, SIL
from tokenizer.encoder.model import Encoder
from tokenizer.errors import InvalidInputError
from tokenizer.model_dir import SUPERVISED, ModelDir, card_facts
from tokenizer.quantizer import HUBERT_KEYS, CosineCodebook
from tokenizer.save import save_encoder_tokenizer
from tokenizer.seeding import rng_for
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.train.data import Batch, TrainAudio, n_frames
from tokenizer.train.devices import CPU, Devices
from tokenizer.train.loop import resume, run_identity, train_on_crops
from tokenizer.train.views import DistortConfig, NoisyViews, noisy_views, perturbed

FRAME_RATE = 50.0
"""Encoder frames per second: labels are taken at each 20 ms frame's centre."""


@dataclass(frozen=True, kw_only=True)
class PhonesConfig(DistortConfig):
    steps: int = 700
    batch_size: int = 8
    max_seconds: float = 3.0
    lr: float = 2e-4
    """Peak learning rate of every parameter (encoder and head), after ``warmup_steps``."""
    warmup_steps: int = 70
    weight_decay: float = 0.01
    clip_norm: float = 10.0
    """Gradient norm clipping (over all parameters)."""
    dropout: float = 0.1
    """Dropout in the transformer while fine-tuning (removed for inference)."""
    head_dim: int = 256
    """Width of the head's projection, where frames meet the phone embeddings."""
    temperature: float = 0.1
    """Cosine scores are divided by this before the softmax (HuBERT's logit scale)."""
    freeze_frontend: bool = False
    """Keep the base's conv front-end as it is (fairseq's fine-tuning: ``feature_grad_mult``
    0); only the transformer and the head learn."""
    perturb_probability: float = 0.0
    """Share of training crops given another speaker as Spin's views are (Praat's formant and
    pitch shift and a random equalizer), before any distortion."""
    perturb_strength: float = 1.0
    """Scale of that speaker perturbation (``ViewsConfig.perturb_strength``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.perturb_probability <= 1 or self.perturb_strength < 0:
            raise InvalidInputError(
                f"expected perturb_probability in [0, 1] and perturb_strength >= 0, found "
                f"{self.perturb_probability} and {self.perturb_strength}"
            )


def phone_targets(utt: Utterance, frames: int) -> np.ndarray:
    """Class ids (indices into ``PHONES``) of an utterance's ``frames`` 50 Hz frames."""
    if not utt.alignment:
        raise InvalidInputError(f"expected a phone alignment for {utt.id!r}, found none")
    index = {p: i for i, p in enumerate(PHONES)}
    labels = frame_labels(utt.alignment, frames, FRAME_RATE)
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise InvalidInputError(
            f"expected phone labels among ARPAbet-39 + SIL in {utt.id!r}, found {unknown}"
        )
    return np.array([index[p] for p in labels], dtype=np.int64)


class PhoneClassifier(nn.Module):
    """The base encoder (every layer trains; the conv front-end too, unless frozen) + a cosine
    head over the phone classes."""

    def __init__(self, encoder: Encoder, config: PhonesConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = CosineCodebook(
            encoder.config.embed_dim, config.head_dim, len(PHONES), HUBERT_KEYS
        )
        self.temperature = config.temperature

    def forward(self, waves: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``[B, F, len(PHONES)]`` and valid frames ``[B]``."""
        x, frames = self.encoder(waves, lengths)
        return self.head.scores(x) / self.temperature, frames


def fine_tune_encoder(base: TorchTokenizer, dropout: float) -> Encoder:
    """A trainable copy of the base's encoder with ``dropout`` in its transformer."""
    if base.layer is not None:
        raise InvalidInputError(
            f"expected a base model on its final layer (a hubert model), "
            f"found one truncated at layer {base.layer}"
        )
    config = dataclasses.replace(
        base.encoder.config, dropout=dropout, attention_dropout=dropout, dropout_input=dropout
    )
    encoder = Encoder(config)
    encoder.load_state_dict(base.encoder.state_dict())
    return encoder


def train_phones(
    run: Path,
    base: TorchTokenizer,
    utts: list[Utterance],
    root: Path,
    config: PhonesConfig,
    max_minutes: float | None = None,
    until_step: int | None = None,
    devices: Devices = CPU,
    valid: tuple[Path, list[Utterance]] | None = None,
) -> tuple[PhoneClassifier, int]:
    """Fine-tune (or resume) in ``run``; returns the model and the step reached. Stops as
    ``train_hubert`` does; batches and dropout depend only on (seed, step), so a run in pieces
    gives the same model as one run."""
    run_config = run_identity(config, utts, base=base.fingerprint)
    torch.manual_seed(config.seed)
    model = PhoneClassifier(fine_tune_encoder(base, config.dropout), config)
    model.encoder.feature_extractor.requires_grad_(not config.freeze_frontend)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=config.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
        weight_decay=config.weight_decay,
    )
    start = resume(run, run_config, model, opt)  # before reading audio: fail fast on a mismatch
    for u in utts if valid is None else [*utts, *valid[1]]:
        if not u.alignment:
            raise InvalidInputError(f"expected a phone alignment for {u.id!r}, found none")
    audio = TrainAudio(root, utts, in_memory=not config.stream_audio)
    noisy = noisy_views(utts, audio, config)
    augmenting = noisy is not None or config.perturb_probability > 0
    checked = None
    if valid is not None:
        valid_audio = TrainAudio(*valid, in_memory=not config.stream_audio)
        checked = (valid_audio, phone_frame_targets(valid[1], valid_audio.lengths))
    step = train_on_crops(
        run, run_config, model, opt, config, start,
        (audio, phone_frame_targets(utts, audio.lengths)), phones_step,
        ("phones", ("acc", "acc")), max_minutes, until_step, devices, checked,
        (lambda batch, k: augment_crops(batch, k, noisy, utts, config)) if augmenting else None,
        weights=config.draw_weights(utts),
    )  # fmt: skip
    return model.cpu(), step


def augment_crops(
    batch: Batch,
    step: int,
    noisy: NoisyViews | None,
    utts: list[Utterance],
    config: PhonesConfig,
) -> Batch:
    """``batch`` with each crop speaker-perturbed (with ``perturb_probability``) and then
    distorted (as ``noisy`` draws; None: not) as drawn for (utterance, step, row, seed)."""
    waves = batch.waveforms.clone()
    for row, (i, n) in enumerate(zip(batch.items, batch.lengths.tolist(), strict=True)):
        x = waves[row, :n].numpy()
        if not np.any(x):  # a row another process reads is silence here
            continue
        key = f"{utts[i].id}#step{step}#row{row}"
        if rng_for(key, config.seed, "phones-speaker:").random() < config.perturb_probability:
            x = perturbed(x, key, config.seed, config.perturb_strength)
        if noisy is not None:
            x = noisy.distort(x, i, key, config)
        waves[row, :n] = torch.from_numpy(x)
    return dataclasses.replace(batch, waveforms=waves)


def phone_frame_targets(utts: list[Utterance], lengths: Sequence[int]) -> list[np.ndarray]:
    """``phone_targets`` of every utterance on the encoder's frame grid (``lengths``: samples)."""
    return [phone_targets(u, n_frames(n)) for u, n in zip(utts, lengths, strict=True)]


def phones_step(
    model: nn.Module,
    opt: torch.optim.Optimizer | None,
    batch: Batch,
    labels: list[np.ndarray],
    config: PhonesConfig,
    step: int,
    devices: Devices,
) -> dict[str, float]:
    """One optimizer step on ``batch``, the global batch of ``step`` (this process's rows in
    ``accum`` micro-batches; the loss is a sum over frames divided by the global batch's frame
    count). Without an optimizer: the same statistics in eval mode, nothing learnt."""
    model.train(opt is not None)
    frame_lengths, target = batch.frame_labels(labels)
    n_valid = (target >= 0).sum().clamp(min=1)
    n_speech = ((target >= 0) & (target != PHONES.index(SIL))).sum().clamp(min=1)
    sums = torch.zeros(3)  # CE, hits, hits on speech (non-SIL) frames
    if opt is not None:
        opt.zero_grad(set_to_none=True)
    micro = devices.rows(config.batch_size, config.accum)
    for j, rows in enumerate(micro):
        idx = list(rows)
        frames = max(frame_lengths[i] for i in idx)
        waves = batch.waveforms[idx, : int(batch.lengths[idx].max())].to(devices.device)
        t = target[idx, :frames].to(devices.device)
        torch.manual_seed(config.seed * 1_000_003 + step * 1009 + devices.rank * 31 + j)  # dropout
        with (
            torch.set_grad_enabled(opt is not None),
            devices.no_sync(model, last=j == len(micro) - 1),
            devices.autocast(),
        ):
            logits, _ = model(waves, batch.lengths[idx].to(devices.device))
        ce = nn.functional.cross_entropy(
            logits.float().transpose(1, 2), t, ignore_index=-100, reduction="sum"
        )
        if opt is not None:
            (ce / n_valid * devices.world).backward()
        hit = logits.argmax(-1) == t
        speech = hit & (t != PHONES.index(SIL))
        sums += torch.stack([ce.detach(), hit.sum(), speech.sum()]).float().cpu()
    if opt is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        opt.step()
    sums = devices.all_sum(sums.to(devices.device)).cpu()
    return {
        "loss": float(sums[0] / n_valid),
        "acc": float(sums[1] / n_valid),
        "acc_speech": float(sums[2] / n_speech),
        "audio_s": float(batch.lengths.sum()) / SAMPLE_RATE,
    }


def export_phones(
    model: PhoneClassifier, out: Path, name: str, train_info: dict[str, Any]
) -> ModelDir:
    """The fine-tuned encoder as a ``hubert`` model directory whose units are the predicted
    phones; ``train_info["supervised"]`` says what labels it learnt from."""
    corpus = train_info.get("corpus", "the training corpus")
    run = train_info.get("run_config", {})
    channels = (
        f" Its training crops were distorted ({', '.join(run['distortions'])}; with probability "
        f"{run['distort_probability']:g}), its validation crops not."
        if run.get("distortions")
        else ""
    )
    if run.get("perturb_probability"):
        channels = (
            f" Its training crops were given another speaker (Spin's perturbation at strength "
            f"{run['perturb_strength']:g}; with probability {run['perturb_probability']:g})."
            + channels
        )
    layers = "every layer but the conv front-end" if run.get("freeze_frontend") else "every layer"
    info = {
        **train_info,
        "supervised": f"phone frame classification on {corpus}",
        "units": "predicted phone: index into " + " ".join(PHONES),
    }
    card = (
        f"# {name}\n\n**{SUPERVISED}.**\n\nA HuBERT-style encoder fine-tuned ({layers}) by "
        f"frame-level phone classification on the exact phone alignments of `{corpus}` "
        f"(DC-Spin's supervised variant).{channels} Its units are the phone classifier's argmax "
        f"over K={model.head.K} classes (ARPAbet-39 + SIL, in the order of `units` below); the "
        f"head is the one trained here, not the base's HuBERT head. Use it as the base encoder "
        f"for `speechtok train spin|dcspin` and `speechtok train kmeans --encoder`: whatever is "
        f"built on it is supervised too.\n\n## Training\n\n{card_facts(info)}\n\n"
        f"```\n{train_info.get('command', '')}\n```\n"
    )
    return save_encoder_tokenizer(
        out,
        name=name,
        kind="hubert",
        encoder=model.encoder,
        layer=None,
        quantizer=model.head,
        train_info=info,
        card=card,
    )
