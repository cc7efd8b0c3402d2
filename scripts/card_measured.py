"""Append the measured numbers to the shipped models' cards: the probe's side-by-side table
(report.md), the streaming-window curve (curve.md) and the commands that produced them.
Usage: python scripts/card_measured.py [--steps PROBE_STEP,CURVE_STEP] PROBE_DIR CURVE_DIR
MODEL_DIR... (the ``scripts/train_default.sh`` steps that measured them; default
``probe,window``). CURVE_DIR ``-`` keeps each card's streaming-window section as it is.
A previous "## Measured" section is replaced."""

from __future__ import annotations

import argparse
from pathlib import Path

MARK = "\n## Measured\n"
CURVE = "\n### Streaming windows\n"


def main(probe: Path, curve: Path, models: list[Path], steps: tuple[str, str]) -> None:
    report = (probe / "report.md").read_text().strip()
    report = "\n".join(line for line in report.splitlines() if not line.startswith(("# ", "![")))
    section = (
        f"{MARK}\nOn the corpus's `test` split (held-out sentences; half of them read by held-out "
        f"voices), as served (by incremental steps for a model exported with them, else by "
        f"canonical windows), by `scripts/train_default.sh {steps[0]}`:\n\n{report.strip()}\n"
    )
    for model in models:
        card = model / "README.md"
        text = card.read_text()
        if str(curve) == "-":
            kept = text.split(CURVE, 1)[1] if CURVE in text else ""
            curve_part = CURVE + kept if kept else ""
        else:
            curve_part = (
                f"{CURVE}\nAgreement of canonical-window units with full-utterance units on 40 "
                f"`dev` utterances (`scripts/train_default.sh {steps[1]}`):\n\n"
                f"{(curve / 'curve.md').read_text().strip()}\n"
            )
        text = text.split(MARK)[0].rstrip() + "\n" + section + curve_part
        card.write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="probe,window")
    parser.add_argument("probe", type=Path)
    parser.add_argument("curve", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    args = parser.parse_args()
    probe_step, curve_step = args.steps.split(",")
    main(args.probe, args.curve, args.models, (probe_step, curve_step))
