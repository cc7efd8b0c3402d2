"""``speechtok batch verify OUTDIR``: check a finished job — every input present exactly once
(as a row or an error), every shard there with the right schema, one fingerprint, frame counts
that add up, and a summary that matches."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from serving.batch.layout import SCHEMA, SHARDS, BatchJobError, JobDir

MAX_PROBLEMS = 20


def verify(outdir: str | Path) -> dict[str, Any]:
    """A report: ``ok``, counts, and up to ``MAX_PROBLEMS`` problems (what was expected and what
    was found)."""
    job = JobDir(outdir)
    record = job.read_job()
    if record is None:
        raise BatchJobError(f"expected a batch job folder with job.json, found none at {outdir}")
    problems: list[str] = []
    if not record.get("complete"):
        problems.append("expected a complete job, found job.json without complete: true")
    listing = job.read_inputs()
    if len(listing) != record["n_inputs"]:
        problems.append(
            f"expected {record['n_inputs']} inputs in inputs.jsonl, found {len(listing)}"
        )
    by_shard: dict[int, list[str]] = {}
    for inp in listing:
        by_shard.setdefault(inp["shard"], []).append(inp["id"])
    present = {int(p.stem.split("-")[1]) for p in (job.root / SHARDS).glob("shard-*.parquet")}
    expected_shards = set(range(record["n_shards"]))
    if present != expected_shards:
        missing, extra = sorted(expected_shards - present), sorted(present - expected_shards)
        problems.append(
            f"expected shards 0..{record['n_shards'] - 1}, found missing {missing[:5]} "
            f"and extra {extra[:5]}"
        )
    seen: Counter[str] = Counter()
    rows = errors = frames = 0
    for shard in sorted(expected_shards & present):
        table = pq.read_table(job.shard(shard))
        if table.schema != SCHEMA:
            problems.append(f"expected shard {shard} with the batch schema, found {table.schema}")
            continue
        ids = table.column("id").to_pylist()
        failed = [e["id"] for e in _errors(job, shard)]
        failed_set = set(failed)
        in_order = [i for i in by_shard.get(shard, []) if i not in failed_set]
        if sorted(ids + failed) != sorted(by_shard.get(shard, [])):
            problems.append(
                f"expected shard {shard} to hold its {len(by_shard.get(shard, []))} inputs as rows "
                f"or errors, found {len(ids)} rows and {len(failed)} errors that do not match"
            )
        elif ids != in_order:
            problems.append(f"expected shard {shard}'s rows in input order, found another order")
        seen.update(ids + failed)
        rows += len(ids)
        errors += len(failed)
        for row in table.to_pylist():
            frames += row["n_frames"]
            problems += _row_problems(row, record)
    dupes = [i for i, n in seen.items() if n > 1]
    if dupes:
        problems.append(f"expected each input once, found {len(dupes)} more than once: {dupes[:5]}")
    summary = record.get("summary") or {}
    if summary and (summary.get("rows"), summary.get("errors")) != (rows, errors):
        problems.append(
            f"expected the summary's {summary.get('rows')} rows and {summary.get('errors')} "
            f"errors, found {rows} rows and {errors} errors"
        )
    if job.errors.is_file():
        merged = sum(1 for line in job.errors.read_text().splitlines() if line.strip())
        if merged != errors:
            problems.append(f"expected {errors} lines in errors.jsonl, found {merged}")
    return {
        "ok": not problems,
        "out": str(outdir),
        "inputs": len(listing),
        "rows": rows,
        "errors": errors,
        "shards": len(present),
        "audio_hours": round(frames / record["frame_rate"] / 3600, 4),
        "fingerprint": record["fingerprint"],
        "problems": problems[:MAX_PROBLEMS],
        "more_problems": max(0, len(problems) - MAX_PROBLEMS),
    }


def _errors(job: JobDir, shard: int) -> list[dict[str, Any]]:
    path = job.shard_errors(shard)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _row_problems(row: dict[str, Any], record: dict[str, Any]) -> list[str]:
    out = []
    where = f"row {row['id']!r}"
    for key in ("fingerprint", "model", "frame_rate"):
        if row[key] != record[key]:
            out.append(f"expected {key} {record[key]!r} in {where}, found {row[key]!r}")
    units, durations = row["units"], row["durations"]
    if record["dedup"]:
        if durations is None or len(durations) != len(units) or sum(durations) != row["n_frames"]:
            out.append(f"expected durations summing to n_frames={row['n_frames']} in {where}")
    elif durations is not None or len(units) != row["n_frames"]:
        out.append(f"expected {row['n_frames']} units and no durations in {where}")
    if units and not 0 <= min(units) <= max(units) < record["K"]:
        out.append(
            f"expected units in [0, {record['K']}) in {where}, found {min(units)}..{max(units)}"
        )
    return out
