"""Units for the utterances of a corpus split: from a tokenizer, or precomputed in a file.

A units file holds JSON lines with ``units`` and either ``id`` or ``path`` (as
``speechtok tokenize --format jsonl`` prints them); paths are matched to manifest entries by
their resolved location, then by file stem. Any external tokenizer can be probed this way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lm_probe.cache import OFF, ArrayCache, audio_sha256
from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import Utterance
from tokenizer.errors import InvalidInputError
from tokenizer.protocol import Tokenizer


@dataclass(frozen=True)
class UnitSource:
    """A named tokenizer, or a table of precomputed units (which cannot tokenize new audio)."""

    name: str
    K: int
    frame_rate: float
    tokenizer: Tokenizer | None = None
    table: dict[str, np.ndarray] | None = None
    full_utterance: bool = False
    """Tokenize each utterance in one pass instead of by the model's canonical windows."""
    cache: ArrayCache = OFF
    """Units per (fingerprint, backend, mode, audio sha256): ``lm_probe.cache``."""

    def tokenize(self, audio: np.ndarray, full_utterance: bool | None = None) -> np.ndarray:
        """Units of ``audio``, in one pass or by windows (default: the source's mode)."""
        tok = self.tokenizer
        assert tok is not None
        full = self.full_utterance if full_utterance is None else full_utterance
        key = ("units", tok.fingerprint, type(tok).__name__, "full" if full else "windows")
        return self.cache.get(
            (*key, audio_sha256(audio)), lambda: tok.tokenize(audio, full_utterance=full)
        )

    def units_for(
        self,
        root: Path,
        utts: Sequence[Utterance],
        on_progress: Callable[[int], None] | None = None,
    ) -> dict[str, np.ndarray]:
        out = {}
        for u in utts:
            if self.tokenizer is not None:
                out[u.id] = self.tokenize(decode_audio(u.audio_path(root)))
            else:
                assert self.table is not None
                if u.id not in self.table:
                    raise InvalidInputError(
                        f"expected units for {u.id!r} in {self.name}, found none"
                    )
                out[u.id] = self.table[u.id]
            if on_progress:
                on_progress(1)
        return out


def from_tokenizer(
    tok: Tokenizer, full_utterance: bool = False, cache: ArrayCache = OFF
) -> UnitSource:
    return UnitSource(
        tok.name, tok.K, tok.frame_rate, tokenizer=tok, full_utterance=full_utterance, cache=cache
    )


def read_units_file(
    name: str, path: str | Path, root: Path, utts: Sequence[Utterance], K: int | None = None
) -> UnitSource:
    """Load precomputed units; ``K`` defaults to max unit + 1, frame rate to 50 Hz."""
    by_location = {str(u.audio_path(root).resolve()): u.id for u in utts}
    by_stem = {Path(u.audio).stem: u.id for u in utts}
    table: dict[str, np.ndarray] = {}
    rates = set()
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if "units" not in rec or not ("id" in rec or "path" in rec):
            raise InvalidInputError(
                f"expected 'units' and 'id' or 'path' on line {n} of {path}, "
                f"found keys {sorted(rec)}"
            )
        uid = (
            rec.get("id")
            or by_location.get(str(Path(rec["path"]).resolve()))
            or by_stem.get(Path(rec["path"]).stem, rec["path"])
        )
        table[uid] = np.asarray(rec["units"], dtype=np.int32)
        rates.add(float(rec.get("frame_rate", 50.0)))
    if len(rates) > 1:
        raise InvalidInputError(f"expected one frame rate in {path}, found {sorted(rates)}")
    vocab = K or int(max((t.max() for t in table.values() if len(t)), default=0)) + 1
    return UnitSource(name, vocab, rates.pop() if rates else 50.0, table=table)
