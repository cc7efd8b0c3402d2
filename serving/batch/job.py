"""``speechtok batch``: tokenize a corpus on Ray Data into sharded Parquet, resumable, exactly
once.

The pipeline: the listing (driver) -> read and decode (Ray tasks) -> tokenize with ONNX Runtime
by canonical windows (an actor pool; each call batches the windows of several utterances) ->
rows back to the driver, which writes a shard as soon as all of its inputs are in. Shards are
cut by position in the listing, written under a temporary name and renamed when complete
(:mod:`serving.batch.layout`), so a job killed at any point and run again skips its finished
shards, redoes the others, and ends with exactly the rows of an uninterrupted run. A row that
arrives twice (a retried task) is kept once.

Stages ask Ray for fractions of a CPU (decode 0.25, tokenizer 0.5 by default): on a 2-core
machine whole-CPU actors can starve the read stage forever. ONNX Runtime's own threads
(``threads``) are what the tokenizer really uses.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from serving.batch.inputs import BatchInput, list_inputs, listing_digest
from serving.batch.layout import BatchJobError, JobDir
from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.dedup import dedup
from tokenizer.kinds import load_served
from tokenizer.onnx_tokenizer import OnnxTokenizer
from tokenizer.shipped import resolve

log = logging.getLogger(__name__)

IDENTITY = ("fingerprint", "inputs_sha256", "n_inputs", "shard_size", "dedup")
"""What a re-run must share with the job already in the folder to resume it."""

_WORK_SCHEMA = pa.schema(
    [
        ("index", pa.int64()),
        ("units", pa.list_(pa.int32())),
        ("durations", pa.list_(pa.int32())),
        ("n_frames", pa.int32()),
        ("seconds", pa.float64()),
        ("error", pa.string()),
    ]
)


@dataclass(kw_only=True)
class BatchConfig:
    input: Path
    """A folder of audio files, or a ``.jsonl`` / ``.tsv`` manifest."""
    out: Path
    model: str | None = None
    """Model directory or shipped name (None: the shipped default); it must be exported."""
    address: str | None = None
    """Ray cluster to attach to (``auto``, ``ray://host:10001``); None starts Ray locally."""
    shard_size: int = 1000
    """Inputs per Parquet shard."""
    dedup: bool = False
    workers: int = 1
    """Tokenizer actors."""
    threads: int | None = None
    """ONNX Runtime threads per actor (default: this machine's cores / workers)."""
    batch_size: int = 8
    """Utterances per tokenizer call (their windows share the model calls)."""
    read_cpus: float = 0.25
    worker_cpus: float = 0.5
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("shard_size", "workers", "batch_size"):
            if getattr(self, name) < 1:
                raise BatchJobError(
                    f"expected --{name.replace('_', '-')} >= 1, found {getattr(self, name)}"
                )


@dataclass
class Summary:
    files: int
    rows: int
    errors: int
    audio_hours: float
    """Audio tokenized in the whole job (every shard)."""
    run_files: int
    """Inputs tokenized by this run (a resumed run skips finished shards)."""
    run_audio_hours: float
    wall_s: float
    """This run, from the listing to the last shard (Ray start-up included)."""
    pipeline_s: float
    """This run's pipeline alone: from the first input submitted to the last shard written."""
    hours_per_hour: float
    """Audio hours per wall-clock hour of this run's pipeline."""
    skipped_shards: int
    shards: int
    out: str


def decode_batch(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """Read stage: decode each path to 16 kHz mono float32 bytes, or record why it failed."""
    audio, errors = [], []
    for path in batch["path"]:
        try:
            x = decode_audio(str(path))
            audio.append(x.tobytes())
            errors.append("")
        except Exception as e:  # one bad file must not stop the job: it goes to the errors file
            audio.append(b"")
            errors.append(f"{type(e).__name__}: {e}")
    return {"index": batch["index"], "audio": audio, "error": errors}


class TokenizeWorker:
    """Tokenizer stage: one ONNX Runtime session per actor."""

    def __init__(self, model: str, threads: int, dedup: bool) -> None:
        self.tok = load_served(model, threads=threads)
        self.dedup = dedup

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        audios = {
            i: np.frombuffer(a, dtype=np.float32)
            for i, (a, e) in enumerate(zip(batch["audio"], batch["error"], strict=True))
            if not e
        }
        errors = [str(e) for e in batch["error"]]
        units: dict[int, np.ndarray] = {}
        try:
            units = dict(zip(audios, self.tok.tokenize_batch(list(audios.values())), strict=True))
        except Exception:  # find the one that fails, keep the others
            for i, a in audios.items():
                try:
                    units[i] = self.tok.tokenize(a)
                except Exception as e:
                    errors[i] = f"{type(e).__name__}: {e}"
        rows: dict[str, list[Any]] = {name: [] for name in _WORK_SCHEMA.names}
        for i, index in enumerate(batch["index"]):
            u = units.get(i, np.zeros(0, np.int32))
            d = None
            if self.dedup and i in units:
                u, dur = dedup(u)
                d = dur.tolist()
            rows["index"].append(int(index))
            rows["units"].append(u.tolist())
            rows["durations"].append(d)
            rows["n_frames"].append(len(units.get(i, ())))
            rows["seconds"].append(len(audios[i]) / SAMPLE_RATE if i in audios else 0.0)
            rows["error"].append(errors[i] if i not in units else "")
        return pa.table(rows, schema=_WORK_SCHEMA)


def run_batch(config: BatchConfig) -> Summary:
    start = time.perf_counter()
    path = resolve(config.model)
    probe = load_served(path, threads=1)  # fails early if not exported
    inputs = list_inputs(config.input)
    n_shards = math.ceil(len(inputs) / config.shard_size)
    job = JobDir(config.out)
    identity: dict[str, Any] = {
        "fingerprint": probe.fingerprint,
        "inputs_sha256": listing_digest(inputs),
        "n_inputs": len(inputs),
        "shard_size": config.shard_size,
        "dedup": config.dedup,
    }
    existing = job.read_job()
    if existing is not None:
        differs = [k for k in IDENTITY if existing.get(k) != identity[k]]
        if differs:
            raise BatchJobError(
                f"expected {config.out} to hold this job or nothing, found another job there "
                f"(differs in {', '.join(differs)}); use a new --out or remove the folder"
            )
    job.prepare()
    if existing is None:
        job.write_inputs(inputs, config.shard_size)
        job.write_job(_job_record(config, path, probe, identity, n_shards))
    done = job.done_shards()
    pending = [i for i in range(len(inputs)) if i // config.shard_size not in done]
    run_seconds = pipeline_s = 0.0
    if pending:
        with _ray(config.address):
            run_seconds, pipeline_s = _stream_shards(
                config,
                path,
                inputs,
                pending,
                job,
                {
                    "model": probe.name,
                    "fingerprint": probe.fingerprint,
                    "frame_rate": probe.frame_rate,
                },
            )
    all_shards = range(n_shards)
    errors = job.merge_errors(all_shards)
    frames = sum(
        sum(pq.read_table(job.shard(s), columns=["n_frames"])["n_frames"].to_pylist())
        for s in all_shards
    )
    rows = sum(pq.read_metadata(job.shard(s)).num_rows for s in all_shards)
    summary = Summary(
        files=len(inputs),
        rows=rows,
        errors=errors,
        audio_hours=frames / probe.frame_rate / 3600,
        run_files=len(pending),
        run_audio_hours=run_seconds / 3600,
        wall_s=time.perf_counter() - start,
        pipeline_s=pipeline_s,
        hours_per_hour=run_seconds / pipeline_s if pending else 0.0,
        skipped_shards=len(done),
        shards=n_shards,
        out=str(config.out),
    )
    record = job.read_job() or {}
    record.update(complete=True, summary=asdict(summary))
    job.write_job(record)
    return summary


def _job_record(
    config: BatchConfig, path: Path, tok: OnnxTokenizer, identity: dict[str, Any], n_shards: int
) -> dict[str, Any]:
    return {
        "version": 1,
        "input": str(config.input),
        "model": tok.name,
        "model_path": str(path),
        "K": tok.K,
        "frame_rate": tok.frame_rate,
        "window": None if tok.window is None else tok.window.to_dict(),
        "step_ms": None if tok.steps is None else tok.steps.step_ms,
        **identity,
        "n_shards": n_shards,
        "complete": False,
        "command": "speechtok " + " ".join(sys.argv[1:]),
    }


@contextmanager
def _ray(address: str | None) -> Iterator[None]:
    """Ray for the job: attached to ``address``, or started here (and stopped after)."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _stream_shards(
    config: BatchConfig,
    model: Path,
    inputs: list[BatchInput],
    pending: list[int],
    job: JobDir,
    facts: dict[str, Any],
) -> tuple[float, float]:
    """Tokenize the ``pending`` inputs and write their shards: (audio seconds, wall seconds
    from the first input submitted to the last shard written)."""
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    t0 = time.perf_counter()
    threads = config.threads or max(1, (os.cpu_count() or 1) // config.workers)
    items = [{"index": i, "path": inputs[i].path} for i in pending]
    blocks = max(1, min(len(items), 20_000) // 4)  # ~4 inputs per block: the read stage streams
    ds: ray.data.Dataset = ray.data.from_items(items, override_num_blocks=blocks)
    ds = ds.map_batches(
        decode_batch, batch_size=config.batch_size, num_cpus=config.read_cpus, batch_format="numpy"
    )
    ds = ds.map_batches(
        TokenizeWorker,
        fn_constructor_kwargs={"model": str(model), "threads": threads, "dedup": config.dedup},
        batch_size=config.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=config.workers),
        num_cpus=config.worker_cpus,
    )
    expected: dict[int, int] = defaultdict(int)
    for i in pending:
        expected[i // config.shard_size] += 1
    buffered: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    seconds = 0.0
    bar = tqdm(
        total=len(inputs),
        initial=len(inputs) - len(pending),
        unit="file",
        desc="batch",
        file=sys.stderr,
        disable=not config.progress,
    )
    for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        assert isinstance(block, pa.Table)
        for row in block.to_pylist():
            index = row["index"]
            shard = index // config.shard_size
            if index in buffered[shard]:
                continue  # a retried task's copy
            buffered[shard][index] = row
            seconds += row["seconds"]
            bar.update(1)
            if len(buffered[shard]) == expected[shard]:
                _write_shard(job, shard, buffered.pop(shard), inputs, facts)
        hours = seconds / 3600
        bar.set_postfix_str(
            f"{hours:.2f} h audio, {hours / max(time.perf_counter() - t0, 1e-9) * 3600:.0f} h/h"
        )
    bar.close()
    if buffered:
        missing = sum(expected[s] - len(rows) for s, rows in buffered.items())
        raise BatchJobError(f"expected every input back from the pipeline, found {missing} missing")
    return seconds, time.perf_counter() - t0


def _write_shard(
    job: JobDir,
    shard: int,
    rows: dict[int, dict[str, Any]],
    inputs: list[BatchInput],
    facts: dict[str, Any],
) -> None:
    ok, errors = [], []
    for index in sorted(rows):
        row, inp = rows[index], inputs[index]
        if row["error"]:
            errors.append({"id": inp.id, "path": inp.path, "error": row["error"]})
            continue
        ok.append(
            {
                "id": inp.id,
                "path": inp.path,
                "units": row["units"],
                "durations": row["durations"],
                "n_frames": row["n_frames"],
                **facts,
            }
        )
    job.write_shard(shard, ok, errors)
    log.debug("wrote shard %d: %d rows, %d errors", shard, len(ok), len(errors))
