"""What a batch job tokenizes: an ordered list of (id, path), from a folder of audio files or a
manifest (``.jsonl`` with ``id``/``audio`` fields, or a fairseq ``.tsv``).

The order is the job's order: inputs are cut into shards by position, so the same listing always
gives the same shards.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tokenizer.corpus.manifest import read_manifest
from tokenizer.errors import CorpusError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass(frozen=True)
class BatchInput:
    id: str
    path: str
    """Absolute path of the audio file."""


def list_inputs(source: str | Path) -> list[BatchInput]:
    """Inputs of a folder (audio files below it, sorted by relative path; the id is the
    relative path without its suffix) or of a manifest file (its order and ids)."""
    source = Path(source)
    if source.is_dir():
        files = sorted(
            p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
        )
        if not files:
            raise CorpusError(
                f"expected audio files ({', '.join(AUDIO_SUFFIXES)}) below {source}, found none"
            )
        inputs = [
            BatchInput(p.relative_to(source).with_suffix("").as_posix(), str(p.resolve()))
            for p in files
        ]
    elif source.suffix in (".jsonl", ".tsv"):
        root = source.parent
        inputs = [
            BatchInput(u.id, str(u.audio_path(root).absolute())) for u in read_manifest(source)
        ]
        if not inputs:
            raise CorpusError(f"expected at least one utterance in {source}, found none")
    else:
        raise CorpusError(
            f"expected a folder or a .jsonl/.tsv manifest as input, found {source}"
            + ("" if source.exists() else " (no such file or folder)")
        )
    seen: dict[str, str] = {}
    for inp in inputs:
        if inp.id in seen:
            raise CorpusError(
                f"expected unique ids in {source}, found {inp.id!r} twice "
                f"({seen[inp.id]} and {inp.path})"
            )
        seen[inp.id] = inp.path
    return inputs


def listing_digest(inputs: list[BatchInput]) -> str:
    """sha256 of the listing (ids, paths and order): what a re-run must match to resume."""
    h = hashlib.sha256()
    for inp in inputs:
        h.update(json.dumps(asdict(inp)).encode() + b"\n")
    return h.hexdigest()
