"""Build a seeded, multi-speaker English corpus with exact phone alignments.

The plan (which sentence, which voice, which split) is drawn from the seed before any audio is
made; workers then synthesize batches of one voice each and write FLAC files. Every output
depends only on the plan, so two runs with the same arguments give byte-identical manifests and
audio, whatever the number of workers.

Splits: ``train``/``dev``/``test`` hold disjoint sentences, one voice each; part of ``test`` is
spoken by held-out voices that appear nowhere else but ``parallel``, where every voice reads
each of M further sentences.
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
from tokenizer.corpus.manifest import CORPUS_INFO, MANIFEST, Utterance, write_manifest
from tokenizer.corpus.sentences import wordnet_sentences
from tokenizer.corpus.voices import HELD_OUT_VOICES, TRAIN_VOICES, VOICES, VOICES_BY_ID, Voice
from tokenizer.errors import CorpusError

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
    """Sentences of the ``parallel`` split, each read by every voice."""
    seed: int = 0
    dev_fraction: float = 0.05
    test_fraction: float = 0.05
    held_out_share: float = 0.5
    """Share of ``test`` sentences read by held-out voices (the rest by training voices)."""
    peak: float = 0.9
    """Every utterance is scaled to this peak amplitude (level is not a speaker trait here)."""
    batch: int = 16
    """Utterances per worker task; festival starts once per task."""


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
    assigned: dict[str, list[_Item]] = {v.id: [] for v in VOICES}
    for rank, index in enumerate(order.tolist()):
        sid = f"s{index:05d}"
        if rank >= config.sentences:
            for v in VOICES:
                assigned[v.id].append(
                    _Item(f"parallel-{sid}-{v.id}", sid, sentences[index], "parallel")
                )
            continue
        split = "test" if rank < n_test else "dev" if rank < n_test + n_dev else "train"
        pool = HELD_OUT_VOICES if rank < n_held else TRAIN_VOICES
        voice = pool[int(rng.integers(len(pool)))]
        assigned[voice.id].append(_Item(f"{split}-{sid}-{voice.id}", sid, sentences[index], split))
    tasks = []
    for vid, items in assigned.items():
        for i in range(0, len(items), config.batch):
            tasks.append(_Task(vid, tuple(items[i : i + config.batch])))
    return tasks


def _run_task(args: tuple[_Task, Path, float]) -> list[Utterance]:
    task, out, peak = args
    voice = VOICES_BY_ID[task.voice_id]
    results = ENGINES[voice.engine](voice, [it.text for it in task.items])
    utterances = []
    for item, (audio, segments) in zip(task.items, results, strict=True):
        top = float(np.max(np.abs(audio)))
        if top == 0.0 or not segments:
            raise CorpusError(f"expected speech from {voice.id} for {item.text!r}, found silence")
        rel = Path("audio") / item.split / f"{item.id}.flac"
        write_flac(out / rel, (audio * (peak / top)).astype(np.float32))
        utterances.append(
            Utterance(
                id=item.id, audio=rel.as_posix(), speaker=voice.id, engine=voice.engine,
                split=item.split, sentence=item.sentence, text=item.text,
                duration=round(len(audio) / SAMPLE_RATE, 5), alignment=segments,
            )
        )  # fmt: skip
    return utterances


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
    utterances: list[Utterance] = []
    # Slowest tasks (festival, then flite) first, so the pool does not end on a long tail.
    order = sorted(
        tasks, key=lambda t: ("festival", "flite", "espeak").index(VOICES_BY_ID[t.voice_id].engine)
    )
    # A fresh process per task: espeak-ng's output depends on what it synthesized before, so
    # each task must start from the same library state whatever the number of workers.
    with multiprocessing.get_context("fork").Pool(jobs, maxtasksperchild=1) as pool:
        for done in pool.imap_unordered(_run_task, [(t, out, config.peak) for t in order]):
            utterances.extend(done)
            if on_progress:
                on_progress(len(done), sum(u.duration or 0.0 for u in done))
    utterances.sort(key=lambda u: u.id)
    info = {
        "config": asdict(config),
        "voices": [asdict(v) for v in VOICES],
        "utterances": len(utterances),
        "hours": round(sum(u.duration or 0.0 for u in utterances) / 3600, 4),
        "splits": dict(sorted(Counter(u.split or "" for u in utterances).items())),
    }
    (out / CORPUS_INFO).write_text(json.dumps(info, indent=2) + "\n")
    write_manifest(out / MANIFEST, utterances)
    return utterances
