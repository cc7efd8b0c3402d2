"""Spin and DC-Spin fine-tuning (``speechtok train spin|dcspin``): speaker-invariant units by
swapped prediction between an utterance and a speaker-perturbed copy.

Each view goes through the encoder; a head (Linear -> L2 norm) scores every frame against an
L2-normalised codebook; Sinkhorn-Knopp over all frames of the batch turns one view's scores into
balanced soft targets for the other view's softmax (temperature ``temperature``), and the two
cross-entropies are averaged. Only the top ``train_layers`` layers (and the final LayerNorm of
pre-LN models) train. DC-Spin adds an auxiliary codebook of ``K2`` codewords with its own head
on the same encoder; the losses are summed and the primary codebook gives the tokens.

With pseudo-labels (``--pseudo-labels MODEL``, R-Spin's anchor), the top layer also predicts,
from both views, a teacher tokenizer's full-utterance units of the original audio (typically
k-means on the base) through a linear head (cross-entropy, weight ``pseudo_weight``): the
swapped loss removes the speaker while this keeps the phonetic content the base had. With
phone labels instead (``--phone-labels``, SUPERVISED: DC-Spin's supervised variant keeping its
phone loss), that head predicts the phone at each frame's centre from the corpus's alignments.
``unit_label_weight`` adds the same labels predicted through the tokens themselves: each
codeword's label distribution is counted over recent steps, and the primary codebook's soft
assignment is trained to pick codewords whose labels match (PNMI's own objective).

R-Spin (``speechtok train rspin``) adds, on top of pseudo-labels: a perturbed view that is also
distorted (noise, babble, music, rooms, phone line, codecs: ``distortions``), all layers
trainable, and acoustic pieces (``piece_vocab``): BPE over the pseudo-labels' deduplicated units
(``tokenizer.pieces``), every frame predicting the piece it falls in from the top layer, from
both views (cross-entropy, weight ``piece_weight``).

The two views of each step come from ``tokenizer.train.views``: by default the frozen bottom
layers' outputs for the original and ``views`` perturbed copies of every training utterance,
computed once into ``RUN/cache``; or, without the cache, crops perturbed each step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tokenizer.corpus.manifest import Utterance
from tokenizer.corpus.phones import PHONES
from tokenizer.encoder.model import Encoder
from tokenizer.errors import InvalidInputError
from tokenizer.model_dir import ModelDir, card_facts
from tokenizer.pieces import frame_pieces, processor, train_pieces
from tokenizer.protocol import Tokenizer
from tokenizer.quantizer import AUX_KEYS, CosineCodebook
from tokenizer.save import save_encoder_tokenizer
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.train.data import (
    Prefetched,
    TrainAudio,
    compute_targets,
    n_frames,
    utterance_digest,
)
from tokenizer.train.devices import CPU, Devices
from tokenizer.train.loop import (
    VALID_SEED,
    mean_stats,
    resume,
    run_identity,
    train_loop,
)
from tokenizer.train.phones import phone_frame_targets
from tokenizer.train.views import (
    FrozenCache,
    ViewsBatch,
    ViewsConfig,
    build_cache,
    noisy_views,
    views_batch,
)
from tokenizer.windows import FIELD, HOP

UNIT_DECAY = 0.95
"""Per-step decay of the (codeword, label) counts of the label loss through the tokens: they
follow the codebook as it moves, over about 20 steps."""


@dataclass(frozen=True, kw_only=True)
class SpinConfig(ViewsConfig):
    K1: int = 100
    """Primary codebook size: the vocabulary of the tokens."""
    K2: int = 0
    """Auxiliary codebook size (DC-Spin); 0 trains plain Spin."""
    train_layers: int = 2
    """Top encoder layers that train; the rest are frozen and cached."""
    head_dim: int = 256
    temperature: float = 0.1
    sinkhorn_eps: float = 0.02
    sinkhorn_iters: int = 3
    codebook_init: Literal["random", "kmeans"] = "random"
    """``kmeans``: start every codebook at k-means centroids of its head's (normalised)
    projections of the base's frames, so training starts from the k-means tokens of the base
    instead of random codewords."""
    init_utterances: int = 300
    """Training utterances (a seeded sample) whose frames the k-means initialisation clusters."""
    pseudo_weight: float = 1.0
    """Weight of the pseudo-label loss (only with ``--pseudo-labels``)."""
    unit_label_weight: float = 0.0
    """Weight of the label loss through the tokens (needs ``--pseudo-labels`` or
    ``--phone-labels``): each frame's label is predicted from its primary codebook's
    assignment alone, ``p(y|x) = sum_k p(k|x) P(y|k)`` with ``p(k|x)`` the softmax of the
    scores at ``temperature`` and ``P(y|k)`` counted over recent steps, so that the codewords
    themselves, not only the encoder's features, keep the labels apart; 0 turns it off."""
    piece_vocab: int = 0
    """R-Spin's acoustic pieces: BPE pieces over the pseudo-labels' deduplicated units that
    every frame predicts (needs ``--pseudo-labels``); 0 turns them off."""
    piece_weight: float = 1.0
    """Weight of the acoustic-piece loss."""
    sinkhorn_prior: float = 0.0
    """The share of the frames Sinkhorn's targets give each codeword: 0, an equal share (SwAV,
    Spin); p > 0, a share proportional to n_k^p, with n_k the frames the k-means
    initialisation gave codeword k (needs ``codebook_init: kmeans``): targets then keep the
    skew of natural sound frequencies (silence, schwa) instead of splitting frequent sounds
    across codewords to fill rare ones."""


@torch.no_grad()
def sinkhorn(
    scores: Tensor, eps: float, iters: int, devices: Devices = CPU, prior: Tensor | None = None
) -> Tensor:
    """Balanced soft assignments ``[N, K]`` (rows sum to 1) from scores ``[N, K]``: every
    codeword gets about N/K of the frames, or N * ``prior[k]`` with a ``prior`` (summing to 1)
    (SwAV's Sinkhorn-Knopp, in float64 so that ``exp(score / eps)`` neither overflows nor
    underflows to all-zero rows). Under data parallelism the N frames are those of every
    process (their sums are all-reduced)."""
    top = devices.all_max(scores.max().double())
    q = torch.exp((scores.double() - top) / eps).T  # [K, N]
    q /= devices.all_sum(q.sum())
    k = q.shape[0]
    n = devices.all_sum(torch.tensor(float(q.shape[1]), device=q.device))
    for _ in range(iters):
        q /= devices.all_sum(q.sum(dim=1, keepdim=True)).clamp(min=1e-300)
        if prior is None:
            q /= k
        else:
            q *= prior.to(q)[:, None]
        q /= q.sum(dim=0, keepdim=True).clamp(min=1e-300)
        q /= n
    return (q * n).T.float()


class SpinHead(CosineCodebook):
    """The Spin quantizer (Linear -> L2 norm, L2-normalised codebook) and its training loss."""

    def swapped_loss(
        self, sa: Tensor, sb: Tensor, qa: Tensor, qb: Tensor, temperature: float
    ) -> Tensor:
        """Swapped-prediction loss summed over frames: view a's scores ``sa [N, K]`` predict
        view b's Sinkhorn targets ``qb``, and the other way round."""
        la = nn.functional.log_softmax(sa.float() / temperature, dim=-1)
        lb = nn.functional.log_softmax(sb.float() / temperature, dim=-1)
        return -0.5 * ((qb * la).sum() + (qa * lb).sum())


class SpinModel(nn.Module):
    """The trainable top of the encoder plus the head(s)."""

    unit_labels: Tensor | None

    def __init__(
        self, encoder: Encoder, config: SpinConfig, pseudo_K: int = 0, pieces_K: int = 0
    ) -> None:
        super().__init__()
        self.encoder = encoder
        dim = encoder.config.embed_dim
        self.frozen = encoder.config.num_layers - config.train_layers
        self.head = SpinHead(dim, config.head_dim, config.K1)
        self.aux = SpinHead(dim, config.head_dim, config.K2, AUX_KEYS) if config.K2 else None
        for head in self.heads() if config.sinkhorn_prior else []:  # checkpointed with the run
            head.register_buffer("prior", torch.full((head.K,), 1.0 / head.K, dtype=torch.float64))
        self.pseudo = nn.Linear(dim, pseudo_K) if pseudo_K else None
        """The pseudo-label head (training only: not exported)."""
        self.pieces = nn.Linear(dim, pieces_K) if pieces_K else None
        """The acoustic-piece head (training only: not exported)."""
        unit_K = pseudo_K if config.unit_label_weight else 0
        self.register_buffer("unit_labels", torch.zeros(config.K1, unit_K) if unit_K else None)
        """Decayed soft counts ``[K1, labels]`` of (codeword, label) pairs seen in training,
        the ``P(label | codeword)`` of the label loss through the tokens (training only: not
        exported; checkpointed with the run)."""
        for p in encoder.parameters():
            p.requires_grad_(False)
        for layer in encoder.transformer.layers[self.frozen :]:
            for p in layer.parameters():
                p.requires_grad_(True)
        if encoder.config.layer_norm_first:
            for p in encoder.transformer.layer_norm.parameters():
                p.requires_grad_(True)

    def top(self, h: Tensor, frames: Tensor) -> Tensor:
        n = self.encoder.config.num_layers
        return self.encoder.final_norm(self.encoder.run_layers(h, frames, self.frozen, n)[-1])

    @torch.no_grad()
    def frozen_layers(self, waves: Tensor, frames: Tensor) -> Tensor:
        """Outputs ``[B, F, D]`` of the frozen bottom layers for audio ``[B, T]`` whose rows
        have ``frames`` valid frames."""
        samples = (frames - 1) * HOP + FIELD
        h, lengths = self.encoder.embed(waves, samples.to(waves.device))
        if self.frozen:
            h = self.encoder.run_layers(h, lengths, 0, self.frozen)[-1]
        return h

    def heads(self) -> list[SpinHead]:
        return [self.head] if self.aux is None else [self.head, self.aux]

    def label_heads(self) -> list[nn.Linear]:
        """The heads predicting per-frame labels, in the order of the label columns."""
        return [h for h in (self.pseudo, self.pieces) if h is not None]

    def forward(
        self, ha: Tensor, hb: Tensor, frames: Tensor
    ) -> tuple[list[tuple[Tensor, Tensor]], list[tuple[Tensor, Tensor]]]:
        """Scores ``([N, K], [N, K])`` of both views' valid frames, one pair per head, from the
        frozen layers' outputs ``[B, F, D]`` of the two views; and both views' logits of each
        label head (pseudo-labels, then acoustic pieces)."""
        valid = torch.arange(ha.shape[1], device=ha.device)[None, :] < frames[:, None]
        xa, xb = self.top(ha, frames)[valid], self.top(hb, frames)[valid]
        logits = [(h(xa), h(xb)) for h in self.label_heads()]
        return [(h.scores(xa), h.scores(xb)) for h in self.heads()], logits


def train_spin(
    run: Path,
    base: TorchTokenizer,
    utts: list[Utterance],
    root: Path,
    config: SpinConfig,
    max_minutes: float | None = None,
    until_step: int | None = None,
    devices: Devices = CPU,
    valid: tuple[Path, list[Utterance]] | None = None,
    pseudo: Tokenizer | None = None,
    phone_labels: bool = False,
) -> tuple[SpinModel, int]:
    """Fine-tune (or resume) in ``run``; returns the model and the step reached. Stops as
    ``train_hubert`` does. The frozen-layer cache is built on the CPU by the main process.
    ``pseudo``: the teacher whose units of the original audio the top layer also predicts;
    ``phone_labels`` (SUPERVISED): the top layer predicts the phones of the utterances'
    alignments instead."""
    if not 1 <= config.train_layers <= base.encoder.config.num_layers:
        raise InvalidInputError(
            f"expected train_layers in 1..{base.encoder.config.num_layers}, "
            f"found {config.train_layers}"
        )
    if base.layer is not None:
        raise InvalidInputError(
            f"expected a base model on its final layer (a hubert model), "
            f"found one truncated at layer {base.layer}"
        )
    if pseudo is not None and phone_labels:
        raise InvalidInputError(
            "expected one source of per-frame labels, found both pseudo-labels and phone labels"
        )
    sources = {"base": base.fingerprint}
    if pseudo is not None:
        sources["pseudo_labels"] = pseudo.fingerprint
    if phone_labels:
        sources["phone_labels"] = "alignments"
    run_config = run_identity(config, utts, **sources)
    torch.manual_seed(config.seed)
    if config.sinkhorn_prior and config.codebook_init != "kmeans":
        raise InvalidInputError(
            f"expected codebook_init: kmeans with sinkhorn_prior {config.sinkhorn_prior:g} (the "
            f"prior is the k-means initialisation's cluster sizes), found {config.codebook_init}"
        )
    if config.unit_label_weight and pseudo is None and not phone_labels:
        raise InvalidInputError(
            f"expected --pseudo-labels or --phone-labels with unit_label_weight "
            f"{config.unit_label_weight:g} (the tokens predict those labels), found neither"
        )
    if config.piece_vocab and pseudo is None and not phone_labels:
        raise InvalidInputError(
            f"expected --pseudo-labels or --phone-labels with piece_vocab {config.piece_vocab} "
            "(acoustic pieces are BPE over the labels), found neither"
        )
    label_K = pseudo.K if pseudo is not None else len(PHONES) if phone_labels else 0
    model = SpinModel(base.encoder, config, label_K, config.piece_vocab)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.98), weight_decay=0.0)
    start = resume(run, run_config, model, opt)  # before the cache: fail fast on a mismatch
    audio = TrainAudio(root, utts, in_memory=not config.stream_audio)
    frames = [n_frames(n) for n in audio.lengths]
    labels = (
        compute_targets(pseudo, utts, audio)
        if pseudo is not None
        else phone_frame_targets(utts, audio.lengths)
        if phone_labels
        else None
    )
    if labels is not None and config.piece_vocab:
        labels = with_pieces(run, labels, config.piece_vocab)
    noisy = None if config.cache else noisy_views(utts, audio, config)  # else: build_cache
    if start == 0 and config.codebook_init == "kmeans":
        init_codebooks(model, audio, config)
    cache: FrozenCache | None = None
    if config.cache:
        cache_key = {
            "base": base.fingerprint,
            "frozen": model.frozen,
            "views": config.views,
            "seed": config.seed,
            "utterances": utterance_digest(utts),
        }
        if config.distortions:
            cache_key["distort"] = config.distort_key()
        if config.perturb_strength != 1:
            cache_key["perturb_strength"] = config.perturb_strength
        devices.first(
            lambda: build_cache(
                run / "cache",
                cache_key,
                base.encoder,
                model.frozen,
                utts,
                audio,
                config,
                lambda: noisy_views(utts, audio, config),
            )
        )
        cache = FrozenCache(run / "cache", config.views)
    ids = [u.id for u in utts]
    micro = devices.rows(config.batch_size, config.accum)
    weights = config.draw_weights(utts)
    batches = Prefetched(
        lambda step: views_batch(
            cache, audio, ids, frames, micro, config, step, labels, noisy, weights
        ),
        start,
        config.steps,
        config.workers,
    )
    wrapped = devices.wrap(model, opt)
    validate = None
    if valid is not None:  # fixed crops and Praat views (undistorted) of the validation set
        valid_audio = TrainAudio(*valid, in_memory=not config.stream_audio)
        fixed = dataclasses.replace(config, seed=config.seed + VALID_SEED)
        valid_ids, valid_frames = (
            [u.id for u in valid[1]],
            [n_frames(n) for n in valid_audio.lengths],
        )
        valid_set = [
            views_batch(None, valid_audio, valid_ids, valid_frames, micro, fixed, k)
            for k in range(config.valid_batches)
        ]

        def validate() -> dict[str, float]:
            return mean_stats(spin_step(model, wrapped, None, b, fixed, devices) for b in valid_set)

    step = train_loop(
        run,
        run_config,
        model,
        opt,
        config,
        lambda step: spin_step(model, wrapped, opt, batches.get(step), config, devices),
        start,
        "rspin" if config.distortions else "dcspin" if config.K2 else "spin",
        ("agree", "agree"),
        max_minutes,
        until_step,
        devices,
        validate,
    )
    return model.cpu(), step


def with_pieces(run: Path, labels: list[np.ndarray], vocab: int) -> list[np.ndarray]:
    """Labels ``[F, 2]``: the pseudo-labels and the acoustic piece of each frame, from BPE of
    ``vocab`` pieces over the deduplicated pseudo-labels (kept as ``run/pieces.model``)."""
    model = train_pieces(labels, vocab)
    run.mkdir(parents=True, exist_ok=True)
    (run / "pieces.model").write_bytes(model)
    sp = processor(model)
    return [np.stack([y, frame_pieces(sp, y)], axis=1) for y in labels]


@torch.no_grad()
def init_codebooks(model: SpinModel, audio: TrainAudio, config: SpinConfig) -> None:
    """Set each head's codebook to k-means centroids of its normalised projections of the
    (untrained) encoder's frames of ``config.init_utterances`` seeded training utterances."""
    from tokenizer.kmeans import KmeansConfig, fit_kmeans

    rng = np.random.default_rng([config.seed, 0xC0DE])
    pick = rng.choice(len(audio), min(len(audio), config.init_utterances), replace=False)
    feats = []
    for i in sorted(pick.tolist()):
        wave = torch.from_numpy(audio[i].astype(np.float32) / 32767.0)[None]
        frames = torch.tensor([n_frames(wave.shape[1])])
        feats.append(model.top(model.frozen_layers(wave, frames), frames)[0])
    x = torch.cat(feats)
    for head in model.heads():
        z = nn.functional.normalize(head.proj(x), dim=-1).numpy()
        if len(z) < head.K:
            raise InvalidInputError(
                f"expected at least K={head.K} frames to initialise the codebook, found "
                f"{len(z)} (raise init_utterances)"
            )
        km = KmeansConfig(K=head.K, seed=config.seed, standardize=False, n_init=1)
        centroids = fit_kmeans(z, km)["centroids"]
        head.codebook.copy_(torch.from_numpy(centroids))
        if config.sinkhorn_prior:
            unit = centroids / np.linalg.norm(centroids, axis=1, keepdims=True).clip(1e-12)
            chosen = (z @ unit.T).argmax(1)  # the codeword the head's scores pick at step 0
            counts = np.bincount(chosen, minlength=head.K).astype(np.float64) + 1.0
            share = counts**config.sinkhorn_prior
            head.get_buffer("prior").copy_(torch.from_numpy(share / share.sum()))


def spin_step(
    model: SpinModel,
    wrapped: nn.Module,
    opt: torch.optim.Optimizer | None,
    batch: ViewsBatch,
    config: SpinConfig,
    devices: Devices,
) -> dict[str, float]:
    """One optimizer step on ``batch``. Sinkhorn targets come from every frame of the global
    batch (all processes, all micro-batches: with more than one micro-batch, a gradient-free
    pass computes them first); losses are sums over this process's frames divided by the
    global frame count. Without an optimizer: the same losses in eval mode (validation)."""
    model.train(opt is not None)
    total = batch.total
    inputs = []
    for a, b, fl in zip(batch.a, batch.b, batch.frames, strict=True):
        a, b = a.to(devices.device), b.to(devices.device)
        if batch.audio:  # no cache: the frozen layers run now, without gradients
            a, b = (model.frozen_layers(x, fl) for x in (a, b))
        inputs.append((a, b, fl))
    if len(inputs) > 1:
        with torch.no_grad(), devices.autocast():
            first = [model(ha, hb, fl.to(devices.device))[0] for ha, hb, fl in inputs]
        per_head = [[s for part in first for s in part[h]] for h in range(len(first[0]))]
        sizes = [int(fl.sum()) for _, _, fl in inputs]
        targets = _targets(per_head, sizes, config, devices, model.heads())
    if opt is not None:
        opt.zero_grad(set_to_none=True)
    sums = torch.zeros(2 * len(model.heads()))  # per head: loss, agreeing frames
    label_names = [n for n, h in (("pseudo", model.pseudo), ("pieces", model.pieces)) if h]
    weights = {"pseudo": config.pseudo_weight, "pieces": config.piece_weight}
    label_sums = torch.zeros(2 * len(label_names))  # per label head: loss, correct (view b)
    unit_sums = torch.zeros(2)  # label loss through the tokens, tokens' labels correct (view b)
    used = torch.zeros(model.head.K, device=devices.device)  # primary codewords chosen
    # this step's soft (codeword, label) counts of the label loss through the tokens
    shape = model.unit_labels.shape if model.unit_labels is not None else (0,)
    counts = torch.zeros(shape, device=devices.device)
    for j, (ha, hb, fl) in enumerate(inputs):
        with (
            torch.set_grad_enabled(opt is not None),
            devices.no_sync(wrapped, last=j == len(inputs) - 1),
            devices.autocast(),
        ):
            scored, logits = wrapped(ha, hb, fl.to(devices.device))
        if len(inputs) == 1:
            targets = _targets([[sa.detach(), sb.detach()] for sa, sb in scored],
                               [int(fl.sum())], config, devices, model.heads())  # fmt: skip
        loss = torch.zeros((), device=devices.device)
        for h, ((sa, sb), (qa, qb)) in enumerate(zip(scored, targets[j], strict=True)):
            part = model.heads()[h].swapped_loss(sa, sb, qa, qb, config.temperature)
            loss = loss + part / total
            sums[2 * h] += float(part.detach())
            sums[2 * h + 1] += float((sa.argmax(-1) == sb.argmax(-1)).sum())
        if label_names and batch.labels is not None:
            ys = _valid_labels(batch.labels[j], fl).to(devices.device)
            for c, (name, (la, lb)) in enumerate(zip(label_names, logits, strict=True)):
                y = ys if ys.dim() == 1 else ys[:, c]
                part = 0.5 * (F.cross_entropy(la.float(), y, reduction="sum")
                              + F.cross_entropy(lb.float(), y, reduction="sum"))  # fmt: skip
                loss = loss + weights[name] * part / total
                label_sums[2 * c] += float(part.detach())
                label_sums[2 * c + 1] += float((lb.argmax(-1) == y).sum())
            if model.unit_labels is not None:
                y = ys if ys.dim() == 1 else ys[:, 0]
                sa, sb = scored[0]
                table, t = model.unit_labels, config.temperature
                part = 0.5 * (unit_label_loss(sa, y, table, t) + unit_label_loss(sb, y, table, t))
                loss = loss + config.unit_label_weight * part / total
                unit_sums[0] += float(part.detach())
                best = table.argmax(-1)  # each codeword's likeliest label
                unit_sums[1] += float((best[sb.argmax(-1)] == y).sum())
                for s in (sa, sb):
                    soft = F.softmax(s.detach().float() / t, dim=-1)
                    counts.index_add_(1, y, soft.T)
        if opt is not None:
            (loss * devices.world).backward()
        used[scored[0][0].argmax(-1)] = 1.0
    if opt is not None:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 10.0)
        opt.step()
        if model.unit_labels is not None and batch.labels is not None:
            model.unit_labels.mul_(UNIT_DECAY).add_(devices.all_sum(counts))
    sums = devices.all_sum(sums) / total
    stats = {"loss": float(sums[0::2].sum()), "loss_k1": float(sums[0]), "agree": float(sums[1])}
    if model.aux is not None:
        stats.update(loss_k2=float(sums[2]), agree_k2=float(sums[3]))
    if label_names and batch.labels is not None:
        label_sums = devices.all_sum(label_sums) / total
        for c, name in enumerate(label_names):
            stats[f"loss_{name}"] = float(label_sums[2 * c])
            stats[f"acc_{name}"] = float(label_sums[2 * c + 1])
            stats["loss"] += weights[name] * stats[f"loss_{name}"]
        if model.unit_labels is not None:
            unit_sums = devices.all_sum(unit_sums) / total
            stats.update(loss_unit=float(unit_sums[0]), acc_unit=float(unit_sums[1]))
            stats["loss"] += config.unit_label_weight * stats["loss_unit"]
    return {**stats, "codewords_used": float(devices.all_max(used).sum())}


def unit_label_loss(scores: Tensor, y: Tensor, counts: Tensor, temperature: float) -> Tensor:
    """Cross-entropy summed over frames of labels ``y [N]`` predicted through the tokens:
    ``-log sum_k p(k|x) P(y|k)``, with ``p(k|x)`` the softmax of ``scores [N, K]`` at
    ``temperature`` and ``P(y|k)`` the rows of ``counts [K, L]`` (label counts per codeword)
    normalised, plus one count spread over the labels (a codeword never seen says nothing)."""
    log_pk = F.log_softmax(scores.float() / temperature, dim=-1)
    smoothed = counts.float() + 1.0 / counts.shape[1]
    log_py = (smoothed / smoothed.sum(-1, keepdim=True)).log().T[y]  # [N, K]: log P(y_n | k)
    return -torch.logsumexp(log_pk + log_py, dim=-1).sum()


def _valid_labels(labels: Tensor, frames: Tensor) -> Tensor:
    """The labels ``[B, F]`` (or ``[B, F, C]``) of the valid frames, flattened as the scores
    are."""
    valid = torch.arange(labels.shape[1])[None, :] < frames[:, None]
    return labels[valid]


def _targets(
    scores: list[list[Tensor]],
    sizes: list[int],
    config: SpinConfig,
    devices: Devices,
    heads: list[SpinHead],
) -> list[list[tuple[Tensor, Tensor]]]:
    """Sinkhorn targets per micro-batch and head, from ``scores[head]`` = the micro-batches'
    ``[sa, sb, sa, sb, ...]`` (valid frames; ``sizes`` frames each)."""
    out: list[list[tuple[Tensor, Tensor]]] = [[] for _ in sizes]
    for parts, head in zip(scores, heads, strict=True):
        prior = getattr(head, "prior", None)
        eps, iters = config.sinkhorn_eps, config.sinkhorn_iters
        qa = sinkhorn(torch.cat(parts[0::2]), eps, iters, devices, prior)
        qb = sinkhorn(torch.cat(parts[1::2]), eps, iters, devices, prior)
        for j, (a, b) in enumerate(zip(qa.split(sizes), qb.split(sizes), strict=True)):
            out[j].append((a, b))
    return out


def export_spin(
    model: SpinModel, out: Path, name: str, config: SpinConfig, train_info: dict[str, Any]
) -> ModelDir:
    kind = "dcspin" if model.aux is not None else "spin"
    facts = card_facts(train_info)
    what = (
        f"DC-Spin (primary codebook K1={config.K1} gives the tokens, auxiliary K2={config.K2})"
        if model.aux is not None
        else f"Spin (codebook K={config.K1})"
    )
    if config.distortions:
        what = (
            f"R-Spin: {what}, its perturbed view also distorted ({', '.join(config.distortions)}; "
            f"SNR {config.snr_db[0]:g} to {config.snr_db[1]:g} dB), with pseudo-labels"
            + (f" and {config.piece_vocab} acoustic pieces" if config.piece_vocab else "")
        )
    card = (
        f"# {name}\n\n{what}: speaker-invariant units from a HuBERT-style encoder fine-tuned "
        f"by swapped prediction between original and speaker-perturbed audio (top "
        f"{config.train_layers} layers trained).\n\n## Training\n\n{facts}\n\n"
        f"```\n{train_info.get('command', '')}\n```\n"
    )
    return save_encoder_tokenizer(
        out,
        name=name,
        kind=kind,
        encoder=model.encoder,
        layer=None,
        quantizer=model.head,
        aux=model.aux,
        train_info=train_info,
        card=card,
    )
