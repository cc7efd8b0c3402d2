"""Append the measured numbers to the shipped models' cards: the probe's side-by-side table
(report.md), the streaming-window curve (curve.md) and the commands that produced them.
Usage: python scripts/card_measured.py [--steps PROBE_STEP,CURVE_STEP] PROBE_DIR[,PROBE_DIR...]
CURVE_DIR MODEL_DIR... (the ``scripts/train_default.sh`` steps that measured them; default
``probe,window``; one table per probe folder, e.g. test and unseen). CURVE_DIR ``-`` keeps
each card's streaming-window section as it is. A previous "## Measured" section is replaced."""

from __future__ import annotations

import argparse
from pathlib import Path

MARK = "\n## Measured\n"
CURVE = "\n### Streaming windows\n"


SPLITS = {
    "test": "held-out sentences; half of them read by held-out voices",
    "unseen": "400 sentences read by the voices of an engine never trained on",
}


def main(probes: list[Path], curve: Path, models: list[Path], steps: tuple[str, str]) -> None:
    section = MARK
    for probe in probes:
        head, *lines = (probe / "report.md").read_text().strip().splitlines()
        split = head.rsplit("`", 2)[-2]  # "# Tokenizer probe: CORPUS, split `SPLIT`"
        report = "\n".join(line for line in lines if not line.startswith(("# ", "![")))
        section += (
            f"\nOn `{head.split(': ', 1)[1].split(',')[0]}`'s `{split}` split "
            f"({SPLITS.get(split, 'see the corpus card')}), by `scripts/train_default.sh "
            f"{steps[0]}` (that step says how the units were made: as served, or one pass per "
            f"utterance with `--full-utterance`):\n\n"
            f"{report.strip()}\n"
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
    parser.add_argument("probe", help="probe output folder(s), comma-separated")
    parser.add_argument("curve", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    args = parser.parse_args()
    probe_step, curve_step = args.steps.split(",")
    probes = [Path(p) for p in args.probe.split(",")]
    main(probes, args.curve, args.models, (probe_step, curve_step))
