"""Build a seeded, multi-speaker English corpus with exact phone alignments.

The plan (which sentence, which voice, which split) is drawn from the seed before any audio is
made; workers then synthesize batches of one voice each and write FLAC files. Every output
depends only on the plan, so two runs with the same arguments give byte-identical manifests and
audio, whatever the number of workers.

Splits: ``train``/``dev``/``test`` hold disjoint sentences, one voice each; part of ``test`` is
spoken by held-out voices that appear nowhere else but ``parallel``, where every core voice
reads each of M further sentences. With ``holdout_engine`` (festival by default) every voice of
that engine is kept out of train/dev/test and speaks only the ``unseen`` split (as many further
sentences as ``test``) and ``parallel``: generalising to an engine never trained on is the
nearest thing here to generalising to real speakers. ``augment`` adds that many seeded
speaker/room-augmented copies of each training utterance (:mod:`tokenizer.corpus.augment`).
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tokenizer.audio import SAMPLE_RATE, write_flac
from tokenizer.corpus import tts_espeak, tts_festival, tts_flite
from tokenizer.corpus.alignment import Segment
from tokenizer.corpus.augment import AugmentConfig, augment, room_bank
from tokenizer.corpus.manifest import CORPUS_INFO, MANIFEST, Utterance, write_manifest
from tokenizer.corpus.sentences import wordnet_sentences
from tokenizer.corpus.voices import CORE_VOICES, EXTRA_VOICES, VOICES_BY_ID, Engine, Voice
from tokenizer.errors import CorpusError
from tokenizer.seeding import rng_for

log = logging.getLogger(__name__)

ENGINES: dict[str, Callable[[Voice, Sequence[str]], list[tuple[np.ndarray, list[Segment]]]]] = {
    "espeak": tts_espeak.synthesize,
    "flite": tts_flite.synthesize,
    "festival": tts_festival.synthesize,
}


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    sentences: int = 2000
    """Sentences for train/dev/test, one voice each."""
    parallel_sentences: int = 100
    """Sentences of the ``parallel`` split, each read by every core voice."""
    seed: int = 0
    dev_fraction: float = 0.05
    test_fraction: float = 0.05
    held_out_share: float = 0.5
    """Share of ``test`` sentences read by held-out voices (the rest by training voices)."""
    extra_voices: bool = True
    """Speak train/dev/test with the whole catalogue, not only the 22 core voices."""
    holdout_engine: Engine | None = "festival"
    """Engine kept out of train/dev/test: its voices speak the ``unseen`` split (None: none)."""
    augment: int = 0
    """Augmented copies of each training utterance (speed, formants/pitch, rooms)."""
    peak: float = 0.9
    """Every utterance is scaled to this peak amplitude (level is not a speaker trait here)."""
    batch: int = 16
    """Utterances per worker task; festival starts once per task."""

    def voices(self) -> tuple[Voice, ...]:
        return CORE_VOICES + (EXTRA_VOICES if self.extra_voices else ())


class _Item(NamedTuple):
    id: str
    sentence: str
    text: str
    split: str


class _Task(NamedTuple):
    voice_id: str
    items: tuple[_Item, ...]


def plan(config: SynthConfig, sentences: Sequence[str]) -> list[_Task]:
    """Assign sentences to splits and voices from the seed; group them into worker tasks."""
    need = config.sentences + config.parallel_sentences
    if need > len(sentences):
        raise CorpusError(f"expected at most {len(sentences)} sentences in all, found {need} asked")
    if config.sentences < 3:
        raise CorpusError(f"expected --sentences >= 3 (train, dev, test), found {config.sentences}")
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(sentences))[:need]
    n_test = max(1, round(config.sentences * config.test_fraction))
    n_dev = max(1, round(config.sentences * config.dev_fraction))
    n_held = math.ceil(n_test * config.held_out_share)
    voices = config.voices()
    unseen = tuple(v for v in voices if v.engine == config.holdout_engine)
    if config.holdout_engine is not None and not unseen:
        raise CorpusError(f"expected voices of engine {config.holdout_engine}, found none")
    n_unseen = n_test if unseen else 0
    if n_test + n_unseen + n_dev >= config.sentences:
        raise CorpusError(
            f"expected --sentences above {n_test + n_unseen + n_dev} (test, unseen and dev "
            f"come first), found {config.sentences}"
        )
    seen = [v for v in voices if v.engine != config.holdout_engine]
    pools = {
        "held": tuple(v for v in seen if v.held_out),
        "train": tuple(v for v in seen if not v.held_out),
        "unseen": unseen,
    }
    assigned: dict[str, list[_Item]] = {v.id: [] for v in voices}
    for rank, index in enumerate(order.tolist()):
        sid = f"s{index:05d}"
        if rank >= config.sentences:
            for v in CORE_VOICES:
                assigned[v.id].append(
                    _Item(f"parallel-{sid}-{v.id}", sid, sentences[index], "parallel")
                )
            continue
        bounds = np.cumsum([n_test, n_unseen, n_dev])
        split = ("test", "unseen", "dev", "train")[int(np.searchsorted(bounds, rank, "right"))]
        pool = pools["held" if rank < n_held else "unseen" if split == "unseen" else "train"]
        voice = pool[int(rng.integers(len(pool)))]
        assigned[voice.id].append(_Item(f"{split}-{sid}-{voice.id}", sid, sentences[index], split))
    tasks = []
    for vid, items in assigned.items():
        for i in range(0, len(items), config.batch):
            tasks.append(_Task(vid, tuple(items[i : i + config.batch])))
    return tasks


AUGMENT = AugmentConfig()


class _Job(NamedTuple):
    task: _Task
    out: Path
    config: SynthConfig
    rooms: list[np.ndarray]
    """The room bank of augmentation (empty without it)."""


def _run_task(job: _Job) -> list[Utterance]:
    voice = VOICES_BY_ID[job.task.voice_id]
    results = ENGINES[voice.engine](voice, [it.text for it in job.task.items])
    utterances = []
    for item, (audio, segments) in zip(job.task.items, results, strict=True):
        top = float(np.max(np.abs(audio)))
        if top == 0.0 or not segments:
            raise CorpusError(f"expected speech from {voice.id} for {item.text!r}, found silence")
        audio = (audio * (job.config.peak / top)).astype(np.float32)
        utterances.append(_write(job.out, item, voice, audio, segments))
        for k in range(1, job.config.augment + 1 if item.split == "train" else 1):
            copy = item._replace(id=f"{item.id}-aug{k}")
            rng = rng_for(copy.id, job.config.seed)
            x, moved, drawn = augment(audio, segments, rng, job.rooms, AUGMENT)
            utterances.append(_write(job.out, copy, voice, x, moved, {"augment": drawn}))
    return utterances


def _write(
    out: Path,
    item: _Item,
    voice: Voice,
    audio: np.ndarray,
    segments: list[Segment],
    extra: dict | None = None,
) -> Utterance:
    rel = Path("audio") / item.split / f"{item.id}.flac"
    write_flac(out / rel, audio)
    return Utterance(
        id=item.id, audio=rel.as_posix(), speaker=voice.id, engine=voice.engine,
        split=item.split, sentence=item.sentence, text=item.text,
        duration=round(len(audio) / SAMPLE_RATE, 5), alignment=segments, extra=extra or {},
    )  # fmt: skip


def build_corpus(
    out: str | Path,
    config: SynthConfig,
    *,
    jobs: int = 2,
    force: bool = False,
    on_progress: Callable[[int, float], None] | None = None,
) -> list[Utterance]:
    """Synthesize the corpus into ``out``; ``on_progress(n_utterances, seconds_of_audio)`` is
    called after each finished task. The manifest is written last, so a build that stops part
    way never looks complete."""
    out = Path(out)
    if (out / MANIFEST).exists() and not force:
        raise CorpusError(f"expected an empty output folder, found a corpus in {out} (use --force)")
    tasks = plan(config, wordnet_sentences())
    for split in {it.split for t in tasks for it in t.items}:
        (out / "audio" / split).mkdir(parents=True, exist_ok=True)
    log.info(
        "synthesizing %d utterances in %d tasks with %d jobs",
        sum(len(t.items) for t in tasks),
        len(tasks),
        jobs,
    )
    rooms = room_bank(config.seed, AUGMENT) if config.augment else []
    utterances: list[Utterance] = []
    # Slowest tasks (festival, then flite) first, so the pool does not end on a long tail.
    order = sorted(
        tasks, key=lambda t: ("festival", "flite", "espeak").index(VOICES_BY_ID[t.voice_id].engine)
    )
    # A fresh process per task: espeak-ng's output depends on what it synthesized before, so
    # each task must start from the same library state whatever the number of workers.
    with multiprocessing.get_context("fork").Pool(jobs, maxtasksperchild=1) as pool:
        for done in pool.imap_unordered(_run_task, [_Job(t, out, config, rooms) for t in order]):
            utterances.extend(done)
            if on_progress:
                on_progress(len(done), sum(u.duration or 0.0 for u in done))
    utterances.sort(key=lambda u: u.id)
    info = {
        "config": asdict(config),
        "augment": asdict(AUGMENT) if config.augment else None,
        "voices": [asdict(v) for v in config.voices()],
        "utterances": len(utterances),
        "hours": round(sum(u.duration or 0.0 for u in utterances) / 3600, 4),
        "splits": dict(sorted(Counter(u.split or "" for u in utterances).items())),
    }
    (out / CORPUS_INFO).write_text(json.dumps(info, indent=2) + "\n")
    write_manifest(out / MANIFEST, utterances)
    return utterances
