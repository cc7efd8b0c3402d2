"""Run every probe for several unit sources on one corpus split.

Each tokenizer hears the same audio and the same perturbed copies; precomputed unit tables
get every metric that needs no new audio (perturbation consistency is skipped for them, with
a note in the report).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lm_probe.abx import probe_abx
from lm_probe.cache import OFF, ArrayCache, audio_sha256
from lm_probe.metrics import contingency, phone_losses, scores
from lm_probe.ngram import train_ngram
from lm_probe.pieces import piece_stats
from lm_probe.rates import bitrates
from lm_probe.speaker import cross_voice, frame_agreement, perturbed_copy, speaker_id_accuracy
from lm_probe.units import UnitSource
from tokenizer.audio import decode_audio
from tokenizer.corpus.alignment import frame_labels
from tokenizer.corpus.manifest import Utterance
from tokenizer.dedup import dedup
from tokenizer.errors import InvalidInputError
from tokenizer.windows import Windowed

if TYPE_CHECKING:
    from lm_probe.superb import SuperbConfig  # imports torch: only with --superb

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]
"""``progress(stage, n_done)`` (stage names: perturb, tokenize, resynthesis, abx features)."""


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    split: str = "test"
    lm_split: str = "train"
    """Split whose units train the n-gram LM and the acoustic pieces."""
    lm_max_utterances: int = 2000
    ngram_order: int = 4
    parallel_max_sentences: int = 20
    """Parallel sentences used for cross-voice metrics (each read by every voice)."""
    piece_vocab_sizes: tuple[int, ...] = (500, 2000)
    perturb: bool = True
    seed: int = 0
    jobs: int = 2
    """Worker processes for the perturbed copies."""
    vocoder: str | None = None
    """Vocoder (directory or shipped name) for the resynthesis metrics; None skips them."""
    resynth_utterances: int = 40
    """First N test utterances (by id) resynthesized."""
    abx: bool = False
    """Triphone ABX (within / across speaker) on the parallel split, units and dense features."""
    superb: SuperbConfig | None = None
    """SUPERB-style heads on the frozen encoder's layers (``lm_probe.superb``); None skips them.
    They train on the ``lm_split`` utterances."""


@dataclass
class ProbeResult:
    """One tokenizer's numbers (``summary``, the JSON object) and what the plots need."""

    summary: dict[str, Any]
    cooccurrence: tuple[np.ndarray, list[str], list[int]] | None = None
    per_voice_pnmi: dict[str, float] = field(default_factory=dict)


def _perturb_job(args: tuple[str, str, int]) -> tuple[str, np.ndarray]:
    uid, path, seed = args
    return uid, perturbed_copy(uid, decode_audio(path), seed)


def perturbed_copies(
    root: Path,
    utts: Sequence[Utterance],
    config: ProbeConfig,
    progress: Progress | None = None,
    cache: ArrayCache = OFF,
) -> dict[str, np.ndarray]:
    """The seeded speaker-perturbed copy of each utterance, made in ``config.jobs`` processes;
    cached per (utterance id, seed, audio sha256)."""
    out: dict[str, np.ndarray] = {}
    keys, jobs = {}, []
    for u in utts:
        path = u.audio_path(root)
        keys[u.id] = ("perturbed", u.id, str(config.seed), audio_sha256(decode_audio(path)))
        jobs.append((u.id, str(path), config.seed))
    for uid in keys:
        if (found := cache.load(keys[uid])) is not None:
            out[uid] = found
    missing = [job for job in jobs if job[0] not in out]
    if missing:
        with multiprocessing.get_context("fork").Pool(config.jobs) as pool:
            for uid, audio in pool.imap_unordered(_perturb_job, missing, chunksize=4):
                out[uid] = cache.put(keys[uid], audio)
                if progress:
                    progress("perturb", 1)
    return {u.id: out[u.id] for u in utts}


def labelled_frames(
    units: dict[str, np.ndarray], utts: Sequence[Utterance], frame_rate: float
) -> tuple[list[str], np.ndarray]:
    """The phone at each unit frame's centre, and the units, over all utterances."""
    labels: list[str] = []
    for u in utts:
        if not u.alignment:
            raise InvalidInputError(f"expected a phone alignment for {u.id!r}, found none")
        labels += frame_labels(u.alignment, len(units[u.id]), frame_rate)
    return labels, np.concatenate([units[u.id] for u in utts])


def run_lengths(
    units: dict[str, np.ndarray], utts: Sequence[Utterance], frame_rate: float
) -> dict[str, float]:
    """Mean frames per run of one unit (``run_length``: frames per deduplicated unit) and per run
    of one phone label on the same frames (``phone_run_length``): units that flicker have runs
    much shorter than the phones they stand for."""
    frames = unit_runs = phone_runs = 0
    for u in utts:
        labels = frame_labels(u.alignment or [], len(units[u.id]), frame_rate)
        frames += len(labels)
        unit_runs += len(dedup(units[u.id])[0])
        phone_runs += sum(1 for i, p in enumerate(labels) if i == 0 or p != labels[i - 1])
    return {
        "run_length": frames / max(1, unit_runs),
        "phone_run_length": frames / max(1, phone_runs),
    }


def pnmi_of(units: dict[str, np.ndarray], utts: Sequence[Utterance], rate: float) -> float:
    """PNMI of ``units`` of ``utts`` against their phone alignments."""
    labels, flat = labelled_frames(units, utts, rate)
    return scores(contingency(labels, flat)).pnmi


def engine_scores(
    units: dict[str, np.ndarray], utts: Sequence[Utterance], rate: float
) -> dict[str, dict[str, float]]:
    """PNMI and phone purity of ``units`` on each synthesis engine's utterances (the manifest's
    ``engine``), when ``utts`` come from more than one: a split's number can hide that its
    engines differ far more than seen and unseen voices do."""
    groups: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        groups[u.engine or "unknown"].append(u)
    if len(groups) < 2:
        return {}
    out = {}
    for engine, us in sorted(groups.items()):
        labels, flat = labelled_frames(units, us, rate)
        s = scores(contingency(labels, flat))
        out[engine] = {"pnmi": s.pnmi, "phone_purity": s.phone_purity, "frames": len(flat)}
    return out


def probe_source(
    source: UnitSource,
    root: Path,
    splits: dict[str, list[Utterance]],
    perturbed: dict[str, np.ndarray] | None,
    config: ProbeConfig,
    progress: Progress | None = None,
) -> ProbeResult:
    """All metrics for one unit source; ``splits`` holds ``test``, ``lm`` and ``parallel``."""

    tokenized: dict[tuple[str, ...], dict[str, np.ndarray]] = {}

    def units_of(utts: list[Utterance]) -> dict[str, np.ndarray]:
        """Units of ``utts``, tokenized once per set (``parallel`` serves two probes)."""
        key = tuple(u.id for u in utts)
        if key not in tokenized:
            tokenized[key] = source.units_for(
                root, utts, lambda n: progress("tokenize", n) if progress else None
            )
        return tokenized[key]

    test, lm, par = splits["test"], splits["lm"], splits["parallel"]
    u_test, rate = units_of(test), source.frame_rate
    labels, flat = labelled_frames(u_test, test, rate)
    table = contingency(labels, flat)
    s = scores(table)
    summary: dict[str, Any] = {
        "name": source.name,
        "K": source.K,
        "frame_rate": rate,
        "frames": len(flat),
        "utterances": len(test),
        "pnmi": s.pnmi,
        "phone_purity": s.phone_purity,
        "cluster_purity": s.cluster_purity,
        "units_used": len(np.unique(flat)),
        **run_lengths(u_test, test, rate),
        "phones": phone_losses(table),
        "by_engine": engine_scores(u_test, test, rate),
        "notes": [],
    }
    by_voice: dict[str, list[Utterance]] = defaultdict(list)
    for u in test:
        by_voice[u.speaker or ""].append(u)
    per_voice = {v: pnmi_of(u_test, us, rate) for v, us in sorted(by_voice.items())}

    u_lm = list(units_of(lm).values()) if lm else []
    summary["ngram"] = _ngram(u_lm, list(u_test.values()), rate, config) if u_lm else None
    summary["speaker"] = _speaker(source, u_test, test, perturbed, par, units_of, config, summary)
    summary["bitrate"] = bitrates(list(u_test.values()), source.K, rate)
    summary["pieces"] = (
        [piece_stats(u_lm, list(u_test.values()), v, rate) for v in config.piece_vocab_sizes]
        if u_lm
        else []
    )
    summary["streaming"] = _streaming(source, root, test, u_test)
    if not summary["streaming"]:
        summary["notes"].append("streaming: skipped, the tokenizer has no streaming window")
    summary["resynthesis"] = _resynthesis(source, root, test, config, summary["notes"], progress)
    summary["abx"] = _abx(source, root, par, units_of, config, summary["notes"], progress)
    summary["superb"] = _superb(source, root, splits, config, summary["notes"], progress)
    return ProbeResult(summary, (table.counts, table.phones, table.units), per_voice)


def _streaming(
    source: UnitSource, root: Path, test: list[Utterance], u_test: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """Agreement of the units the model serves (by incremental steps, or by canonical
    windows) with its full-utterance units."""
    tok = source.tokenizer
    if not isinstance(tok, Windowed) or (tok.window is None and tok.steps is None):
        return []
    same = total = 0
    for u in test:
        audio = decode_audio(u.audio_path(root))
        full = source.tokenize(audio, full_utterance=True)
        served = source.tokenize(audio, full_utterance=False)
        same += int(np.sum(full == served))
        total += len(full)
    how: dict[str, Any]
    if tok.steps is not None:
        how = {"step_ms": tok.steps.step_ms, "latency_ms": tok.steps.latency_ms}
    else:
        assert tok.window is not None
        how = {**tok.window.to_dict(), "latency_ms": tok.window.latency_ms}
    return [{**how, "agreement": same / total if total else None}]


def _resynthesis(
    source: UnitSource,
    root: Path,
    test: list[Utterance],
    config: ProbeConfig,
    notes: list[str],
    progress: Progress | None,
) -> dict[str, Any] | None:
    if config.vocoder is None:
        return None
    from lm_probe.resynthesis import resynthesis
    from vocoder.runtime import Vocoder

    vocoder = Vocoder.load(config.vocoder)
    if source.tokenizer is None or source.tokenizer.K != vocoder.K:
        notes.append(
            f"resynthesis: skipped, {vocoder.name} speaks {vocoder.K} units of "
            f"{vocoder.units_model['name']}"
        )
        return None
    if source.tokenizer.fingerprint != vocoder.units_model["fingerprint"]:
        notes.append(f"resynthesis: {vocoder.name} was trained on another model's units")
    utts = sorted(test, key=lambda u: u.id)[: config.resynth_utterances]
    return resynthesis(
        source.tokenizer,
        vocoder,
        root,
        utts,
        source.full_utterance,
        (lambda n: progress("resynthesis", n)) if progress else None,
    )


def _abx(
    source: UnitSource,
    root: Path,
    par: list[Utterance],
    units_of: Callable[[list[Utterance]], dict[str, np.ndarray]],
    config: ProbeConfig,
    notes: list[str],
    progress: Progress | None,
) -> dict[str, Any] | None:
    """ABX rows (``--abx``): units, and the dense frames they come from, on ``parallel``."""
    if not config.abx:
        return None
    if not par:
        notes.append("ABX: skipped, the corpus has no parallel split")
        return None
    out, abx_notes = probe_abx(
        source.tokenizer,
        units_of(par),
        root,
        par,
        source.frame_rate,
        config.seed,
        (lambda n: progress("abx features", n)) if progress else None,
        source.cache,
    )
    notes.extend(abx_notes)
    return out


def _superb(
    source: UnitSource,
    root: Path,
    splits: dict[str, list[Utterance]],
    config: ProbeConfig,
    notes: list[str],
    progress: Progress | None,
) -> dict[str, Any] | None:
    """SUPERB rows (``--superb``): heads on the frozen encoder's layers."""
    if config.superb is None:
        return None
    from lm_probe.superb import probe_superb

    out, superb_notes = probe_superb(
        source.tokenizer,
        root,
        splits["lm"],
        splits["test"],
        splits["parallel"],
        config.superb,
        (lambda n: progress("superb features", n)) if progress else None,
        source.cache,
    )
    notes.extend(superb_notes)
    return out


def _ngram(
    train: list[np.ndarray], test: list[np.ndarray], rate: float, config: ProbeConfig
) -> dict[str, Any]:
    out: dict[str, Any] = {"order": config.ngram_order}
    seconds = sum(len(u) for u in test) / rate
    for key, fn in (("raw", lambda u: u), ("dedup", lambda u: dedup(u)[0])):
        lm = train_ngram([fn(u).tolist() for u in train], config.ngram_order, memory="2%")
        sc = lm.score([fn(u).tolist() for u in test])
        out[key] = {
            "ppl": sc.ppl,
            "bits_per_unit": sc.bits_per_token,
            "bits_per_second": -sc.log10_prob * np.log2(10) / seconds,
        }
    out["ppl"], out["bits_per_unit"] = out["dedup"]["ppl"], out["dedup"]["bits_per_unit"]
    return out


def _speaker(
    source: UnitSource,
    u_test: dict[str, np.ndarray],
    test: list[Utterance],
    perturbed: dict[str, np.ndarray] | None,
    par: list[Utterance],
    units_of: Callable[[list[Utterance]], dict[str, np.ndarray]],
    config: ProbeConfig,
    summary: dict[str, Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {"perturb_agreement": None, "pnmi_perturbed": None}
    if perturbed is not None and source.tokenizer is not None:
        u_pert = {u.id: source.tokenize(perturbed[u.id]) for u in test}
        same, total = np.sum([frame_agreement(u_test[k], u_pert[k]) for k in u_pert], axis=0)
        out["perturb_agreement"] = float(same / total)
        out["pnmi_perturbed"] = pnmi_of(u_pert, test, source.frame_rate)
    else:
        summary["notes"].append("perturbation: skipped (precomputed units or --no-perturb)")
    if par:
        u_par = units_of(par)
        out.update(cross_voice(u_par, par, source.frame_rate))
        out.update(speaker_id_accuracy(u_par, par, source.K, config.seed))
    else:
        summary["notes"].append("cross-voice: skipped, the corpus has no parallel split")
    return out


def select_splits(utts: Sequence[Utterance], config: ProbeConfig) -> dict[str, list[Utterance]]:
    test = [u for u in utts if u.split == config.split]
    if not test:
        found = sorted({u.split or "" for u in utts})
        raise InvalidInputError(
            f"expected utterances in split {config.split!r}, found splits {found}"
        )
    lm = [u for u in utts if u.split == config.lm_split][: config.lm_max_utterances]
    par_all = [u for u in utts if u.split == "parallel"]
    keep = set(sorted({u.sentence_key for u in par_all})[: config.parallel_max_sentences])
    par = [u for u in par_all if u.sentence_key in keep]
    return {"test": test, "lm": lm, "parallel": par}
