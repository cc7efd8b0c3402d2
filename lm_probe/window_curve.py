"""Streaming agreement: how often canonical-window units equal full-utterance units, and the
curve over a grid of windows (agreement vs algorithmic latency) that picks a model's default
window (``speechtok streaming-curve``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tokenizer.features import FRAME_MS
from tokenizer.windows import Encode, WindowSpec, tokenize_windowed

MIN_AGREEMENT = 0.97
MAX_LATENCY_MS = 400

DEFAULT_GRID = [
    WindowSpec(left, chunk, right)
    for left, chunk, right in itertools.product((0, 320, 960), (160, 320), (0, 80, 160, 240))
]
"""Left context 0 / 0.32 / 0.96 s x chunk 160 / 320 ms x lookahead 0-240 ms."""


def grid_for(context_frames: tuple[int, int] | None) -> list[WindowSpec]:
    """``DEFAULT_GRID``, plus for a bounded-context model (``EncoderConfig.context_frames``)
    the windows whose left context and lookahead just cover what a frame depends on, and half
    of that, with chunks of 160 ms, 320 ms and the longest that keeps 400 ms latency."""
    if context_frames is None:
        return list(DEFAULT_GRID)
    left, right = (FRAME_MS * f for f in context_frames)
    chunks = {160, 320, max(FRAME_MS, MAX_LATENCY_MS - right)}
    extra = [
        WindowSpec(lf, c, rf)
        for lf, c, rf in itertools.product(
            (FRAME_MS * (left // FRAME_MS // 2), left),
            sorted(chunks),
            (FRAME_MS * (right // FRAME_MS // 2), right),
        )
    ]
    return list(DEFAULT_GRID) + [w for w in extra if w not in DEFAULT_GRID]


def agreement(
    audios: Sequence[np.ndarray], full: Sequence[np.ndarray], spec: WindowSpec, encode: Encode
) -> float:
    """Fraction of frames whose windowed unit equals the full-utterance unit."""
    same = total = 0
    for units, ref in zip(tokenize_windowed(audios, spec, encode), full, strict=True):
        same += int(np.sum(units == ref))
        total += len(ref)
    return same / total if total else float("nan")


def curve(
    audios: Sequence[np.ndarray],
    encode: Encode,
    grid: Sequence[WindowSpec],
    on_point: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One point per window of ``grid``: window, latency_ms, window_ms, agreement."""
    full = [u for a in audios for u in encode([a])]
    points = []
    for spec in grid:
        point = {
            **spec.to_dict(),
            "latency_ms": spec.latency_ms,
            "window_ms": spec.left_ms + spec.chunk_ms + spec.right_ms,
            "agreement": agreement(audios, full, spec, encode),
        }
        points.append(point)
        if on_point:
            on_point(point)
    return points


def choose(points: Sequence[dict[str, Any]]) -> tuple[WindowSpec, str]:
    """Among windows with agreement >= 97 % at <= 400 ms algorithmic latency, the cheapest one
    (least encoder work per second of audio: window / chunk), then the lowest latency; if none
    qualifies, the best agreement at <= 400 ms, saying so."""
    ok = [p for p in points if p["latency_ms"] <= MAX_LATENCY_MS]
    good = [p for p in ok if p["agreement"] >= MIN_AGREEMENT]
    if good:
        best = min(good, key=lambda p: (p["window_ms"] / p["chunk_ms"], p["latency_ms"]))
        why = (
            f"the cheapest window (encoder work x{best['window_ms'] / best['chunk_ms']:.2f}) "
            f"with >= {MIN_AGREEMENT:.0%} agreement at <= {MAX_LATENCY_MS} ms: "
            f"{best['agreement']:.3f} at {best['latency_ms']} ms"
        )
    else:
        best = max(ok or points, key=lambda p: (p["agreement"], -p["latency_ms"]))
        why = (
            f"no window reaches {MIN_AGREEMENT:.0%} agreement at <= {MAX_LATENCY_MS} ms; "
            f"best there: {best['agreement']:.3f} at {best['latency_ms']} ms"
        )
    return WindowSpec(best["left_ms"], best["chunk_ms"], best["right_ms"]), why


def markdown(points: Sequence[dict[str, Any]], chosen: WindowSpec, why: str) -> str:
    rows = ["| left ms | chunk ms | right ms | latency ms | agreement |", "|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: (p["latency_ms"], p["left_ms"])):
        mark = (
            " **(default)**"
            if WindowSpec(p["left_ms"], p["chunk_ms"], p["right_ms"]) == chosen
            else ""
        )
        rows.append(
            f"| {p['left_ms']} | {p['chunk_ms']} | {p['right_ms']} | {p['latency_ms']} "
            f"| {p['agreement']:.4f}{mark} |"
        )
    return "\n".join(rows) + f"\n\nDefault window: {chosen.to_dict()} — {why}.\n"


def plot(path: Any, points: Sequence[dict[str, Any]], title: str) -> None:
    from lm_probe.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (left, chunk), group in itertools.groupby(
        sorted(points, key=lambda p: (p["left_ms"], p["chunk_ms"], p["latency_ms"])),
        key=lambda p: (p["left_ms"], p["chunk_ms"]),
    ):
        g = list(group)
        ax.plot(
            [p["latency_ms"] for p in g],
            [p["agreement"] for p in g],
            marker="o",
            label=f"left {left} ms, chunk {chunk} ms",
        )
    ax.axhline(MIN_AGREEMENT, color="grey", ls="--", lw=0.8)
    ax.axvline(MAX_LATENCY_MS, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("algorithmic latency = chunk + lookahead (ms)")
    ax.set_ylabel("agreement with full-utterance units")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
