"""Validate a corpus directory: audio, alignments and split rules.

:func:`check_corpus` returns a list of problems (empty when the corpus is sound); the CLI
prints them and exits non-zero. Users' corpora without ``corpus.json`` get the audio and
alignment checks; the voice rules need the voice catalogue that ``corpus.json`` records.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence, Set
from pathlib import Path

import soundfile as sf

from tokenizer.audio import SAMPLE_RATE
from tokenizer.corpus.manifest import CORPUS_INFO, MANIFEST, SPLITS, Utterance, read_manifest
from tokenizer.corpus.phones import PHONES
from tokenizer.errors import CorpusError

END_TOLERANCE = 0.05
"""Largest accepted gap between the last phone's end and the audio's end (seconds)."""
_EPS = 1e-4  # rounding of times written to the manifest


def check_corpus(
    folder: str | Path, *, on_progress: Callable[[int], None] | None = None
) -> list[str]:
    """All problems found in ``folder`` (``manifest.jsonl``, audio files, ``corpus.json``)."""
    root = Path(folder)
    try:
        utterances = read_manifest(root / MANIFEST)
    except CorpusError as e:
        return [str(e)]
    if not utterances:
        return [f"expected utterances in {root / MANIFEST}, found none"]
    problems = []
    for u in utterances:
        problems += check_utterance(root, u)
        if on_progress:
            on_progress(1)
    problems += check_splits(utterances)
    info = root / CORPUS_INFO
    if info.is_file():
        meta = json.loads(info.read_text())
        engine = meta["config"].get("holdout_engine")
        unseen = {v["id"] for v in meta["voices"] if v["engine"] == engine}
        held_out = {v["id"] for v in meta["voices"] if v["held_out"]} - unseen
        problems += check_voices(utterances, held_out, unseen)
    return problems


def check_utterance(root: Path, u: Utterance) -> list[str]:
    """Audio readable, 16 kHz mono, duration as stated; alignment sound."""
    path = u.audio_path(root)
    try:
        with sf.SoundFile(path) as f:
            rate, channels = f.samplerate, f.channels
            n = len(f.read(dtype="float32"))
            expected_n = f.frames
    except (sf.LibsndfileError, OSError) as e:
        return [f"{u.id}: expected readable audio at {path}, found {e}"]
    found = []
    if n != expected_n:
        found.append(f"{u.id}: expected {expected_n} samples, found {n} (truncated)")
    if rate != SAMPLE_RATE or channels != 1:
        found.append(
            f"{u.id}: expected {SAMPLE_RATE} Hz mono, found {rate} Hz x {channels} channels"
        )
    duration = n / rate
    if u.duration is not None and abs(u.duration - duration) > _EPS:
        found.append(
            f"{u.id}: expected duration {u.duration} s as the manifest says, found {duration:.5f} s"
        )
    if u.alignment is not None:
        found += [f"{u.id}: {p}" for p in check_alignment(u.alignment, duration)]
    return found


def check_alignment(
    segments: Sequence[tuple[str, float, float]], duration: float, phones: Sequence[str] = PHONES
) -> list[str]:
    """Boundaries monotone and inside the audio, the last one near its end, labels known."""
    if not segments:
        return ["expected phone segments, found an empty alignment"]
    found = []
    prev_end = 0.0
    for i, (p, s, e) in enumerate(segments):
        if not s < e:
            found.append(f"segment {i} ({p}): expected start < end, found {s} >= {e}")
        if s < prev_end - _EPS:
            found.append(f"segment {i} ({p}): expected start >= previous end {prev_end}, found {s}")
        if s < -_EPS or e > duration + _EPS:
            found.append(
                f"segment {i} ({p}): expected inside [0, {duration:.5f}] s, found [{s}, {e}]"
            )
        if p not in phones:
            found.append(f"segment {i}: expected a label in the ARPAbet-39 + SIL set, found {p!r}")
        prev_end = e
    gap = duration - segments[-1][2]
    if abs(gap) > END_TOLERANCE:
        found.append(
            f"expected the last phone to end within {END_TOLERANCE * 1000:.0f} ms of the "
            f"audio end, found {gap * 1000:.0f} ms"
        )
    return found


def check_splits(utterances: Sequence[Utterance]) -> list[str]:
    """Known split names; train/dev/test/parallel disjoint by sentence; parallel sentences read
    by one and the same set of voices."""
    found = []
    sentence_splits: dict[str, set[str]] = defaultdict(set)
    parallel_voices: dict[str, set[str]] = defaultdict(set)
    for u in utterances:
        if u.split is not None and u.split not in SPLITS:
            found.append(f"{u.id}: expected a split in {SPLITS}, found {u.split!r}")
        key = u.sentence or u.text
        if key is not None and u.split is not None:
            sentence_splits[key].add(u.split)
        if u.split == "parallel" and key is not None:
            parallel_voices[key].add(u.speaker or "")
    for key, splits in sorted(sentence_splits.items()):
        if len(splits) > 1:
            found.append(f"sentence {key}: expected in one split, found in {sorted(splits)}")
    voice_sets = {frozenset(v) for v in parallel_voices.values()}
    if len(voice_sets) > 1:
        found.append(
            "parallel split: expected every sentence read by the same voices, found "
            f"{len(voice_sets)} different voice sets"
        )
    return found


def check_voices(
    utterances: Sequence[Utterance], held_out: set[str], unseen: Set[str] = frozenset()
) -> list[str]:
    """Held-out voices speak only in ``test`` and ``parallel``, and ``test`` has some of them;
    the held-out engine's voices (``unseen``) speak only, and alone, in ``unseen`` and
    ``parallel``."""
    found = []
    for u in utterances:
        if u.speaker in held_out and u.split not in ("test", "parallel"):
            found.append(
                f"{u.id}: expected held-out voice {u.speaker} only in test/parallel, found in "
                f"{u.split}"
            )
        if (u.speaker in unseen) != (u.split == "unseen") and u.split != "parallel":
            found.append(
                f"{u.id}: expected the held-out engine's voices alone in the unseen split, "
                f"found {u.speaker} in {u.split}"
            )
    if held_out and not any(u.speaker in held_out for u in utterances if u.split == "test"):
        found.append("test split: expected some utterances by held-out voices, found none")
    return found
