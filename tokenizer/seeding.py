"""Generators seeded by a name: the same (key, seed, domain) gives the same draws in every
process and run (unlike Python's ``hash()``), so an utterance is perturbed or distorted the same
way wherever it is made."""

from __future__ import annotations

import hashlib

import numpy as np


def rng_for(key: str, seed: int, domain: str = "") -> np.random.Generator:
    """A generator seeded from ``key`` (e.g. an utterance id), ``seed`` and a ``domain`` that
    keeps the draws of different uses apart, by SHA-256."""
    digest = hashlib.sha256(f"{domain}{int(seed)}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))
