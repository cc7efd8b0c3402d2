"""Robustness of units to noise, rooms, a phone line and codecs (``speechtok probe
--robustness``): for each distortion condition (``tokenizer.distort``), the frame agreement of a
tokenizer's units of the distorted audio with its units of the clean audio, and PNMI on the
distorted audio.

Every tokenizer hears the same distorted copies (seeded per utterance and condition). The noise
is held out from training: babble is mixed from voices the corpus never trains on when it has
some (:func:`babble_voices`; never the utterance's own speaker), and music comes from another
seed stream than training's (``tokenizer.train.views.TRAIN_MUSIC_STREAM``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lm_probe.probe import pnmi_of
from lm_probe.speaker import frame_agreement
from lm_probe.units import UnitSource
from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import Utterance
from tokenizer.distort.conditions import (
    NOISES,
    PROBE_CONDITIONS,
    Condition,
    NoiseSources,
    apply,
    rng_for,
)
from tokenizer.distort.music import music_bank

PROBE_MUSIC_STREAM = 0x9B0E
"""The probe's music pieces come from ``[seed, PROBE_MUSIC_STREAM, i]``."""


@dataclass(frozen=True, kw_only=True)
class RobustnessConfig:
    conditions: tuple[Condition, ...] = PROBE_CONDITIONS
    utterances: int = 200
    """First N utterances of the split (by id) are distorted."""
    babble_utterances: int = 200
    """Utterances (a seeded sample of :func:`babble_voices`) babble is mixed from."""
    music_pieces: int = 8
    seed: int = 0


def babble_voices(corpus: Sequence[Utterance]) -> tuple[list[Utterance], str]:
    """Utterances whose voices never appear in the ``train`` split (an unseen engine's, held-out
    speakers'), or, when the corpus has none, every utterance outside ``train``; and which."""
    trained = {u.speaker for u in corpus if u.split == "train"}
    held = [u for u in corpus if u.split != "train" and u.speaker not in trained]
    if len({u.speaker for u in held}) >= 2:
        return held, f"{len({u.speaker for u in held})} voices never in training"
    rest = [u for u in corpus if u.split != "train"]
    return rest, f"{len({u.speaker for u in rest})} voices of the splits outside train"


def robustness(
    sources: Sequence[UnitSource],
    root: Path,
    test: Sequence[Utterance],
    corpus: Sequence[Utterance],
    config: RobustnessConfig,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any] | None]:
    """One result per source (``utterances``, ``clean_pnmi``, ``babble`` and a row per
    condition with ``agreement`` and ``pnmi``); None for sources that cannot tokenize new
    audio. The first ``config.utterances`` of ``test`` are distorted; babble comes from
    :func:`babble_voices` of ``corpus``."""
    utts = sorted(test, key=lambda u: u.id)[: config.utterances]
    audio = {u.id: decode_audio(u.audio_path(root)) for u in utts}
    able = {k: s for k, s in enumerate(sources) if s.tokenizer is not None}
    clean = {k: {u.id: s.tokenize(audio[u.id]) for u in utts} for k, s in able.items()}
    voices, babble_from = babble_voices(corpus)
    rng = np.random.default_rng([config.seed, 0xBABB1E])
    pick = sorted(rng.choice(len(voices), min(len(voices), config.babble_utterances), False))
    noises = NoiseSources(
        babble=[decode_audio(voices[i].audio_path(root)) for i in pick],
        speakers=[voices[i].speaker or voices[i].id for i in pick],
        music=music_bank([config.seed, PROBE_MUSIC_STREAM], config.music_pieces, 30.0)
        if any(c.family == "music" for c in config.conditions)
        else [],
    )
    rows: dict[int, list[dict[str, Any]]] = {k: [] for k in able}
    for condition in config.conditions:
        units: dict[int, dict[str, np.ndarray]] = {k: {} for k in able}
        for u in utts:
            key = f"{u.id}#{condition.label}"
            x = apply(audio[u.id], condition, rng_for(key, config.seed), noises, u.speaker)
            for k, s in able.items():
                units[k][u.id] = s.tokenize(x)
            if progress:
                progress(1)
        for k, s in able.items():
            rows[k].append(
                {
                    "condition": condition.label,
                    "family": condition.family,
                    "level": condition.level,
                    "agreement": _agreement(clean[k], units[k]),
                    "pnmi": pnmi_of(units[k], utts, s.frame_rate),
                }
            )
    return [
        {
            "utterances": len(utts),
            "seed": config.seed,
            "babble": babble_from,
            "clean_pnmi": pnmi_of(clean[k], utts, s.frame_rate),
            "conditions": rows[k],
        }
        if k in able
        else None
        for k, s in enumerate(sources)
    ]


def _agreement(clean: dict[str, np.ndarray], noisy: dict[str, np.ndarray]) -> float:
    same, total = np.sum([frame_agreement(clean[k], noisy[k]) for k in clean], axis=0)
    return float(same / max(1, total))


def markdown(names: Sequence[str], results: Sequence[dict[str, Any] | None]) -> list[str]:
    """The robustness table: a row per condition, ``agreement / PNMI`` per tokenizer."""
    shown = [(n, r) for n, r in zip(names, results, strict=True) if r is not None]
    if not shown:
        return []
    first = shown[0][1]
    lines = [
        "## Robustness",
        "",
        f"Units of distorted audio against the same tokenizer's units of the clean audio "
        f"(frame agreement ↑) and PNMI on the distorted audio ↑, on the first "
        f"{first['utterances']} utterances; held-out noise (seed {first['seed']}; babble "
        f"of {first['babble']}).",
        "",
        "| condition | " + " | ".join(n for n, _ in shown) + " |",
        "| --- |" + " --- |" * len(shown),
        "| clean PNMI | " + " | ".join(f"{r['clean_pnmi']:.3f}" for _, r in shown) + " |",
    ]
    for i, row in enumerate(first["conditions"]):
        cells = [
            f"{r['conditions'][i]['agreement']:.3f} / {r['conditions'][i]['pnmi']:.3f}"
            for _, r in shown
        ]
        lines.append(f"| {row['condition']} | " + " | ".join(cells) + " |")
    return [*lines, "", "![agreement against SNR](robustness.png)", ""]


def plot(path: Path, names: Sequence[str], results: Sequence[dict[str, Any] | None]) -> bool:
    """Agreement with clean units against SNR, a panel per noise, a line per tokenizer; a panel
    of bars for rooms, the phone line and codecs; PNMI against SNR (the mean over the noises)
    beside each tokenizer's clean PNMI. False when there is nothing to plot."""
    from lm_probe.plots import pyplot

    shown = [(n, r) for n, r in zip(names, results, strict=True) if r is not None]
    if not shown:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5), squeeze=False)
    flat = list(axes.ravel())
    for ax, noise in zip(flat, NOISES, strict=False):
        for name, r in shown:
            pts = sorted((c["level"], c["agreement"]) for c in r["conditions"]
                         if c["family"] == noise)  # fmt: skip
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=name)
        ax.set_title(noise)
        ax.set_xlabel("SNR (dB)")
        ax.set_ylabel("agreement with clean units")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    flat[0].legend(fontsize=8)
    ax = flat[len(NOISES)]
    others = [c["condition"] for c in shown[0][1]["conditions"] if c["family"] not in NOISES]
    width = 0.8 / len(shown)
    for k, (name, r) in enumerate(shown):
        values = [c["agreement"] for c in r["conditions"] if c["family"] not in NOISES]
        ax.bar(np.arange(len(values)) + k * width, values, width, label=name)
    ax.set_xticks(np.arange(len(others)) + 0.4 - width / 2, others, rotation=40, ha="right",
                  fontsize=7)  # fmt: skip
    ax.set_ylim(0, 1)
    ax.set_title("rooms, phone line, codecs")
    ax = flat[len(NOISES) + 1]  # PNMI: the mean over the noises at each SNR, clean dashed
    for name, r in shown:
        by_snr: dict[float, list[float]] = {}
        for c in r["conditions"]:
            if c["family"] in NOISES:
                by_snr.setdefault(float(c["level"]), []).append(c["pnmi"])
        snrs = sorted(by_snr)
        line = ax.plot(snrs, [np.mean(by_snr[x]) for x in snrs], marker="o", label=name)
        ax.axhline(r["clean_pnmi"], color=line[0].get_color(), linestyle="--", linewidth=1)
    ax.set_title("PNMI over the noises (dashed: clean)")
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("PNMI")
    ax.grid(alpha=0.3)
    fig.suptitle("Unit agreement with clean audio (held-out noise)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
