"""The two views Spin and DC-Spin train on, an utterance and a speaker-perturbed copy: the
frozen-layer cache (the frozen bottom layers' outputs for the original and ``views`` Praat
copies of every training utterance, computed once into ``RUN/cache`` as float16 memmaps, so
neither Praat nor the frozen layers cost anything per step), and each step's batch of both
views, read from that cache or, without it, cut from the audio and perturbed on the spot.

With ``distortions`` (R-Spin) the perturbed view is also distorted: a family drawn from
``distortions`` at an SNR or RT60 drawn from its range (``tokenizer.distort``), seeded by
utterance, view and seed; babble comes from other training speakers and music from pieces of
the training seed stream, never the probe's.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from tokenizer.audio import SAMPLE_RATE
from tokenizer.corpus.manifest import Utterance
from tokenizer.distort.conditions import FAMILIES, NoiseSources, apply, draw, rng_for
from tokenizer.distort.music import music_bank
from tokenizer.encoder.model import Encoder
from tokenizer.errors import InvalidInputError
from tokenizer.train.data import crop, draw_utterances, n_frames
from tokenizer.train.loop import TrainConfig
from tokenizer.windows import FIELD, HOP


@dataclass(frozen=True, kw_only=True)
class DistortConfig(TrainConfig):
    """How a run distorts its perturbed views (R-Spin, and students distilled from it), or the
    phone fine-tuning its training crops."""

    distortions: tuple[str, ...] = ()
    """Distortion families of the perturbed view (R-Spin; ``tokenizer.distort.conditions``);
    empty: speaker perturbation only."""
    distort_probability: float = 1.0
    """Share of perturbed views that are also distorted."""
    snr_db: tuple[float, float] = (-5.0, 20.0)
    """SNR range of the additive noises (dB)."""
    rt60_s: tuple[float, float] = (0.2, 1.0)
    """RT60 range of the rooms (seconds)."""
    noise_utterances: int = 200
    """Training utterances (a seeded sample) that babble is mixed from."""
    music_pieces: int = 16
    """Rendered pieces (30 s each) that music noise is drawn from."""

    def distort_key(self) -> list[Any]:
        """What distorted views are a function of (besides utterances, views and seed), for
        the keys of cached views, as JSON reads it back (lists, not tuples: a key that does not
        survive the round trip never matches); empty without distortions."""
        if not self.distortions:
            return []
        return [list(self.distortions), self.distort_probability, list(self.snr_db),
                list(self.rt60_s), self.noise_utterances, self.music_pieces]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ViewsConfig(DistortConfig):
    """What a two-view run config has (``SpinConfig`` adds the heads and the loss)."""

    views: int = 2
    """Speaker-perturbed copies per utterance; each step pairs the original with one of them.
    Without the cache, a view is a fresh Praat perturbation of the step's crop."""
    cache: bool = True
    """Compute the frozen layers' outputs of every view once into ``RUN/cache`` (fast steps;
    float16: 50 frames x D x 2 bytes per second of audio and view, 77 KB for a base-size
    model); off for corpora too
    large for that disk or on GPUs, where running the frozen layers each step is cheap."""
    perturb_jobs: int = 2
    perturb_strength: float = 1.0
    """Scale of the speaker perturbation (``PerturbConfig.scaled``): 1 is Spin's ranges
    (formants x 1.4, F0 x 2, pitch range x 1.5, up or down) and a +-12 dB equalizer; 0.5 gives
    x 1.18, x 1.41, x 1.22 and +-6 dB."""


TRAIN_MUSIC_STREAM = 0x7A17
"""Music pieces of training runs come from ``[seed, TRAIN_MUSIC_STREAM, i]`` (the probe uses
another stream)."""


@dataclass
class NoisyViews:
    """What distorts perturbed views: the recorded noises and each utterance's speaker."""

    sources: NoiseSources
    speakers: list[str]

    def distort(self, x: np.ndarray, item: int, key: str, config: DistortConfig) -> np.ndarray:
        """``x`` (float32) under a condition drawn for ``key``, or ``x`` itself when the draw
        says clean (``distort_probability``)."""
        rng = rng_for(key, config.seed)
        if rng.random() >= config.distort_probability:
            return x
        condition = draw(rng, config.distortions, config.snr_db, config.rt60_s)
        return apply(x, condition, rng, self.sources, self.speakers[item])


def noisy_views(
    utts: Sequence[Utterance], audio: Sequence[np.ndarray], config: DistortConfig
) -> NoisyViews | None:
    """The noises of a run with ``distortions`` (None without): babble from a seeded sample of
    ``noise_utterances`` training utterances, music from the training stream."""
    if not config.distortions:
        return None
    if unknown := sorted(set(config.distortions) - set(FAMILIES)):
        raise InvalidInputError(f"expected distortions among {FAMILIES}, found {unknown}")
    rng = np.random.default_rng([config.seed, 0xBABB1E])
    pick = sorted(rng.choice(len(audio), min(len(audio), config.noise_utterances), False))
    music = (
        music_bank([config.seed, TRAIN_MUSIC_STREAM], config.music_pieces, 30.0)
        if "music" in config.distortions
        else []
    )
    sources = NoiseSources(
        babble=[audio[i].astype(np.float32) / 32767.0 for i in pick],
        speakers=[utts[i].speaker or utts[i].id for i in pick],
        music=music,
    )
    return NoisyViews(sources, [u.speaker or u.id for u in utts])


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
    config: ViewsConfig,
    noisy: Callable[[], NoisyViews | None] | None = None,
) -> None:
    """Perturb (and with the views ``noisy()`` makes, distort) every utterance
    ``config.views`` times and store the frozen layers' outputs; nothing when the cache holds
    ``key`` already (the noises are not even made then)."""
    meta = folder / "cache.json"
    if meta.is_file() and json.loads(meta.read_text()) == key:
        return
    distorting = noisy() if noisy is not None else None
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
        views = view_audio(
            utts, audio, view, config.seed, config.perturb_jobs, config.perturb_strength
        )
        if distorting is not None and view > 0:
            bar = tqdm(desc=f"distort view {view}", unit="utt", file=sys.stderr, leave=False)
            with bar:
                for i, u in enumerate(utts):
                    views[i] = distorting.distort(views[i], i, f"{u.id}#view{view}", config)
                    bar.update(1)
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
    utts: Sequence[Utterance],
    audio: Sequence[np.ndarray],
    view: int,
    seed: int,
    jobs: int,
    strength: float = 1.0,
) -> list[np.ndarray]:
    """View ``view`` of every utterance as float32: 0 the original, 1.. speaker-perturbed
    copies (seeded by utterance id, view and ``seed``; Praat in ``jobs`` processes; the
    perturbation ``strength`` times Spin's)."""
    floats = [a.astype(np.float32) / 32767.0 for a in audio]
    if view == 0:
        return floats
    tasks = [(u.id, x, view, seed, strength) for u, x in zip(utts, floats, strict=True)]
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


def _perturb_job(job: tuple[str, np.ndarray, int, int, float]) -> np.ndarray:
    uid, x, view, seed, strength = job
    return perturbed(x, f"{uid}#view{view}", seed, strength)


@torch.inference_mode()
def _frozen_output(encoder: Encoder, frozen: int, x: np.ndarray) -> np.ndarray:
    h, lengths = encoder.embed(torch.from_numpy(x)[None, :])
    if frozen:
        h = encoder.run_layers(h, lengths, 0, frozen)[-1]
    return h[0].numpy()


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
    labels: list[Tensor] | None = None
    """Per-frame labels ``[B, F]`` or ``[B, F, C]`` of each micro-batch's crops (-1 past the
    end), when the run has them."""


def views_batch(
    cache: FrozenCache | None,
    audio: Sequence[np.ndarray],
    ids: list[str],
    frames: list[int],
    micro: list[range],
    config: ViewsConfig,
    step: int,
    labels: Sequence[np.ndarray] | None = None,
    noisy: NoisyViews | None = None,
    weights: np.ndarray | None = None,
) -> ViewsBatch:
    """Step ``step``'s crops (from ``(seed, step)`` alone) of the original and a perturbed view:
    read from the frozen-layer cache, or (no cache) cut from the audio and perturbed here by
    Praat (a fresh speaker per step; in the batch workers when there are some; distorted too
    with ``noisy``). ``labels``: per-frame labels ``[F]`` or ``[F, C]`` of every utterance, cut
    to the same crops. ``weights``: each utterance's probability of being drawn (uniform
    without)."""
    rng = np.random.default_rng([config.seed, step])
    items = draw_utterances(rng, len(frames), config.batch_size, weights)
    views = rng.integers(1, config.views + 1, config.batch_size)
    max_frames = n_frames(int(config.max_seconds * SAMPLE_RATE))
    lens, starts = [], []
    for i in items:
        f = min(frames[i], max_frames)
        starts.append(int(rng.integers(0, frames[i] - f + 1)))
        lens.append(f)
    out = ViewsBatch([], [], [], float(sum(lens)), cache is None, [] if labels else None)
    for rows in micro:
        fl = torch.tensor([lens[r] for r in rows])
        if out.labels is not None and labels is not None:
            shape = (len(rows), int(fl.max()), *labels[0].shape[1:])
            y = torch.full(shape, -1, dtype=torch.long)
            for row, r in enumerate(rows):
                i, s, f = int(items[r]), starts[r], lens[r]
                y[row, :f] = torch.from_numpy(labels[i][s : s + f].astype(np.int64))
            out.labels.append(y)
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
                xb = perturbed(x, key, config.seed, config.perturb_strength)
                hb[row, :n] = torch.from_numpy(
                    xb if noisy is None else noisy.distort(xb, i, key, config)
                )
        out.a.append(ha)
        out.b.append(hb)
        out.frames.append(fl)
    return out


def perturbed(x: np.ndarray, key: str, seed: int, strength: float = 1.0) -> np.ndarray:
    """``x`` (float32) as another speaker: Spin's perturbation at ``strength``, seeded by
    ``key`` and ``seed``."""
    from tokenizer import perturb, seeding  # Praat: only where views are made

    config = perturb.DEFAULT_CONFIG.scaled(strength)
    return perturb.perturb_speaker(x, seeding.rng_for(key, seed), config)[0]
