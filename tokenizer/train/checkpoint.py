"""Training state on disk, apart from the inference weights: ``RUN/checkpoint.pt`` (model,
optimizer, step, run config), written atomically, and ``RUN/log.jsonl`` (one JSON line per
logged step, and one per training call with its wall time). A run that stops (time limit,
Ctrl-C, crash) resumes from its last checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from tokenizer.errors import InvalidInputError

CHECKPOINT = "checkpoint.pt"
TUNING = frozenset({"checkpoint_every", "log_every", "perturb_jobs"})
"""Run-config fields that may change between pieces of a run (they do not change the result)."""
ADDED: dict[str, Any] = {
    "perturb_strength": 1.0,
    "unit_label_weight": 0.0,
    # DistortConfig's fields, added to the phone fine-tuning's config (distorted crops)
    "distortions": (),
    "distort_probability": 1.0,
    "snr_db": (-5.0, 20.0),
    "rt60_s": (0.2, 1.0),
    "noise_utterances": 200,
    "music_pieces": 16,
    "freeze_frontend": False,
    "perturb_probability": 0.0,  # the phone fine-tuning's speaker-perturbed crops
    "balance_engines": False,
}
"""Run-config fields added after runs were saved, with the value those runs had: a checkpoint
without the field resumes when the run asks for that value."""
LOG = "log.jsonl"


class CheckpointError(InvalidInputError):
    """A run folder holds a checkpoint that does not belong to this run."""


def save_checkpoint(run: Path, state: dict[str, Any]) -> None:
    run.mkdir(parents=True, exist_ok=True)
    tmp = run / (CHECKPOINT + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, run / CHECKPOINT)


def load_checkpoint(run: Path, expected_config: dict[str, Any]) -> dict[str, Any] | None:
    """The run's last state, or None for a new run; fails if the run config changed."""
    path = run / CHECKPOINT
    if not path.is_file():
        return None
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    saved = {k: v for k, v in ADDED.items() if k in expected_config} | state["config"]
    changed = sorted(
        k
        for k in set(expected_config) | set(saved)
        if k not in TUNING and saved.get(k) != expected_config.get(k)
    )
    if changed:
        raise CheckpointError(
            f"expected the run config of the checkpoint in {run} to resume, found changes in "
            f"{changed}; use a new --run folder for a different config"
        )
    return state


def log_line(run: Path, record: dict[str, Any]) -> None:
    run.mkdir(parents=True, exist_ok=True)
    with (run / LOG).open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(run: Path) -> list[dict[str, Any]]:
    path = run / LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def log_call(run: Path, step: int, seconds: float) -> dict[str, Any]:
    """Log one training call (a piece of the run) with its wall time; the card fields of the
    run's wall time over all its logged calls and their count."""
    log_line(run, {"step": step, "call_s": round(seconds, 1)})
    calls = [r["call_s"] for r in read_log(run) if "call_s" in r]
    return {"wall_s_all_calls": round(sum(calls), 1), "calls": len(calls)}
