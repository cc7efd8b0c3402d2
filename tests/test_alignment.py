"""Alignment helpers and the readers for users' formats (TextGrid, frame-level TSV)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenizer.corpus.alignment import (
    Segment,
    frame_labels,
    read_frame_tsv,
    read_textgrid,
    segments_from_frames,
    tidy_segments,
)
from tokenizer.corpus.phones import normalize_phone
from tokenizer.errors import CorpusError

LONG = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 1.0
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 1.0
        intervals: size = 2
        intervals [1]:
            xmin = 0
            xmax = 0.3
            text = ""
        intervals [2]:
            xmin = 0.3
            xmax = 1.0
            text = "cat [2]"
    item [2]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 1.0
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.3
            text = "sil"
        intervals [2]:
            xmin = 0.3
            xmax = 0.45
            text = "K"
        intervals [3]:
            xmin = 0.45
            xmax = 0.7
            text = "AE1"
        intervals [4]:
            xmin = 0.7
            xmax = 1.0
            text = "T"
"""

SHORT = """File type = "ooTextFile"
Object class = "TextGrid"

0
1.0
<exists>
1
"IntervalTier"
"phones"
0
1.0
3
0
0.25
""
0.25
0.6
"DH"
0.6
1.0
"AH0"
"""

EXPECTED = [Segment("SIL", 0, 0.3), Segment("K", 0.3, 0.45), Segment("AE", 0.45, 0.7),
            Segment("T", 0.7, 1.0)]  # fmt: skip


def test_textgrid_long_format(tmp_path: Path) -> None:
    (tmp_path / "a.TextGrid").write_text(LONG)
    assert read_textgrid(tmp_path / "a.TextGrid") == EXPECTED
    words = read_textgrid(tmp_path / "a.TextGrid", tier="words", normalize=False)
    assert [w.phone for w in words] == ["", "cat [2]"]


def test_textgrid_short_format(tmp_path: Path) -> None:
    (tmp_path / "b.TextGrid").write_text(SHORT)
    assert read_textgrid(tmp_path / "b.TextGrid") == [
        Segment("SIL", 0, 0.25), Segment("DH", 0.25, 0.6), Segment("AH", 0.6, 1.0)
    ]  # fmt: skip


def test_textgrid_errors(tmp_path: Path) -> None:
    (tmp_path / "a.TextGrid").write_text(LONG)
    with pytest.raises(CorpusError, match=r"tier named 'phone'.*\['words', 'phones'\]"):
        read_textgrid(tmp_path / "a.TextGrid", tier="phone")
    (tmp_path / "d.TextGrid").write_text(LONG[: len(LONG) // 2])
    with pytest.raises(CorpusError, match="damaged"):
        read_textgrid(tmp_path / "d.TextGrid")
    (tmp_path / "c.TextGrid").write_text("hello")
    with pytest.raises(CorpusError, match="expected a Praat TextGrid"):
        read_textgrid(tmp_path / "c.TextGrid")


def test_frame_tsv(tmp_path: Path) -> None:
    (tmp_path / "labels.tsv").write_text("u1\tsil sil K AE1 AE1 T\nu2\tB B\n")
    table = read_frame_tsv(tmp_path / "labels.tsv", frame_shift=0.02)
    assert table["u1"] == [Segment("SIL", 0, 0.04), Segment("K", 0.04, 0.06),
                           Segment("AE", 0.06, 0.1), Segment("T", 0.1, 0.12)]  # fmt: skip
    assert table["u2"] == [Segment("B", 0, 0.04)]
    ten = read_frame_tsv(tmp_path / "labels.tsv", frame_shift=0.01)
    assert ten["u1"][-1].end == pytest.approx(0.06)


def test_frame_tsv_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.tsv").write_text("u1 sil K\n")
    with pytest.raises(CorpusError, match="line 1"):
        read_frame_tsv(tmp_path / "bad.tsv", 0.02)
    (tmp_path / "dup.tsv").write_text("u1\tK\nu1\tK\n")
    with pytest.raises(CorpusError, match="'u1' again"):
        read_frame_tsv(tmp_path / "dup.tsv", 0.02)
    with pytest.raises(CorpusError, match=r"0\.01 or 0\.02"):
        read_frame_tsv(tmp_path / "dup.tsv", 0.025)


def test_frame_labels_at_centres() -> None:
    segs = [Segment("SIL", 0, 0.03), Segment("K", 0.03, 0.05), Segment("AE", 0.05, 0.1)]
    # frame centres at 50 Hz: 0.01 0.03 0.05 0.07 0.09 0.11 (past the end -> last phone)
    assert frame_labels(segs, 6, 50.0) == ["SIL", "K", "AE", "AE", "AE", "AE"]
    with pytest.raises(CorpusError):
        frame_labels([], 3, 50.0)


def test_segments_roundtrip_through_frames() -> None:
    labels = ["SIL", "SIL", "K", "AE", "AE", "T"]
    segs = segments_from_frames(labels, 0.02)
    assert frame_labels(segs, len(labels), 50.0) == labels


def test_tidy_segments() -> None:
    raw = [("SIL", 0, 0.1), ("SIL", 0.1, 0.2), ("K", 0.2, 0.2), ("AE", 0.2, 0.4),
           (";", 0.4, 0.45), ("T", 0.45, 0.9)]  # fmt: skip
    assert tidy_segments(raw, 1.0, markers=[";"]) == [
        Segment("SIL", 0, 0.2), Segment("AE", 0.2, 0.45), Segment("T", 0.45, 0.9),
        Segment("SIL", 0.9, 1.0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "phone"),
    [("AH0", "AH"), ("sil", "SIL"), ("", "SIL"), ("sp", "SIL"), ("spn", "SIL"), ("ng", "NG")],
)
def test_normalize_phone(label: str, phone: str) -> None:
    assert normalize_phone(label) == phone
