"""Phone alignments: segments in seconds, frame labels, and readers for users' formats.

A :class:`Segment` is ``(phone, start, end)`` in seconds. Readers turn Praat TextGrids (as
written by Montreal Forced Aligner) and frame-level phone TSVs (one utterance per line, as in
the HuBERT/Spin evaluation data) into segments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tokenizer.corpus.phones import SIL, normalize_phone
from tokenizer.errors import CorpusError


class Segment(NamedTuple):
    phone: str
    start: float
    """Seconds from the start of the audio."""
    end: float
    """Seconds from the start of the audio (exclusive)."""


def tidy_segments(
    raw: Iterable[tuple[str, float, float]], duration: float, *, markers: Iterable[str] = ()
) -> list[Segment]:
    """Clip to ``[0, duration]``, drop empty segments, give zero-length ``markers`` (espeak's
    ``;``, ``||``) to the previous phone, merge runs of SIL, and cover the tail with SIL."""
    out: list[list] = []
    skip = set(markers)
    for phone, s, e in raw:
        s, e = min(max(s, 0.0), duration), min(e, duration)
        if phone in skip:
            if out:
                out[-1][2] = max(out[-1][2], e)
            continue
        if e - s <= 0:
            continue
        if out and phone == SIL and out[-1][0] == SIL:
            out[-1][2] = e
        else:
            out.append([phone, s, e])
    if out and out[-1][2] < duration:
        if out[-1][0] == SIL:
            out[-1][2] = duration
        else:
            out.append([SIL, out[-1][2], duration])
    return [Segment(p, float(s), float(e)) for p, s, e in out]


def frame_labels(segments: Sequence[Segment], n_frames: int, frame_rate: float) -> list[str]:
    """The phone at each frame's centre (frames of ``1/frame_rate`` s); frames past the last
    segment get the last segment's phone."""
    if not segments:
        raise CorpusError("expected at least one phone segment, found none")
    ends = np.array([s.end for s in segments])
    centres = (np.arange(n_frames) + 0.5) / frame_rate
    idx = np.minimum(np.searchsorted(ends, centres, side="right"), len(segments) - 1)
    return [segments[i].phone for i in idx]


def segments_from_frames(labels: Sequence[str], frame_shift: float) -> list[Segment]:
    """Run-length encode frame labels (``frame_shift`` seconds apart) into segments."""
    out: list[Segment] = []
    for i, lab in enumerate(labels):
        if out and out[-1].phone == lab:
            out[-1] = out[-1]._replace(end=(i + 1) * frame_shift)
        else:
            out.append(Segment(lab, i * frame_shift, (i + 1) * frame_shift))
    return out


def read_textgrid(
    path: str | Path, tier: str = "phones", *, normalize: bool = True
) -> list[Segment]:
    """Read one interval tier of a Praat TextGrid (long or short text format, as MFA writes it).

    With ``normalize``, labels go through :func:`~tokenizer.corpus.phones.normalize_phone`
    (stress digits dropped, silences to SIL); without, they are kept as written."""
    text = Path(path).read_text(encoding="utf-8-sig")
    try:
        tiers = _textgrid_tiers(text, path)
    except (IndexError, ValueError, TypeError) as e:
        raise CorpusError(
            f"expected a well-formed TextGrid, found a damaged one ({e}): {path}"
        ) from e
    if tier not in tiers:
        raise CorpusError(
            f"expected an interval tier named {tier!r} in {path}, found {list(tiers)}"
        )
    fix = normalize_phone if normalize else str
    return [Segment(fix(lab), s, e) for s, e, lab in tiers[tier]]


# Both TextGrid formats list the same values in the same order (the long one adds 'name ='
# labels and bracketed indices such as 'item [1]:', which are skipped).
_TEXTGRID_TOKEN = re.compile(
    r'"(?P<string>(?:[^"]|"")*)"|\[\d*\]|(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)'
)


def _textgrid_tiers(text: str, path: str | Path) -> dict[str, list[tuple[float, float, str]]]:
    if "ooTextFile" not in text or "TextGrid" not in text:
        raise CorpusError(f"expected a Praat TextGrid (ooTextFile), found something else: {path}")
    values: list[str | float] = []
    for m in _TEXTGRID_TOKEN.finditer(text):
        if m["string"] is not None:
            values.append(m["string"].replace('""', '"'))
        elif m["number"] is not None:
            values.append(float(m["number"]))
    tiers: dict[str, list[tuple[float, float, str]]] = {}
    start = values.index("TextGrid") + 1
    n_tiers, i = int(values[start + 2]), start + 3  # after xmin, xmax, tier count
    for _ in range(n_tiers):
        kind, name, count = values[i], values[i + 1], int(values[i + 4])
        i += 5
        width = 3 if kind == "IntervalTier" else 2  # TextTier points: time, mark
        fields = values[i : i + width * count]
        if len(fields) != width * count:
            raise ValueError(f"tier {name!r} ends early")
        i += width * count
        if kind == "IntervalTier":
            tiers[str(name)] = [
                (float(fields[k]), float(fields[k + 1]), str(fields[k + 2]))
                for k in range(0, len(fields), 3)
            ]
    return tiers


def read_frame_tsv(path: str | Path, frame_shift: float) -> dict[str, list[Segment]]:
    """Read frame-level phone labels: lines ``<utt_id>\\t<label> <label> ...`` (10 ms or 20 ms
    frames, ``frame_shift`` in seconds). Labels are normalised like TextGrid labels."""
    if frame_shift not in (0.01, 0.02):
        raise CorpusError(f"expected a frame shift of 0.01 or 0.02 s, found {frame_shift}")
    out: dict[str, list[Segment]] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise CorpusError(
                f"expected '<utt_id><TAB><labels>' on line {n} of {path}, found {line[:60]!r}"
            )
        utt, labels = line.split("\t", 1)
        if utt in out:
            raise CorpusError(f"expected each utterance once in {path}, found {utt!r} again")
        out[utt] = segments_from_frames([normalize_phone(x) for x in labels.split()], frame_shift)
    return out


def write_textgrid(path: str | Path, segments: Sequence[Segment], tier: str = "phones") -> None:
    """Write segments as a one-tier Praat TextGrid (long text format), e.g. to open in Praat."""
    xmax = segments[-1].end if segments else 0.0
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0",
             f"xmax = {xmax}", "tiers? <exists>", "size = 1", "item []:", "    item [1]:",
             '        class = "IntervalTier"', f'        name = "{tier}"', "        xmin = 0",
             f"        xmax = {xmax}", f"        intervals: size = {len(segments)}"]  # fmt: skip
    for i, (phone, start, end) in enumerate(segments, 1):
        text = phone.replace('"', '""')
        lines += [f"        intervals [{i}]:", f"            xmin = {start}",
                  f"            xmax = {end}", f'            text = "{text}"']  # fmt: skip
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
