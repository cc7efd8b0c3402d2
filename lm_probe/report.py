"""Write a probe's ``report.json`` and ``report.md`` (one side-by-side table)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_probe import robustness
from lm_probe.probe import ProbeResult


def _clean(x: Any) -> Any:
    """JSON-safe: NaN becomes null, numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def write_json(path: Path, corpus: str, split: str, results: Sequence[ProbeResult]) -> None:
    doc = {"corpus": corpus, "split": split, "tokenizers": [r.summary for r in results]}
    path.write_text(json.dumps(_clean(doc), indent=2) + "\n")


def _get(d: Any, dotted: str) -> Any:
    """``a.b.0.c`` lookups through dicts and lists; None where anything is missing."""
    for key in dotted.split("."):
        if isinstance(d, list) and key.isdigit() and int(key) < len(d):
            d = d[int(key)]
        elif isinstance(d, dict) and d.get(key) is not None:
            d = d[key]
        else:
            return None
    return d


ROWS = [
    ("K", "K", "{}"),
    ("PNMI ↑", "pnmi", "{:.3f}"),
    ("phone purity ↑", "phone_purity", "{:.3f}"),
    ("cluster purity", "cluster_purity", "{:.3f}"),
    ("units used", "units_used", "{}"),
    ("mean run length, frames per unit", "run_length", "{:.2f}"),
    ("  (phones' own)", "phone_run_length", "{:.2f}"),
    ("n-gram ppl, dedup ↓", "ngram.dedup.ppl", "{:.2f}"),
    ("n-gram bits/unit, dedup ↓", "ngram.dedup.bits_per_unit", "{:.3f}"),
    ("n-gram ppl, raw frames ↓", "ngram.raw.ppl", "{:.2f}"),
    ("n-gram bits/s, raw frames ↓", "ngram.raw.bits_per_second", "{:.1f}"),
    ("perturbation agreement ↑", "speaker.perturb_agreement", "{:.3f}"),
    ("PNMI on perturbed audio ↑", "speaker.pnmi_perturbed", "{:.3f}"),
    ("cross-voice edit distance, dedup ↓", "speaker.edit_distance", "{:.3f}"),
    ("cross-voice edit distance, unit per phone ↓", "speaker.phone_edit_distance", "{:.3f}"),
    ("  (phone labels themselves)", "speaker.phone_label_edit_distance", "{:.3f}"),
    ("speaker-ID accuracy ↓", "speaker.speaker_id_acc", "{:.3f}"),
    ("  (chance)", "speaker.chance", "{:.3f}"),
    ("ABX within (units) ↓", "abx.units.within", "{:.1%}"),
    ("ABX across (units) ↓", "abx.units.across", "{:.1%}"),
    ("ABX within (features) ↓", "abx.features.within", "{:.1%}"),
    ("ABX across (features) ↓", "abx.features.across", "{:.1%}"),
    ("  (features: from)", "abx.features.source", "{}"),
    ("SUPERB PER, weighted layers ↓", "superb.phones.weighted.per", "{:.3f}"),
    ("SUPERB PER, last layer ↓", "superb.phones.last.per", "{:.3f}"),
    ("  (layer weights, 0 = transformer input)", "superb.phones.weighted.layer_weights", "{}"),
    ("SUPERB WER, weighted layers ↓", "superb.asr.weighted.wer", "{:.3f}"),
    ("SUPERB WER, last layer ↓", "superb.asr.last.wer", "{:.3f}"),
    ("SUPERB CER, weighted layers ↓", "superb.asr.weighted.cer", "{:.3f}"),
    ("SUPERB CER, last layer ↓", "superb.asr.last.cer", "{:.3f}"),
    ("  (layer weights)", "superb.asr.weighted.layer_weights", "{}"),
    ("SUPERB speaker-ID accuracy, weighted layers ↑", "superb.speaker.weighted.accuracy", "{:.3f}"),
    ("SUPERB speaker-ID accuracy, last layer ↑", "superb.speaker.last.accuracy", "{:.3f}"),
    ("  (chance)", "superb.speaker.chance", "{:.3f}"),
    ("  (layer weights)", "superb.speaker.weighted.layer_weights", "{}"),
    ("streaming agreement with full utterance ↑", "streaming.0.agreement", "{:.3f}"),
    ("  (algorithmic latency, ms)", "streaming.0.latency_ms", "{}"),
    ("resynthesis frame agreement ↑", "resynthesis.frame_agreement", "{:.3f}"),
    ("  (chance)", "resynthesis.chance", "{:.3f}"),
    (
        "resynthesis unit edit rate, dedup + predicted durations ↓",
        "resynthesis.dedup_unit_edit_rate",
        "{:.3f}",
    ),
    ("resynthesis MCD (dB) ↓", "resynthesis.mcd_db", "{:.2f}"),
    ("resynthesis F0 correlation ↑", "resynthesis.f0_correlation", "{:.3f}"),
    ("nominal bitrate (bit/s)", "bitrate.nominal_bps", "{:.0f}"),
    ("entropy bitrate (bit/s)", "bitrate.entropy_bps", "{:.0f}"),
    ("dedup units/s", "bitrate.dedup_units_per_s", "{:.1f}"),
]


def table_rows(results: Sequence[ProbeResult]) -> list[tuple[str, str, str]]:
    """(label, dotted summary key, format) of every row of the side-by-side table: ``ROWS``,
    then PNMI and purity per engine (splits of several engines), then the acoustic-piece rows
    of the BPE sizes probed. A label with ↑ or ↓ says which way is better."""
    rows = list(ROWS)
    for engine in results[0].summary.get("by_engine") or {}:
        rows.append((f"PNMI, {engine} voices ↑", f"by_engine.{engine}.pnmi", "{:.3f}"))
        rows.append(
            (f"phone purity, {engine} voices ↑", f"by_engine.{engine}.phone_purity", "{:.3f}")
        )
    for i, p in enumerate(results[0].summary.get("pieces") or []):
        rows.append(
            (f"units/piece, BPE {p['vocab_size']} ↑", f"pieces.{i}.units_per_piece", "{:.2f}")
        )
        rows.append((f"pieces/s, BPE {p['vocab_size']}", f"pieces.{i}.pieces_per_s", "{:.1f}"))
    return rows


def row_values(results: Sequence[ProbeResult], key: str) -> list[Any]:
    """One row's values, one per tokenizer; None where missing or NaN."""
    values = [_get(r.summary, key) for r in results]
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]


def cell(value: Any, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def write_markdown(path: Path, corpus: str, split: str, results: Sequence[ProbeResult]) -> None:
    names = [r.summary["name"] for r in results]
    lines = [
        f"# Tokenizer probe: {corpus}, split `{split}`",
        "",
        "| metric | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for label, key, fmt in table_rows(results):
        cells = [cell(v, fmt) for v in row_values(results, key)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    notes = sorted({n for r in results for n in r.summary["notes"]})
    lines += [
        "",
        "Frames: " + ", ".join(f"{r.summary['name']} {r.summary['frames']}" for r in results),
    ]
    lines += [""] + [f"- {n}" for n in notes]
    lines += [
        "",
        "![co-occurrence](cooccurrence.png)",
        "",
        "![per-voice PNMI](pnmi_per_voice.png)",
        "",
        "![PNMI against entropy bitrate](pnmi_bitrate.png)",
        "",
    ]
    if any(r.summary.get("superb") for r in results):
        lines += ["![SUPERB layer weights](layer_weights.png)", ""]
    lines += robustness.markdown(names, [r.summary.get("robustness") for r in results])
    path.write_text("\n".join(lines))
