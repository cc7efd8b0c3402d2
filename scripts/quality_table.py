"""The token-quality comparison table of the README from probe reports of several splits.

    python scripts/quality_table.py data/probe-wide-test/report.json \
        data/probe-wide-unseen/report.json [--relative-to NAME]

One row per tokenizer (in the order of the first report), one column per metric, each cell
``test / unseen`` (the reports' splits, in the order given). ``--relative-to NAME`` adds the
PNMI change relative to that tokenizer in each split. ``--by-engine`` gives instead one PNMI
column per synthesis engine of each report (a report of one engine: one column for its split),
with the change relative to ``NAME`` in each cell.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

COLUMNS = [
    ("PNMI ↑", "pnmi", "{:.3f}"),
    ("phone purity ↑", "phone_purity", "{:.3f}"),
    ("perturbation agreement ↑", "speaker.perturb_agreement", "{:.3f}"),
    ("PNMI perturbed ↑", "speaker.pnmi_perturbed", "{:.3f}"),
    ("cross-voice edit distance ↓", "speaker.edit_distance", "{:.3f}"),
    ("speaker-ID acc. ↓", "speaker.speaker_id_acc", "{:.3f}"),
    ("4-gram ppl, dedup ↓", "ngram.dedup.ppl", "{:.2f}"),
    ("run length (frames)", "run_length", "{:.2f}"),
]


def get(d: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        d = d.get(key) if isinstance(d, dict) else None
    return d


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", type=Path)
    p.add_argument("--relative-to", help="tokenizer whose PNMI the others are compared with")
    p.add_argument("--by-engine", action="store_true", help="PNMI per engine of each report")
    args = p.parse_args()
    docs = [json.loads(r.read_text()) for r in args.reports]
    by_split = [{t["name"]: t for t in d["tokenizers"]} for d in docs]
    names = [t["name"] for t in docs[0]["tokenizers"]]
    if args.by_engine:
        engine_table(docs, by_split, names, args.relative_to)
        return
    splits = " / ".join(d["split"] for d in docs)
    head = ["tokenizer"] + [c[0] for c in COLUMNS]
    if args.relative_to:
        head.append(f"PNMI vs {args.relative_to}")
    print(f"Cells: {splits}.\n")
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for name in names:
        cells = [name]
        for _, key, fmt in COLUMNS:
            values = [get(s.get(name, {}), key) for s in by_split]
            cells.append(" / ".join("—" if v is None else fmt.format(v) for v in values))
        if args.relative_to:
            rel = [s[name]["pnmi"] / s[args.relative_to]["pnmi"] - 1 for s in by_split]
            cells.append(" / ".join(f"{r:+.1%}" for r in rel))
        print("| " + " | ".join(cells) + " |")


def engine_table(
    docs: list[Any], by_split: list[dict[str, Any]], names: list[str], relative_to: str | None
) -> None:
    """One row per tokenizer, one PNMI column per (report, engine)."""
    columns = []
    for doc, tokenizers in zip(docs, by_split, strict=True):
        engines = tokenizers[names[0]].get("by_engine") or {}
        columns += [(f"{doc['split']}: {e}", tokenizers, f"by_engine.{e}.pnmi") for e in engines]
        columns += [] if engines else [(f"{doc['split']}: all voices", tokenizers, "pnmi")]
    head = ["tokenizer"] + [f"PNMI, {label} ↑" for label, _, _ in columns]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for name in names:
        cells = [name]
        for _, tokenizers, key in columns:
            value = get(tokenizers.get(name, {}), key)
            base = get(tokenizers.get(relative_to or "", {}), key)
            text = "—" if value is None else f"{value:.3f}"
            cells.append(text + (f" ({value / base - 1:+.1%})" if value and base else ""))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
