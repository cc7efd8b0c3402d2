"""PNG plots of a probe: phone x unit co-occurrence heatmaps, per-voice PNMI bars, PNMI
against bitrate, and SUPERB layer weights."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lm_probe.probe import ProbeResult


def pyplot():  # type: ignore[no-untyped-def]
    """matplotlib's pyplot on the file-only Agg backend (imported when a plot is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cooccurrence(path: Path, results: Sequence[ProbeResult]) -> None:
    """p(unit | phone), units ordered by their most likely phone, one panel per tokenizer."""
    plt = pyplot()
    fig, axes = plt.subplots(len(results), 1, figsize=(12, 4.5 * len(results)), squeeze=False)
    for ax, r in zip(axes[:, 0], results, strict=True):
        assert r.cooccurrence is not None
        counts, phones, _ = r.cooccurrence
        order = np.argsort(counts.argmax(0), kind="stable")
        p = counts[:, order] / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(p, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(phones)), phones, fontsize=6)
        ax.set_xlabel("unit (sorted by most likely phone)")
        ax.set_title(f"{r.summary['name']}: p(unit | phone), PNMI {r.summary['pnmi']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def per_voice_pnmi(path: Path, results: Sequence[ProbeResult]) -> None:
    """Grouped bars: PNMI per voice of the probed split, one colour per tokenizer."""
    plt = pyplot()
    voices = sorted({v for r in results for v in r.per_voice_pnmi})
    width = 0.8 / max(1, len(results))
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(voices) + 2), 4))
    for i, r in enumerate(results):
        ax.bar(
            np.arange(len(voices)) + i * width,
            [r.per_voice_pnmi.get(v, np.nan) for v in voices],
            width,
            label=r.summary["name"],
        )
    ax.set_xticks(
        np.arange(len(voices)) + width * (len(results) - 1) / 2,
        voices,
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_ylabel("PNMI")
    ax.set_title("PNMI per voice")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pnmi_bitrate(path: Path, results: Sequence[ProbeResult]) -> None:
    """PNMI against entropy bitrate (bit/s), one labelled point per tokenizer: up and to the
    left is better (more phone information in fewer bits)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        bps = (r.summary.get("bitrate") or {}).get("entropy_bps")
        pnmi = r.summary.get("pnmi")
        if bps is None or pnmi is None:
            continue
        ax.scatter([bps], [pnmi], s=30)
        ax.annotate(
            r.summary["name"], (bps, pnmi), xytext=(5, 4), textcoords="offset points", fontsize=8
        )
    ax.set_xlabel("entropy bitrate (bit/s)")
    ax.set_ylabel("PNMI")
    ax.set_title("PNMI against bitrate")
    ax.margins(0.2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def layer_weights(path: Path, results: Sequence[ProbeResult]) -> bool:
    """SUPERB's learned layer weights (``--superb``): bars per layer, one colour per task (which
    layers carry phones, which speakers), one panel per encoder, the uniform start dashed. False
    (and no file) when no tokenizer has them."""
    rows = [r.summary for r in results if r.summary.get("superb")]
    if not rows:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 3 * len(rows)), squeeze=False)
    for ax, s in zip(axes[:, 0], rows, strict=True):
        tasks = [t for t in ("phones", "asr", "speaker") if s["superb"].get(t)]
        n = s["superb"]["layers"]
        width = 0.8 / len(tasks)
        for i, t in enumerate(tasks):
            w = s["superb"][t]["weighted"]["layer_weights"]
            ax.bar(np.arange(n) + i * width, w, width, label=t)
        ax.axhline(1 / n, color="grey", lw=0.8, ls="--", label="uniform")
        ax.set_xticks(np.arange(n) + width * (len(tasks) - 1) / 2, [str(i) for i in range(n)])
        ax.set_xlabel("layer (0: transformer input)")
        ax.set_ylabel("softmax weight")
        ax.set_title(f"{s['name']}: learned SUPERB layer weights")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
