"""Shared fixtures: one tiny synthesized corpus per test session (seconds to build)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenizer.corpus.synth import SynthConfig, build_corpus

TINY = SynthConfig(sentences=24, parallel_sentences=2, seed=7)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, TINY, jobs=2)
    return out
