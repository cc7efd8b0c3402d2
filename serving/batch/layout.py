"""A batch job's output folder, its Parquet schema, and readers.

::

    OUTDIR/
      job.json                    what the job is (model, fingerprint, inputs, shard size, dedup);
                                  "complete" and a summary once every shard is written
      inputs.jsonl                the listing: one {"id", "path", "shard"} per input, in order
      shards/shard-00000.parquet  one row per tokenized input of the shard, in input order
      errors/shard-00000.jsonl    one {"id", "path", "error"} per input of the shard that failed
      errors.jsonl                every shard's errors, merged when the job completes

Every file is written under a temporary name and renamed into place when complete, so a
folder never holds half a shard. A shard's errors are written before its Parquet file, so a
shard whose Parquet file exists is finished: a re-run skips it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from serving.batch.inputs import BatchInput
from tokenizer.errors import InvalidInputError

JOB = "job.json"
INPUTS = "inputs.jsonl"
SHARDS = "shards"
ERRORS_DIR = "errors"
ERRORS = "errors.jsonl"
TMP = ".tmp"

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("path", pa.string()),
        ("units", pa.list_(pa.int32())),
        ("durations", pa.list_(pa.int32())),
        ("n_frames", pa.int32()),
        ("frame_rate", pa.float64()),
        ("model", pa.string()),
        ("fingerprint", pa.string()),
    ]
)
"""One row per utterance. ``units`` are one per frame, or run-length collapsed with
``durations`` (frames per unit) when the job ran with dedup; ``durations`` is null otherwise.
``n_frames`` counts frames before dedup."""


class BatchJobError(InvalidInputError):
    """An output folder that does not hold the expected job."""


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


class JobDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def job(self) -> Path:
        return self.root / JOB

    @property
    def inputs(self) -> Path:
        return self.root / INPUTS

    @property
    def errors(self) -> Path:
        return self.root / ERRORS

    def shard(self, shard: int) -> Path:
        return self.root / SHARDS / f"{shard_name(shard)}.parquet"

    def shard_errors(self, shard: int) -> Path:
        return self.root / ERRORS_DIR / f"{shard_name(shard)}.jsonl"

    def prepare(self) -> None:
        """Make the folders and remove temporary files a killed run left behind."""
        for sub in (SHARDS, ERRORS_DIR):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for tmp in self.root.rglob(f"*{TMP}"):
            tmp.unlink()

    def read_job(self) -> dict[str, Any] | None:
        return json.loads(self.job.read_text()) if self.job.is_file() else None

    def write_job(self, job: dict[str, Any]) -> None:
        write_atomic(self.job, json.dumps(job, indent=2) + "\n")

    def write_inputs(self, inputs: Sequence[BatchInput], shard_size: int) -> None:
        write_atomic(
            self.inputs,
            "".join(
                json.dumps({"id": inp.id, "path": inp.path, "shard": i // shard_size}) + "\n"
                for i, inp in enumerate(inputs)
            ),
        )

    def read_inputs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.inputs.read_text().splitlines() if line]

    def done_shards(self) -> set[int]:
        return {int(p.stem.split("-")[1]) for p in (self.root / SHARDS).glob("shard-*.parquet")}

    def write_shard(self, shard: int, rows: list[dict[str, Any]], errors: list[dict]) -> None:
        """Errors first, then the rows; the Parquet rename is the shard's commit."""
        write_atomic(self.shard_errors(shard), "".join(json.dumps(e) + "\n" for e in errors))
        path = self.shard(shard)
        tmp = path.with_name(path.name + TMP)
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp)
        _fsync(tmp)
        tmp.replace(path)

    def merge_errors(self, shards: Iterable[int]) -> int:
        lines = [
            line
            for s in shards
            for line in self.shard_errors(s).read_text().splitlines()
            if line.strip()
        ]
        write_atomic(self.errors, "".join(line + "\n" for line in lines))
        return len(lines)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + TMP)
    tmp.write_text(text, encoding="utf-8")
    _fsync(tmp)
    tmp.replace(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_table(outdir: str | Path) -> pa.Table:
    """Every shard of a job's output as one Arrow table, in shard (input) order."""
    job = JobDir(outdir)
    if job.read_job() is None:
        raise BatchJobError(f"expected a batch job folder with {JOB}, found none at {outdir}")
    paths = sorted((job.root / SHARDS).glob("shard-*.parquet"))
    if not paths:
        return SCHEMA.empty_table()
    return pa.concat_tables(pq.read_table(p, schema=SCHEMA) for p in paths)


def read_units(outdir: str | Path) -> dict[str, np.ndarray]:
    """``{id: units}`` (int32 arrays) of a job's output. Use :func:`read_table` for the other
    columns (``durations`` of a dedup job, ``n_frames``, ``fingerprint``)."""
    table = read_table(outdir)
    ids = table.column("id").to_pylist()
    units = table.column("units").to_pylist()
    return {i: np.asarray(u, dtype=np.int32) for i, u in zip(ids, units, strict=True)}
