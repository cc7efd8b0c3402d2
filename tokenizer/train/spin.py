"""Spin and DC-Spin fine-tuning (``speechtok train spin|dcspin``): speaker-invariant units by
swapped prediction between an utterance and a speaker-perturbed copy.

Each view goes through the encoder; a head (Linear -> L2 norm) scores every frame against an
L2-normalised codebook; Sinkhorn-Knopp over all frames of the batch turns one view's scores into
balanced soft targets for the other view's softmax (temperature ``temperature``), and the two
cross-entropies are averaged. Only the top ``train_layers`` layers (and the final LayerNorm of
pre-LN models) train. DC-Spin adds an auxiliary codebook of ``K2`` codewords with its own head
on the same encoder; the losses are summed and the primary codebook gives the tokens.

The frozen bottom layers' outputs for the original and ``views`` perturbed copies of every
training utterance are computed once and kept in ``RUN/cache`` (float16 memmaps), so the
perturbation (Praat, the slow part) and the frozen layers cost nothing per step.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
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
from tokenizer.encoder.model import Encoder
from tokenizer.errors import InvalidInputError
from tokenizer.model_dir import ModelDir, card_facts
from tokenizer.quantizer import AUX_KEYS, CosineCodebook
from tokenizer.save import save_encoder_tokenizer
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.train.data import Prefetched, crop, load_audio, n_frames, utterance_digest
from tokenizer.train.devices import CPU, Devices
from tokenizer.train.loop import (
    VALID_SEED,
    TrainConfig,
    mean_stats,
    resume,
    run_identity,
    train_loop,
)
from tokenizer.windows import FIELD, HOP


@dataclass(frozen=True, kw_only=True)
class SpinConfig(TrainConfig):
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
    views: int = 2
    """Speaker-perturbed copies per utterance; each step pairs the original with one of them.
    Without the cache, a view is a fresh Praat perturbation of the step's crop."""
    cache: bool = True
    """Compute the frozen layers' outputs of every view once into ``RUN/cache`` (fast steps;
    float16, ~100 KB per second of audio and view for a base-size model); off for corpora too
    large for that disk or on GPUs, where running the frozen layers each step is cheap."""
    perturb_jobs: int = 2


@torch.no_grad()
def sinkhorn(scores: Tensor, eps: float, iters: int, devices: Devices = CPU) -> Tensor:
    """Balanced soft assignments ``[N, K]`` (rows sum to 1) from scores ``[N, K]``: every
    codeword gets about N/K of the frames (SwAV's Sinkhorn-Knopp, in float64 so that
    ``exp(score / eps)`` neither overflows nor underflows to all-zero rows). Under data
    parallelism the N frames are those of every process (their sums are all-reduced)."""
    top = devices.all_max(scores.max().double())
    q = torch.exp((scores.double() - top) / eps).T  # [K, N]
    q /= devices.all_sum(q.sum())
    k = q.shape[0]
    n = devices.all_sum(torch.tensor(float(q.shape[1]), device=q.device))
    for _ in range(iters):
        q /= devices.all_sum(q.sum(dim=1, keepdim=True)).clamp(min=1e-300)
        q /= k
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


class FrozenCache:
    """Frozen-layer outputs of every utterance and view, as float16 memmaps in ``folder``."""

    def __init__(self, folder: Path, views: int) -> None:
        self.offsets = np.load(folder / "offsets.npy")
        self.arrays = [np.load(folder / f"view{v}.npy", mmap_mode="r") for v in range(views + 1)]

    def get(self, view: int, item: int, start: int, frames: int) -> np.ndarray:
        base = int(self.offsets[item]) + start
        return np.asarray(self.arrays[view][base : base + frames], dtype=np.float32)


def build_cache(
    folder: Path,
    key: dict[str, Any],
    encoder: Encoder,
    frozen: int,
    utts: Sequence[Utterance],
    audio: Sequence[np.ndarray],
    config: SpinConfig,
) -> None:
    """Perturb every utterance ``config.views`` times and store the frozen layers' outputs."""
    meta = folder / "cache.json"
    if meta.is_file() and json.loads(meta.read_text()) == key:
        return
    folder.mkdir(parents=True, exist_ok=True)
    meta.unlink(missing_ok=True)
    lengths = [n_frames(len(a)) for a in audio]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    np.save(folder / "offsets.npy", offsets)
    dim = encoder.config.embed_dim
    for view in range(config.views + 1):
        out = np.lib.format.open_memmap(
            folder / f"view{view}.npy", mode="w+", dtype=np.float16, shape=(int(offsets[-1]), dim)
        )
        views = view_audio(utts, audio, view, config.seed, config.perturb_jobs)
        for i, x in enumerate(
            tqdm(
                views, desc=f"frozen layers, view {view}", unit="utt", file=sys.stderr, leave=False
            )
        ):
            h = _frozen_output(encoder, frozen, x)
            out[offsets[i] : offsets[i] + len(h)] = h.astype(np.float16)
        out.flush()
        del out
    meta.write_text(json.dumps(key))


def view_audio(
    utts: Sequence[Utterance], audio: Sequence[np.ndarray], view: int, seed: int, jobs: int
) -> list[np.ndarray]:
    """View ``view`` of every utterance as float32: 0 the original, 1.. speaker-perturbed
    copies (seeded by utterance id, view and ``seed``; Praat in ``jobs`` processes)."""
    floats = [a.astype(np.float32) / 32767.0 for a in audio]
    if view == 0:
        return floats
    tasks = [(u.id, x, view, seed) for u, x in zip(utts, floats, strict=True)]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return list(
            tqdm(
                pool.imap(_perturb_job, tasks, chunksize=8),
                total=len(tasks),
                desc=f"perturb view {view}",
                unit="utt",
                file=sys.stderr,
                leave=False,
            )
        )


def _perturb_job(job: tuple[str, np.ndarray, int, int]) -> np.ndarray:
    from tokenizer.perturb import perturb_speaker, rng_for  # Praat: only where views are made

    uid, x, view, seed = job
    return perturb_speaker(x, rng_for(f"{uid}#view{view}", seed))[0]


@torch.inference_mode()
def _frozen_output(encoder: Encoder, frozen: int, x: np.ndarray) -> np.ndarray:
    h, lengths = encoder.embed(torch.from_numpy(x)[None, :])
    if frozen:
        h = encoder.run_layers(h, lengths, 0, frozen)[-1]
    return h[0].numpy()


class SpinModel(nn.Module):
    """The trainable top of the encoder plus the head(s)."""

    def __init__(self, encoder: Encoder, config: SpinConfig) -> None:
        super().__init__()
        self.encoder = encoder
        dim = encoder.config.embed_dim
        self.frozen = encoder.config.num_layers - config.train_layers
        self.head = SpinHead(dim, config.head_dim, config.K1)
        self.aux = SpinHead(dim, config.head_dim, config.K2, AUX_KEYS) if config.K2 else None
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

    def forward(self, ha: Tensor, hb: Tensor, frames: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Scores ``([N, K], [N, K])`` of both views' valid frames, one pair per head, from the
        frozen layers' outputs ``[B, F, D]`` of the two views."""
        valid = torch.arange(ha.shape[1], device=ha.device)[None, :] < frames[:, None]
        xa, xb = self.top(ha, frames)[valid], self.top(hb, frames)[valid]
        return [(h.scores(xa), h.scores(xb)) for h in self.heads()]


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
) -> tuple[SpinModel, int]:
    """Fine-tune (or resume) in ``run``; returns the model and the step reached. Stops as
    ``train_hubert`` does. The frozen-layer cache is built on the CPU by the main process."""
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
    run_config = run_identity(config, utts, base=base.fingerprint)
    torch.manual_seed(config.seed)
    model = SpinModel(base.encoder, config)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.98), weight_decay=0.0)
    start = resume(run, run_config, model, opt)  # before the cache: fail fast on a mismatch
    audio = load_audio(root, utts, in_memory=not config.stream_audio)
    frames = [n_frames(n) for n in audio.lengths]
    cache: FrozenCache | None = None
    if config.cache:
        cache_key = {
            "base": base.fingerprint,
            "frozen": model.frozen,
            "views": config.views,
            "seed": config.seed,
            "utterances": utterance_digest(utts),
        }
        devices.first(
            lambda: build_cache(
                run / "cache", cache_key, base.encoder, model.frozen, utts, audio, config
            )
        )
        cache = FrozenCache(run / "cache", config.views)
    ids = [u.id for u in utts]
    micro = devices.rows(config.batch_size, config.accum)
    batches = Prefetched(
        lambda step: views_batch(cache, audio, ids, frames, micro, config, step),
        start,
        config.steps,
        config.workers,
    )
    wrapped = devices.wrap(model, opt)
    validate = None
    if valid is not None:  # fixed crops and Praat views of the validation set, made once
        valid_audio = load_audio(*valid, in_memory=not config.stream_audio)
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
        "dcspin" if config.K2 else "spin",
        ("agree", "agree"),
        max_minutes,
        until_step,
        devices,
        validate,
    )
    return model.cpu(), step


@dataclass(frozen=True)
class ViewsBatch:
    """The two views of a step's global batch, cut into this process's micro-batches: frozen
    layers' outputs ``[B, F, D]`` (from the cache) or audio ``[B, T]`` (computed each step)."""

    a: list[Tensor]
    b: list[Tensor]
    frames: list[Tensor]
    """Valid frames per row, per micro-batch."""
    total: float
    """Frames of the whole global batch."""
    audio: bool


def views_batch(
    cache: FrozenCache | None,
    audio: Sequence[np.ndarray],
    ids: list[str],
    frames: list[int],
    micro: list[range],
    config: SpinConfig,
    step: int,
) -> ViewsBatch:
    """Step ``step``'s crops (from ``(seed, step)`` alone) of the original and a perturbed view:
    read from the frozen-layer cache, or (no cache) cut from the audio and perturbed here by
    Praat (a fresh speaker per step; in the batch workers when there are some)."""
    rng = np.random.default_rng([config.seed, step])
    items = rng.integers(0, len(frames), config.batch_size)
    views = rng.integers(1, config.views + 1, config.batch_size)
    max_frames = n_frames(int(config.max_seconds * SAMPLE_RATE))
    lens, starts = [], []
    for i in items:
        f = min(frames[i], max_frames)
        starts.append(int(rng.integers(0, frames[i] - f + 1)))
        lens.append(f)
    out = ViewsBatch([], [], [], float(sum(lens)), cache is None)
    for rows in micro:
        fl = torch.tensor([lens[r] for r in rows])
        if cache is not None:
            width, dim = int(fl.max()), cache.arrays[0].shape[1]
            ha, hb = torch.zeros(len(rows), width, dim), torch.zeros(len(rows), width, dim)
            for row, r in enumerate(rows):
                i, s, f = int(items[r]), starts[r], lens[r]
                ha[row, :f] = torch.from_numpy(cache.get(0, i, s, f))
                hb[row, :f] = torch.from_numpy(cache.get(int(views[r]), i, s, f))
        else:
            width = (int(fl.max()) - 1) * HOP + FIELD
            ha, hb = torch.zeros(len(rows), width), torch.zeros(len(rows), width)
            for row, r in enumerate(rows):
                i, n = int(items[r]), (lens[r] - 1) * HOP + FIELD
                x = crop(audio, i, starts[r] * HOP, n).astype(np.float32) / 32767.0
                key = f"{ids[i]}#view{views[r]}#step{step}"
                ha[row, :n] = torch.from_numpy(x)
                hb[row, :n] = torch.from_numpy(_perturbed(x, key, config.seed))
        out.a.append(ha)
        out.b.append(hb)
        out.frames.append(fl)
    return out


def _perturbed(x: np.ndarray, key: str, seed: int) -> np.ndarray:
    from tokenizer.perturb import perturb_speaker, rng_for  # Praat: only where views are made

    return perturb_speaker(x, rng_for(key, seed))[0]


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
            first = [model(ha, hb, fl.to(devices.device)) for ha, hb, fl in inputs]
        per_head = [[s for part in first for s in part[h]] for h in range(len(first[0]))]
        targets = _targets(per_head, [int(fl.sum()) for _, _, fl in inputs], config, devices)
    if opt is not None:
        opt.zero_grad(set_to_none=True)
    sums = torch.zeros(2 * len(model.heads()) + 1)  # per head: loss, agreeing frames; codewords
    for j, (ha, hb, fl) in enumerate(inputs):
        with (
            torch.set_grad_enabled(opt is not None),
            devices.no_sync(wrapped, last=j == len(inputs) - 1),
            devices.autocast(),
        ):
            scored = wrapped(ha, hb, fl.to(devices.device))
        if len(inputs) == 1:
            targets = _targets([[sa.detach(), sb.detach()] for sa, sb in scored],
                               [int(fl.sum())], config, devices)  # fmt: skip
        loss = torch.zeros((), device=devices.device)
        for h, ((sa, sb), (qa, qb)) in enumerate(zip(scored, targets[j], strict=True)):
            part = model.heads()[h].swapped_loss(sa, sb, qa, qb, config.temperature)
            loss = loss + part / total
            sums[2 * h] += float(part.detach())
            sums[2 * h + 1] += float((sa.argmax(-1) == sb.argmax(-1)).sum())
        if opt is not None:
            (loss * devices.world).backward()
        sums[-1] = max(float(sums[-1]), float(scored[0][0].argmax(-1).unique().numel()))
    if opt is not None:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 10.0)
        opt.step()
    sums[:-1] = devices.all_sum(sums[:-1].to(devices.device)).cpu() / total
    stats = {"loss": float(sums[0:-1:2].sum()), "loss_k1": float(sums[0]), "agree": float(sums[1])}
    if model.aux is not None:
        stats.update(loss_k2=float(sums[2]), agree_k2=float(sums[3]))
    return {**stats, "codewords_used": float(sums[-1])}


def _targets(
    scores: list[list[Tensor]], sizes: list[int], config: SpinConfig, devices: Devices
) -> list[list[tuple[Tensor, Tensor]]]:
    """Sinkhorn targets per micro-batch and head, from ``scores[head]`` = the micro-batches'
    ``[sa, sb, sa, sb, ...]`` (valid frames; ``sizes`` frames each)."""
    out: list[list[tuple[Tensor, Tensor]]] = [[] for _ in sizes]
    for parts in scores:
        qa = sinkhorn(torch.cat(parts[0::2]), config.sinkhorn_eps, config.sinkhorn_iters, devices)
        qb = sinkhorn(torch.cat(parts[1::2]), config.sinkhorn_eps, config.sinkhorn_iters, devices)
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
