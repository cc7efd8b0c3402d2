"""Write a probe's ``report.html``: one self-contained page (no server, no network) with the
side-by-side table (best value per row marked), every PNG plot in the report folder, the notes,
and listening examples (audio players, spectrograms and time-aligned unit tracks).

Images and audio are inlined as base64 data URIs; CSS and the page's small script are inline.
The script marks ``<body data-audio="done">`` once every ``<audio>`` has loaded its metadata or
failed (``data-audio-loaded`` / ``data-audio-failed`` count them), and draws a play cursor over
each spectrogram; clicking a spectrogram seeks there.
"""

from __future__ import annotations

import base64
import html
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_probe.listening import MARGIN_LEFT, MARGIN_RIGHT, Example, clip_png, wav_bytes
from lm_probe.probe import ProbeResult
from lm_probe.report import cell, row_values, table_rows

PLOT_CAPTIONS = {
    "cooccurrence.png": "p(unit | phone): units ordered by their most likely phone",
    "pnmi_per_voice.png": "PNMI per voice of the probed split",
    "pnmi_bitrate.png": "PNMI against entropy bitrate (bit/s): up and to the left is better",
    "layer_weights.png": "SUPERB: learned weights of the encoder's layers per task "
    "(dashed: the uniform start)",
}
"""Captions of the plots the probe writes, in page order; other PNGs follow by name."""

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto;
       max-width: 1200px; padding: 0 16px; color: #1d1d1f; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin-bottom: 4px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { position: sticky; top: 0; background: #fafafa; border-bottom: 2px solid #ccc; }
td.sub { color: #777; padding-left: 22px; }
td.best { font-weight: 600; background: #e3f4e1; }
td.best::after { content: " ★"; color: #2e7d32; font-size: 11px; }
figure { margin: 12px 0 20px; }
figcaption { color: #555; font-size: 13px; margin-bottom: 4px; }
img { max-width: 100%; }
.spec { position: relative; display: inline-block; max-width: 100%; cursor: crosshair; }
.spec img { display: block; }
.cursor { position: absolute; top: 0; bottom: 0; width: 2px; background: #00b7ff;
          display: none; pointer-events: none; }
audio { display: block; width: 100%; max-width: 1000px; height: 32px; }
.muted { color: #777; }
"""

SCRIPT = """
(function () {
  const players = Array.from(document.querySelectorAll("audio"));
  let loaded = 0, failed = 0;
  function report() {
    document.body.dataset.audioLoaded = loaded;
    document.body.dataset.audioFailed = failed;
    if (loaded + failed === players.length) document.body.dataset.audio = "done";
  }
  players.forEach(function (player) {
    const box = player.closest("figure").querySelector(".spec");
    const cursor = box.querySelector(".cursor");
    const x0 = parseFloat(box.dataset.x0), x1 = parseFloat(box.dataset.x1);
    function draw() {
      if (!player.duration) return;
      cursor.style.display = "block";
      cursor.style.left = (100 * (x0 + (x1 - x0) * player.currentTime / player.duration)) + "%";
      if (!player.paused) requestAnimationFrame(draw);
    }
    player.addEventListener("play", draw);
    player.addEventListener("seeked", draw);
    box.addEventListener("click", function (event) {
      const rect = box.getBoundingClientRect();
      const f = ((event.clientX - rect.left) / rect.width - x0) / (x1 - x0);
      if (player.duration && f >= 0 && f <= 1) player.currentTime = f * player.duration;
    });
    if (player.error) failed++;
    else if (player.readyState >= 1) loaded++;
    else {
      player.addEventListener("loadedmetadata", function () { loaded++; report(); });
      player.addEventListener("error", function () { failed++; report(); });
    }
  });
  report();
})();
"""


def best_columns(label: str, values: Sequence[Any]) -> set[int]:
    """Columns holding the best value of a row whose label says the direction (↑ higher is
    better, ↓ lower); none where it says none, fewer than two columns have a number, or all
    numbers are equal."""
    if "↑" in label:
        pick = max
    elif "↓" in label:
        pick = min
    else:
        return set()
    numbers_ = {i: float(v) for i, v in enumerate(values) if _is_number(v)}
    if len(numbers_) < 2 or len(set(numbers_.values())) == 1:
        return set()
    best = pick(numbers_.values())
    return {i for i, v in numbers_.items() if v == best}


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def table_html(results: Sequence[ProbeResult]) -> str:
    names = "".join(f"<th>{html.escape(r.summary['name'])}</th>" for r in results)
    lines = [f"<table><thead><tr><th>metric</th>{names}</tr></thead><tbody>"]
    for label, key, fmt in table_rows(results):
        values = row_values(results, key)
        best = best_columns(label, values)
        sub = ' class="sub"' if label.startswith(" ") else ""
        cells = "".join(
            f'<td class="best" title="best of the row">{html.escape(cell(v, fmt))}</td>'
            if i in best
            else f"<td>{html.escape(cell(v, fmt))}</td>"
            for i, v in enumerate(values)
        )
        lines.append(f"<tr><td{sub}>{html.escape(label.strip())}</td>{cells}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def plots_html(folder: Path) -> str:
    """Every PNG in ``folder``: the probe's own plots first (captioned), then the rest by name."""
    order = list(PLOT_CAPTIONS)

    def rank(png: Path) -> tuple[int, str]:
        return (order.index(png.name) if png.name in order else len(order), png.name)

    pngs = sorted(folder.glob("*.png"), key=rank)
    parts = []
    for png in pngs:
        caption = html.escape(PLOT_CAPTIONS.get(png.name, png.stem.replace("_", " ")))
        uri = data_uri("image/png", png.read_bytes())
        parts.append(
            f'<figure><figcaption>{caption} <span class="muted">({html.escape(png.name)})'
            f'</span></figcaption><img alt="{html.escape(png.name)}" src="{uri}"></figure>'
        )
    return "\n".join(parts) or '<p class="muted">No plots in the report folder.</p>'


def examples_html(examples: Sequence[Example]) -> str:
    if not examples:
        return '<p class="muted">No listening examples (<code>--html-utterances 0</code>).</p>'
    parts = [
        '<p class="muted">Each clip: its spectrogram, then the phone alignment and each '
        "tokenizer's deduplicated units on the same time axis (colour = unit id, so repeats "
        "look alike; ids shown where there is room). Click a spectrogram to play from there."
        "</p>"
    ]
    for ex in examples:
        u = ex.utterance
        about = " · ".join(html.escape(x) for x in (u.speaker or "", u.text or "") if x)
        parts.append(f"<h3>{html.escape(u.id)}</h3><p>{about}</p>")
        for clip in ex.clips:
            png = data_uri("image/png", clip_png(clip))
            wav = data_uri("audio/wav", wav_bytes(clip.audio))
            parts.append(
                f"<figure><figcaption>{html.escape(clip.title)}</figcaption>"
                f'<div class="spec" data-x0="{MARGIN_LEFT}" data-x1="{MARGIN_RIGHT}">'
                f'<img alt="spectrogram and units: {html.escape(clip.title)}" src="{png}">'
                '<div class="cursor"></div></div>'
                f'<audio controls preload="metadata" src="{wav}"></audio></figure>'
            )
    return "\n".join(parts)


def write_html(
    path: Path,
    corpus: str,
    split: str,
    results: Sequence[ProbeResult],
    examples: Sequence[Example],
    plots_folder: Path,
) -> None:
    title = f"Tokenizer probe: {corpus}, split {split}"
    frames = ", ".join(f"{r.summary['name']} {r.summary['frames']}" for r in results)
    notes = sorted({n for r in results for n in r.summary["notes"]})
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes) or "<li>none</li>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<h2>Side by side</h2>
<p class="muted">★ best of the row where its label says which way is better
(↑ higher, ↓ lower). Frames: {html.escape(frames)}.</p>
{table_html(results)}
<h2>Notes</h2>
<ul>{notes_html}</ul>
<h2>Plots</h2>
{plots_html(plots_folder)}
<h2>Listening</h2>
{examples_html(examples)}
<script>{SCRIPT}</script>
</body></html>
"""
    path.write_text(page)
