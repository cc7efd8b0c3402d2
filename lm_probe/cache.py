"""The probe's on-disk cache of what it computes from audio: units, dense features, layer stacks
and speaker-perturbed copies, each keyed by what it is a function of (the model's fingerprint
and backend, or the perturbation's seed) and the sha256 of the audio samples.

Units are a function of the audio alone (the invariant this project serves), so a hit is
exactly what would have been computed: adding one tokenizer to a report re-uses every other
tokenizer's work, and a second report on another split re-uses the perturbed copies. The
package version is part of every key, so an upgrade starts afresh. Entries are ``.npy`` files
written atomically (a killed probe leaves no half entry; probes may share a cache); an entry
that cannot be read is computed again and replaced.

Location: ``--cache DIR``, else ``$SPEECHTOK_CACHE``, else ``~/.cache/speechtok/probe``
(``$XDG_CACHE_HOME`` honoured); ``--no-cache`` turns it off. Delete the folder to clear it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_ENV = "SPEECHTOK_CACHE"


def default_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "speechtok" / "probe"


def audio_sha256(audio: np.ndarray) -> str:
    """The key of a waveform: sha256 of its samples as contiguous little-endian float32."""
    return hashlib.sha256(np.ascontiguousarray(audio, dtype="<f4").tobytes()).hexdigest()


def _package_version() -> str:
    try:
        return version("speechtok")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "source"


class ArrayCache:
    """``get(parts, compute)``: the array stored under ``parts`` (strings; the first names the
    kind, which is also the entry's folder), or ``compute()``'s, stored. ``root`` None turns
    the cache off (every call computes). ``hits`` and ``misses`` count the calls."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0
        self._version = _package_version()

    def get(self, parts: Sequence[str], compute: Callable[[], np.ndarray]) -> np.ndarray:
        found = self.load(parts)
        return found if found is not None else self.put(parts, compute())

    def load(self, parts: Sequence[str]) -> np.ndarray | None:
        """The stored array, or None (a miss is counted when it is ``put``)."""
        if self.root is None:
            return None
        path = self._path(parts)
        if path.exists():
            try:
                value = np.load(path, allow_pickle=False)
                self.hits += 1
                return value
            except (OSError, ValueError) as e:
                log.warning("cache entry %s unreadable (%s): computing it again", path, e)
        return None

    def put(self, parts: Sequence[str], value: np.ndarray) -> np.ndarray:
        """Store ``value`` (atomically) and return it."""
        value = np.asarray(value)
        if self.root is None:
            return value
        self.misses += 1
        path = self._path(parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, value, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return value

    def _path(self, parts: Sequence[str]) -> Path:
        assert self.root is not None
        digest = hashlib.sha256("\x1f".join((self._version, *parts)).encode()).hexdigest()
        return self.root / parts[0] / digest[:2] / f"{digest}.npy"

    def stats(self) -> dict[str, object]:
        root = str(self.root) if self.root else None
        return {"dir": root, "hits": self.hits, "misses": self.misses}


OFF = ArrayCache(None)
"""The cache that is not there: every call computes."""
