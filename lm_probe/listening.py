"""Listening examples for ``report.html``: a few test utterances as the reader hears them
(the original, its speaker-perturbed copy, each tokenizer's resynthesis when a vocoder is given)
with what each tokenizer makes of them, as time-aligned tracks of deduplicated units under a
spectrogram, beside the phone alignment.

Every clip keeps the timing of the original: the perturbation changes voice, not duration, and
the vocoder speaks 320 samples per input frame, so one time axis serves all tracks.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lm_probe.plots import pyplot
from lm_probe.probe import ProbeConfig
from lm_probe.speaker import perturbed_copy
from lm_probe.units import UnitSource
from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.corpus.alignment import Segment
from tokenizer.corpus.manifest import Utterance
from tokenizer.dedup import dedup

if TYPE_CHECKING:
    from vocoder.runtime import Vocoder

FIG_WIDTH_IN = 10.0
DPI = 100
SPEC_HEIGHT_IN = 1.5
TRACK_HEIGHT_IN = 0.28
MARGIN_LEFT = 0.16
"""Figure fraction left of the time axis (track names sit there)."""
MARGIN_RIGHT = 0.99
"""Figure fraction where the time axis ends."""
PALETTE_COLOURS = 64
"""Colours of the palette PNG a clip's figure is stored as (keeps the page small)."""
GREYS = ("#e4e4e4", "#c8c8c8")
"""Alternating fills of phone spans."""


@dataclass(frozen=True)
class Track:
    """One row under a spectrogram: labelled spans (start s, end s, text, colour index)."""

    name: str
    spans: list[tuple[float, float, str, int]]
    grey: bool = False
    """Alternate two greys (phones) instead of a colour per index (units)."""


@dataclass(frozen=True)
class Clip:
    title: str
    audio: np.ndarray
    """16 kHz mono float32."""
    tracks: list[Track]


@dataclass(frozen=True)
class Example:
    utterance: Utterance
    clips: list[Clip]


def unit_track(name: str, units: np.ndarray, frame_rate: float) -> Track:
    """Deduplicated units as spans; the colour is the unit id, so repeats look alike."""
    ids, durations = dedup(np.asarray(units))
    ends = np.cumsum(durations) / frame_rate
    starts = ends - durations / frame_rate
    return Track(
        name,
        [
            (float(s), float(e), str(int(u)), int(u))
            for u, s, e in zip(ids, starts, ends, strict=True)
        ],
    )


def phone_track(segments: Sequence[Segment]) -> Track:
    """Phone segments, in greys: colour stays the mark of a unit id."""
    return Track("phones", [(s, e, p, i % 2) for i, (p, s, e) in enumerate(segments)], grey=True)


def listening_examples(
    sources: Sequence[UnitSource],
    root: Path,
    test: Sequence[Utterance],
    perturbed: dict[str, np.ndarray] | None,
    config: ProbeConfig,
    n: int,
) -> list[Example]:
    """The first ``n`` test utterances by id, each as clips with every source's units.

    ``perturbed`` holds the probe's perturbed copies where it made them; missing copies are
    made here with the same seed, so they are the copies the metrics heard."""
    chosen = sorted(test, key=lambda u: u.id)[: max(0, n)]
    vocoder = _vocoder(config.vocoder) if chosen else None
    out = []
    for u in chosen:
        audio = decode_audio(u.audio_path(root))
        copy = perturbed.get(u.id) if perturbed else None
        if copy is None:
            copy = perturbed_copy(u.id, audio, config.seed)
        out.append(_example(u, audio, copy, sources, root, vocoder))
    return out


def _example(
    u: Utterance,
    audio: np.ndarray,
    copy: np.ndarray,
    sources: Sequence[UnitSource],
    root: Path,
    vocoder: Vocoder | None,
) -> Example:
    phones = [phone_track(u.alignment)] if u.alignment else []
    units = {s.name: s.units_for(root, [u])[u.id] for s in sources}
    hearing = [s for s in sources if s.tokenizer is not None]  # precomputed units cannot
    clips = [
        Clip(
            "original",
            audio,
            phones + [unit_track(s.name, units[s.name], s.frame_rate) for s in sources],
        ),
        Clip(
            "speaker-perturbed copy",
            copy,
            phones + [unit_track(s.name, s.tokenize(copy), s.frame_rate) for s in hearing],
        ),
    ]
    if vocoder is not None:
        clips += _resynthesized(vocoder, u, hearing, units, phones)
    return Example(u, clips)


def _vocoder(spec: str | None) -> Vocoder | None:
    if spec is None:
        return None
    from vocoder.runtime import Vocoder

    return Vocoder.load(spec)


def _resynthesized(
    vocoder: Vocoder,
    u: Utterance,
    sources: Sequence[UnitSource],
    units: dict[str, np.ndarray],
    phones: list[Track],
) -> list[Clip]:
    """One clip per tokenizer whose units the vocoder speaks: its units in, and what the same
    tokenizer hears in the output."""
    speaker = u.speaker if u.speaker in vocoder.speakers else None
    clips = []
    for s in sources:
        if s.K != vocoder.K:
            continue
        out = vocoder.synthesize(units[s.name], speaker)
        tracks = [
            unit_track(f"{s.name} in", units[s.name], s.frame_rate),
            unit_track(f"{s.name} again", s.tokenize(out), s.frame_rate),
        ]
        clips.append(
            Clip(f"resynthesis by {vocoder.name} from {s.name}'s units", out, phones + tracks)
        )
    return clips


def wav_bytes(audio: np.ndarray) -> bytes:
    """16-bit PCM WAV at 16 kHz (clipped to [-1, 1])."""
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, np.clip(audio, -1, 1), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def log_spectrogram(audio: np.ndarray, n_fft: int = 512, hop: int = 160) -> np.ndarray:
    """dB magnitude (bins x frames) of 25 ms Hann windows every 10 ms, floored 80 dB below the
    peak."""
    win = 400
    x = np.pad(audio.astype(np.float32), (win // 2, win // 2))
    n = max(1, 1 + (len(x) - win) // hop)
    frames = np.lib.stride_tricks.as_strided(
        x, (n, win), (x.strides[0] * hop, x.strides[0]), writeable=False
    )
    mag = np.abs(np.fft.rfft(frames * np.hanning(win).astype(np.float32), n_fft)).T
    db = 20 * np.log10(np.maximum(mag, 1e-8))
    return np.maximum(db, db.max() - 80)


def clip_png(clip: Clip) -> bytes:
    """The clip's spectrogram with its tracks under it on one time axis, as a palette PNG.
    The time axis spans figure fractions ``MARGIN_LEFT`` .. ``MARGIN_RIGHT``."""
    plt = pyplot()
    duration = len(clip.audio) / SAMPLE_RATE
    heights = [SPEC_HEIGHT_IN] + [TRACK_HEIGHT_IN] * len(clip.tracks)
    fig_h = sum(heights) + 0.45
    fig, axes = plt.subplots(
        len(heights),
        1,
        figsize=(FIG_WIDTH_IN, fig_h),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": heights, "hspace": 0.08},
    )
    fig.subplots_adjust(
        left=MARGIN_LEFT, right=MARGIN_RIGHT, top=1 - 0.08 / fig_h, bottom=0.37 / fig_h
    )
    spec = axes[0, 0]
    spec.imshow(
        log_spectrogram(clip.audio),
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, duration, 0, SAMPLE_RATE / 2000),
        interpolation="nearest",
    )
    spec.set_ylabel("kHz", fontsize=7)
    spec.tick_params(labelsize=6)
    px_per_s = (MARGIN_RIGHT - MARGIN_LEFT) * FIG_WIDTH_IN * DPI / max(duration, 1e-3)
    for ax, track in zip(axes[1:, 0], clip.tracks, strict=True):
        _draw_track(ax, track, px_per_s)
    axes[-1, 0].set_xlim(0, duration)
    axes[-1, 0].set_xlabel("seconds", fontsize=7)
    axes[-1, 0].tick_params(labelsize=6)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    plt.close(fig)
    return _palette_png(buf.getvalue())


def _draw_track(ax: Any, track: Track, px_per_s: float) -> None:
    cmap = pyplot().get_cmap("tab20")
    colour = (lambda c: GREYS[c % 2]) if track.grey else (lambda c: cmap(c % 20))
    ax.broken_barh(
        [(s, e - s) for s, e, _, _ in track.spans],
        (0, 1),
        facecolors=[colour(c) for _, _, _, c in track.spans],
        edgecolor="white",
        linewidth=0.4,
        alpha=0.75,
    )
    for s, e, text, _ in track.spans:
        if (e - s) * px_per_s >= 5 * len(text) + 3:  # room for the label at 6 pt
            ax.text((s + e) / 2, 0.5, text, ha="center", va="center", fontsize=6, clip_on=True)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    name = track.name if len(track.name) <= 28 else track.name[:27] + "…"
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    ax.tick_params(labelsize=6)


def _palette_png(png: bytes) -> bytes:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(PALETTE_COLOURS)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
