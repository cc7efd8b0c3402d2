"""The R-Spin goals of issue 18 from a probe report made with ``--robustness``.

    python scripts/robustness_goals.py data/probe-robustness/report.json \
        --model rspin-tiny --reference dcspin-tiny-k100

One row per tokenizer of the report: clean PNMI, unit agreement with the clean audio's units at
5 dB SNR (each noise, and their mean) and PNMI at 0 dB babble; then the goals of ``--model``
against ``--reference``: agreement at 5 dB >= reference + 0.15 (the mean over the noises),
PNMI at 0 dB babble >= reference + 15 % relative, clean PNMI within 2 % of the reference's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

NOISES = ("white", "pink", "brown", "babble", "music", "hum")


def numbers(rob: dict[str, Any]) -> dict[str, float]:
    rows = {r["condition"]: r for r in rob["conditions"]}
    out = {"clean_pnmi": rob["clean_pnmi"], "babble0_pnmi": rows["babble 0 dB"]["pnmi"]}
    for n in NOISES:
        out[f"{n}5"] = rows[f"{n} 5 dB"]["agreement"]
    out["mean5"] = sum(out[f"{n}5"] for n in NOISES) / len(NOISES)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("report", type=Path)
    p.add_argument("--model", required=True)
    p.add_argument("--reference", required=True)
    args = p.parse_args()
    doc = json.loads(args.report.read_text())
    table = {t["name"]: numbers(t["robustness"]) for t in doc["tokenizers"] if t.get("robustness")}
    head = [
        "tokenizer",
        "clean PNMI",
        *[f"{n} 5 dB" for n in NOISES],
        "mean 5 dB",
        "PNMI babble 0 dB",
    ]
    print("| " + " | ".join(head) + " |")
    print("| --- |" + " --- |" * (len(head) - 1))
    for name, v in table.items():
        cells = [v["clean_pnmi"], *[v[f"{n}5"] for n in NOISES], v["mean5"], v["babble0_pnmi"]]
        print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    m, r = table[args.model], table[args.reference]
    goals = [
        ("agreement at 5 dB, mean of the noises", m["mean5"] - r["mean5"], ">= +0.15", 0.15),
        (
            "PNMI at 0 dB babble, relative",
            m["babble0_pnmi"] / r["babble0_pnmi"] - 1,
            ">= +15 %",
            0.15,
        ),
        ("clean PNMI, relative", m["clean_pnmi"] / r["clean_pnmi"] - 1, ">= -2 %", -0.02),
    ]
    print(f"\n{args.model} against {args.reference}:")
    for label, value, goal, floor in goals:
        shown = f"{value:+.3f}" if "relative" not in label else f"{value:+.1%}"
        print(f"- {label}: {shown} (goal {goal}): {'met' if value >= floor else 'NOT met'}")


if __name__ == "__main__":
    main()
