"""Learning curves of training runs against hours of audio seen, with probe PNMI points.

    python scripts/learning_curve.py --run hubert=data/runs/hubert-iter2 --metric acc_masked \
        --pnmi "0=data/probe-wide-test/report.json:hubert-tiny-km100-wide" --out curve.png

Each ``--run LABEL=RUN`` reads ``RUN/log.jsonl`` (training lines every ``log_every`` steps:
``audio_s`` is the mean audio per step since the previous line; validation lines carry
``valid_<metric>``) and draws ``--metric`` (train and, where logged, valid) against the
cumulative hours of audio seen. Each ``--pnmi HOURS=REPORT:NAME`` puts the PNMI that
``speechtok probe`` measured for tokenizer NAME (in REPORT, a report.json) at HOURS on a second
axis; each ``--pnmi-line REPORT:NAME`` draws one as a dashed reference line (e.g. MFCC k-means,
or the goal). The PNMI axis spans at least 0.1, so small gains look small. Prints the points
as JSON lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def curve(log: Path, metric: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(hours seen, metric) of the training lines and of the validation lines."""
    train, valid, hours, prev = [], [], {0: 0.0}, 0
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if metric in r and "audio_s" in r:
            hours[r["step"]] = hours[prev] + r["audio_s"] * (r["step"] - prev) / 3600
            prev = r["step"]
            train.append((hours[prev], r[metric]))
        elif f"valid_{metric}" in r:
            valid.append((hours.get(r["step"], hours[prev]), r[f"valid_{metric}"]))
    return train, valid


def pnmi_of(spec: str) -> tuple[str, float]:
    """(NAME, PNMI) of ``REPORT:NAME``."""
    report, name = spec.rsplit(":", 1)
    doc = json.loads(Path(report).read_text())
    return name, next(t["pnmi"] for t in doc["tokenizers"] if t["name"] == name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", default=[], metavar="LABEL=RUN")
    p.add_argument("--metric", default="acc_masked")
    p.add_argument("--pnmi", action="append", default=[], metavar="HOURS=REPORT:NAME")
    p.add_argument("--pnmi-line", action="append", default=[], metavar="REPORT:NAME")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for spec in args.run:
        label, run = spec.split("=", 1)
        train, valid = curve(Path(run) / "log.jsonl", args.metric)
        ax.plot(*zip(*train, strict=True), label=f"{label} train", alpha=0.7)
        if valid:
            ax.plot(*zip(*valid, strict=True), "o-", label=f"{label} valid")
        for h, v in train[-1:] + valid[-1:]:
            print(json.dumps({"run": label, "hours_seen": round(h, 3), args.metric: v}))
    ax.set_xlabel("hours of audio seen")
    ax.set_ylabel(args.metric)
    if args.pnmi or args.pnmi_line:
        ax2 = ax.twinx()
        values = []
        for spec in args.pnmi:
            hours, rest = spec.split("=", 1)
            name, value = pnmi_of(rest)
            ax2.plot([float(hours)], [value], "k*", markersize=12)
            ax2.annotate(f"{name}\n{value:.3f}", (float(hours), value), fontsize=7)
            print(json.dumps({"pnmi_of": name, "hours_seen": float(hours), "pnmi": value}))
            values.append(value)
        for spec in args.pnmi_line:
            name, value = pnmi_of(spec)
            ax2.axhline(value, color="grey", linestyle="--", linewidth=1)
            ax2.annotate(f"{name} {value:.3f}", (0, value), fontsize=7, color="grey")
            print(json.dumps({"pnmi_of": name, "pnmi": value}))
            values.append(value)
        low, high = min(values), max(values)
        pad = max(0.0, 0.1 - (high - low)) / 2 + 0.01
        ax2.set_ylim(low - pad, high + pad)
        ax2.set_ylabel("PNMI of the tokenizers named (probe, ★)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
