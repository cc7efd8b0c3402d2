"""Where a tokenizer's PNMI is lost, phone by phone, on several splits.

    python scripts/phone_loss.py data/probe-quality-test/report.json \
        data/probe-quality-unseen/report.json --model dcspin-phones-k100-stream [--top 12]

``1 - PNMI`` is the sum over phones of each phone's share of ``H(phone | unit) / H(phone)``
(the probe's ``phones`` entries, ``lm_probe.metrics.phone_losses``). One row per phone, each cell
``test / unseen`` (the reports' splits, in the order given): its share of the frames, its recall
when each unit is read as its most frequent phone, and the PNMI it loses; then the phones its
frames are most often read as instead, in the last split. Rows are sorted by
how much more the phone loses in the last split than in the first, so the phones that explain
the gap between two test sets come first; ``--top N`` keeps the first N and sums the rest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def losses_of(report: Path, model: str) -> tuple[str, dict[str, dict]]:
    doc = json.loads(report.read_text())
    for t in doc["tokenizers"]:
        if t["name"] == model:
            if not t.get("phones"):
                raise SystemExit(
                    f"expected per-phone losses for {model} in {report}, found none "
                    "(probed before the probe wrote them: probe it again)"
                )
            return doc["split"], {r["phone"]: r for r in t["phones"]}
    names = [t["name"] for t in doc["tokenizers"]]
    raise SystemExit(f"expected tokenizer {model!r} in {report}, found {names}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", type=Path)
    p.add_argument("--model", required=True, help="tokenizer name in the reports")
    p.add_argument("--top", type=int, default=0, help="rows to show (0: every phone)")
    args = p.parse_args()
    splits, tables = zip(*(losses_of(r, args.model) for r in args.reports), strict=True)
    phones = sorted({ph for t in tables for ph in t})
    zero = {"share": 0.0, "recall": 0.0, "lost": 0.0}
    rows = {ph: [t.get(ph, zero) for t in tables] for ph in phones}
    order = sorted(phones, key=lambda ph: rows[ph][0]["lost"] - rows[ph][-1]["lost"])
    shown = order[: args.top] if args.top else order

    def cells(values: list[float], fmt: str) -> str:
        return " / ".join(fmt.format(v) for v in values)

    print(f"{args.model}; cells: {' / '.join(splits)}.\n")
    head = "| phone | share of frames | recall | PNMI lost | lost, last - first |"
    print(f"{head} read as ({splits[-1]}) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for ph in shown:
        r = rows[ph]
        print(
            f"| {ph} | {cells([x['share'] for x in r], '{:.3f}')} | "
            f"{cells([x['recall'] for x in r], '{:.2f}')} | "
            f"{cells([x['lost'] for x in r], '{:.4f}')} | {r[-1]['lost'] - r[0]['lost']:+.4f} | "
            + ", ".join(f"{q} {v:.2f}" for q, v in r[-1].get("read_as", {}).items())
            + " |"
        )
    rest = order[len(shown) :]
    if rest:
        lost = [sum(rows[ph][i]["lost"] for ph in rest) for i in range(len(tables))]
        print(
            f"| {len(rest)} other phones | | | {cells(lost, '{:.4f}')} | "
            f"{lost[-1] - lost[0]:+.4f} | |"
        )
    total = [sum(t[ph]["lost"] for ph in t) for t in tables]
    print(f"| all (1 - PNMI) | | | {cells(total, '{:.4f}')} | {total[-1] - total[0]:+.4f} | |")


if __name__ == "__main__":
    main()
