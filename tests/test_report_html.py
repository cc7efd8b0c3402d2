"""``report.html``: self-contained (every image and clip a data URI), the best value per row
marked, and rendered by headless Chromium with no console errors and every audio clip loaded."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from lm_probe.listening import (
    DPI,
    FIG_WIDTH_IN,
    MARGIN_LEFT,
    MARGIN_RIGHT,
    Clip,
    clip_png,
    phone_track,
    unit_track,
)
from lm_probe.probe import ProbeResult
from lm_probe.report_html import best_columns, write_html
from tests.chromium import file_url, load, png_size
from tests.test_probe import probe, tiny_model  # noqa: F401  (tiny_model is a fixture)
from tokenizer.corpus.alignment import Segment
from tokenizer.corpus.manifest import load_corpus

CELLS = (
    "Array.from(document.querySelectorAll('tbody tr'))"
    ".map(tr => Array.from(tr.cells).map(td => [td.textContent, td.className]))"
)
DURATIONS = "Array.from(document.querySelectorAll('audio')).map(a => a.duration)"
LOADED = "[document.body.dataset.audioLoaded, document.body.dataset.audioFailed]"
SEEK = """new Promise(done => {
  const player = document.querySelector("audio");
  player.addEventListener("seeked", () => done(document.querySelector(".cursor").style.left));
  player.currentTime = player.duration / 2;
})"""


def test_report_html_in_chromium(
    tiny_model: Path,  # noqa: F811
    exported: Path,
    tiny_vocoder: tuple[Path, Path],
    tiny_corpus: Path,
    tmp_path: Path,
) -> None:
    """Two tokenizers, one of them spoken by the vocoder: each utterance (the first two of
    the test split by id; the tiny corpus has one) as the original, its perturbed copy and one
    resynthesis."""
    out = tmp_path / "report"
    done = probe("--model", str(tiny_model), "--model", str(exported),
                 "--corpus", str(tiny_corpus), "--vocoder", str(tiny_vocoder[0]),
                 "--resynth-utterances", "2", "--html-utterances", "2",
                 "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    _, utts = load_corpus(tiny_corpus)
    first = sorted((u for u in utts if u.split == "test"), key=lambda u: u.id)[:2]
    text = (out / "report.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert len(refs) > 3 * len(first) and all(r.startswith("data:") for r in refs)
    assert "url(" not in text and text.count("<audio") == 3 * len(first)
    assert text.count('alt="pnmi_bitrate.png"') == 1

    page = load(file_url(out / "report.html"), [CELLS, DURATIONS, LOADED, SEEK],
                ready="document.body.dataset.audio === 'done'")  # fmt: skip
    assert page.errors == []
    assert {u.split(":")[0] for u in page.urls} <= {"file", "data"}
    assert page.values[LOADED] == [str(3 * len(first)), "0"]
    half = MARGIN_LEFT + (MARGIN_RIGHT - MARGIN_LEFT) / 2  # the play cursor on the time axis
    assert float(page.values[SEEK].rstrip("%")) == pytest.approx(100 * half, abs=0.5)
    heard = page.values[DURATIONS]
    for i, u in enumerate(first):
        clips = heard[3 * i : 3 * i + 3]
        assert u.duration is not None
        assert clips[:2] == pytest.approx([u.duration] * 2, abs=0.01)  # original, perturbed
        assert clips[2] == pytest.approx(u.duration, abs=0.04)  # 320 samples per unit
    rows = {cells[0][0]: cells[1:] for cells in page.values[CELLS]}
    for label, better in (("PNMI ↑", max), ("n-gram ppl, dedup ↓", min)):
        values = [float(v) for v, _ in rows[label]]
        assert [c for _, c in rows[label]].count("best") == 1
        assert rows[label][values.index(better(values))][1] == "best"
    assert [c for _, c in rows["K"]] == ["", ""]
    width, height = png_size(page.screenshot)
    assert (width, height) == (1280, 2000) and len(page.screenshot) > 20_000
    (out / "screenshot.png").write_bytes(page.screenshot)


def test_best_columns_follow_the_arrow() -> None:
    assert best_columns("PNMI ↑", [0.3, 0.5, None]) == {1}
    assert best_columns("ppl ↓", [3.0, 2.0, 2.0]) == {1, 2}
    assert best_columns("K", [16, 32]) == set()  # no direction
    assert best_columns("PNMI ↑", [0.3, None]) == set()  # nothing to compare with
    assert best_columns("PNMI ↑", [0.3, 0.3]) == set()  # a tie of all marks nothing
    assert best_columns("ABX within (units) ↓", [0.25, 0.125]) == {1}


def test_page_without_audio_lists_every_plot(tmp_path: Path) -> None:
    results = [
        ProbeResult({"name": "a<b", "K": 4, "pnmi": 0.25, "frames": 10, "notes": ["x < y"]}),
        ProbeResult({"name": "c", "K": 8, "pnmi": 0.5, "frames": 10, "notes": []}),
    ]
    png = clip_png(Clip("c", np.zeros(1600, np.float32), []))
    (tmp_path / "layer_weights.png").write_bytes(png)
    (tmp_path / "cooccurrence.png").write_bytes(png)
    write_html(tmp_path / "report.html", "corpus", "test", results, [], tmp_path)
    text = (tmp_path / "report.html").read_text()
    assert "<audio" not in text and "--html-utterances 0" in text
    assert "<th>a&lt;b</th>" in text and "<li>x &lt; y</li>" in text
    assert text.index('alt="cooccurrence.png"') < text.index('alt="layer_weights.png"')
    assert '<td class="best" title="best of the row">0.500</td>' in text


def test_tracks_keep_time() -> None:
    track = unit_track("t", np.array([3, 3, 5, 5, 5, 3]), 50.0)
    assert [(round(s, 3), round(e, 3), t) for s, e, t, _ in track.spans] == [
        (0.0, 0.04, "3"), (0.04, 0.1, "5"), (0.1, 0.12, "3")
    ]  # fmt: skip
    phones = phone_track([Segment("AA", 0.0, 0.05), Segment("SIL", 0.05, 0.12)])
    assert [t for _, _, t, _ in phones.spans] == ["AA", "SIL"]
    audio = np.sin(np.arange(1920) / 5).astype(np.float32)
    png = clip_png(Clip("c", audio, [phones, track]))
    assert png_size(png)[0] == round(FIG_WIDTH_IN * DPI)
