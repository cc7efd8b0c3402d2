"""Unit n-gram language models with KenLM, to probe how predictable discrete units are.

DC-Spin found that units an n-gram model predicts well also make better spoken language
models, so the probe trains a KenLM model on one set of unit sequences and reports perplexity
on another, for raw and for deduplicated (:func:`tokenizer.kinds.dedup`) sequences.

Text form: each unit ``u`` (an int) is the word ``str(u)``; one utterance per line. Empty
sequences are skipped, both in training and in scoring.

Scoring follows KenLM's conventions (see :meth:`NgramLM.score`): every sentence is scored with
``<s>`` before it and ``</s>`` after it, the ``</s>`` prediction counts as one token, and
units unseen in training are scored as ``<unk>``.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import kenlm

from tokenizer.errors import InvalidInputError, SpeechtokError

logger = logging.getLogger(__name__)

MIN_ORDER = 2
"""Lowest supported order. ``lmplz -o 1`` does write a unigram ARPA, but KenLM's query code
(``kenlm.Model``) refuses to load it ("assumes at least a bigram model")."""

STDERR_TAIL_LINES = 8
"""How many of lmplz's last stderr lines a failure message quotes."""

LOG10_ZERO = b"-99"
"""KenLM's log10 of zero (what lmplz writes as the probability of ``<s>``)."""


@dataclass(frozen=True)
class NgramScore:
    """Perplexity of a set of unit sequences under an :class:`NgramLM` (KenLM conventions)."""

    ppl: float
    """Perplexity per token: ``10 ** (-log10_prob / n_tokens)``."""
    bits_per_token: float
    """``-log10_prob * log2(10) / n_tokens``, i.e. ``log2(ppl)``."""
    n_tokens: int
    """Units scored plus one ``</s>`` per sentence (``<s>`` is context, never predicted)."""
    n_sentences: int
    """Non-empty sequences scored."""
    log10_prob: float
    """Total log10 probability of all sentences, each with ``<s>`` ... ``</s>``."""


class NgramLM:
    """A loaded KenLM model over unit words (``str(u)``); see :meth:`score` for conventions."""

    def __init__(self, model: kenlm.Model) -> None:
        self._model = model

    @classmethod
    def from_arpa(cls, path: str | Path) -> NgramLM:
        """Load an ARPA file (or a KenLM binary made from one by ``build_binary``)."""
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"expected an ARPA file, found no file at {path}")
        config = kenlm.Config()
        config.show_progress = False  # KenLM writes both to stderr
        config.arpa_complain = kenlm.ARPALoadComplain.NONE  # "build a binary file" hint
        try:
            model = kenlm.Model(str(path), config)
        except OSError as e:
            raise InvalidInputError(f"expected a KenLM-readable ARPA file at {path}: {e}") from e
        return cls(model)

    @property
    def order(self) -> int:
        """The n of the n-gram model (longest context is ``order - 1`` units)."""
        return int(self._model.order)

    def score(self, sequences: Iterable[Sequence[int]]) -> NgramScore:
        """Score unit sequences with KenLM's conventions.

        Each non-empty sequence is one sentence scored with ``bos=True, eos=True``: the first
        unit is predicted from ``<s>`` and ``</s>`` is predicted after the last unit. So
        ``n_tokens = sum(len(seq) + 1)``, ``ppl = 10 ** (-log10_prob / n_tokens)`` and
        ``bits_per_token = log2(ppl)``. Units unseen in training are scored as ``<unk>``.
        Empty sequences are skipped (they are not counted in ``n_sentences``).
        """
        log10_prob, n_tokens, n_sentences = 0.0, 0, 0
        for seq in sequences:
            if len(seq) == 0:
                continue
            log10_prob += self._model.score(_line(seq), bos=True, eos=True)
            n_tokens += len(seq) + 1
            n_sentences += 1
        if n_sentences == 0:
            raise InvalidInputError("expected at least one non-empty unit sequence, found none")
        return NgramScore(
            ppl=10.0 ** (-log10_prob / n_tokens),
            bits_per_token=-log10_prob * math.log2(10.0) / n_tokens,
            n_tokens=n_tokens,
            n_sentences=n_sentences,
            log10_prob=log10_prob,
        )


def find_kenlm_binary(name: str) -> Path:
    """Find a KenLM program (``lmplz``, ``build_binary``): next to ``sys.executable`` (the
    venv's ``bin/``, where ``make setup`` builds it) first, then on ``PATH``."""
    bin_dir = Path(sys.executable).parent
    local = bin_dir / name
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    raise SpeechtokError(
        f"expected KenLM's {name} in {bin_dir} or on PATH, found none: run `make setup`"
    )


def train_ngram(
    sequences: Iterable[Sequence[int]],
    order: int = 4,
    *,
    workdir: Path | None = None,
    memory: str = "10%",
) -> NgramLM:
    """Train a modified Kneser-Ney unit n-gram model with KenLM's ``lmplz`` and load it.

    Runs ``lmplz -o ORDER --discount_fallback -S MEMORY -T WORKDIR`` (unit corpora lack the
    count-of-counts lmplz's discount estimate needs, so the fallback discounts are required).
    ``memory`` is lmplz's ``-S`` (``"10%"`` of RAM, ``"1G"``, ...). ``workdir`` keeps
    ``corpus.txt`` and ``model.arpa``; without it a temporary directory is used and removed.
    Empty sequences are skipped.
    """
    if not isinstance(order, int) or order < MIN_ORDER:
        raise InvalidInputError(f"expected an n-gram order >= {MIN_ORDER}, found {order!r}")
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        return _train_in(Path(workdir), sequences, order, memory)
    with tempfile.TemporaryDirectory(prefix="speechtok-ngram-") as tmp:
        return _train_in(Path(tmp), sequences, order, memory)


def _train_in(
    workdir: Path, sequences: Iterable[Sequence[int]], order: int, memory: str
) -> NgramLM:
    """Write the corpus into ``workdir``, run lmplz there and load the ARPA it writes."""
    corpus, arpa = workdir / "corpus.txt", workdir / "model.arpa"
    n_sentences, n_units = _write_corpus(sequences, corpus)
    if n_sentences == 0:
        raise InvalidInputError("expected at least one non-empty unit sequence, found none")
    lmplz = find_kenlm_binary("lmplz")
    cmd = [str(lmplz), "-o", str(order), "--discount_fallback", "-S", memory, "-T", str(workdir)]
    start = time.perf_counter()
    with corpus.open("rb") as stdin, arpa.open("wb") as stdout:
        done = subprocess.run(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
    if done.returncode != 0:
        tail = "\n".join(
            done.stderr.decode(errors="replace").strip().splitlines()[-STDERR_TAIL_LINES:]
        )
        raise SpeechtokError(
            f"expected lmplz to build an order-{order} model from {n_sentences} sequences, "
            f"found exit status {done.returncode}; lmplz said:\n{tail}"
        )
    logger.info(
        "lmplz: order %d, %d sequences, %d units, %.2f s",
        order,
        n_sentences,
        n_units,
        time.perf_counter() - start,
    )
    try:
        return NgramLM.from_arpa(arpa)
    except InvalidInputError as e:
        if "Bad backoff -inf" not in str(e):
            raise
    logger.warning("lmplz: %d backoffs of log10(0) written as -99", _floor_backoffs(arpa))
    return NgramLM.from_arpa(arpa)


def _floor_backoffs(arpa: Path) -> int:
    """On tiny corpora lmplz's fallback discounts can leave a context no mass to back off with
    (backoff weight 0, written ``-inf``), which KenLM refuses to load; write those backoffs as
    KenLM's log10(0) (the same model). Returns how many were rewritten."""
    fixed, n = arpa.with_name(arpa.name + ".floored"), 0
    with arpa.open("rb") as src, fixed.open("wb") as dst:
        for line in src:
            if line.endswith(b"\t-inf\n"):
                line, n = line[: -len(b"-inf\n")] + LOG10_ZERO + b"\n", n + 1
            dst.write(line)
    fixed.replace(arpa)
    return n


def _write_corpus(sequences: Iterable[Sequence[int]], path: Path) -> tuple[int, int]:
    """Write one line of unit words per non-empty sequence; returns (sequences, units)."""
    n_sentences, n_units = 0, 0
    with path.open("w", encoding="ascii") as f:
        for seq in sequences:
            if len(seq) == 0:
                continue
            f.write(_line(seq) + "\n")
            n_sentences += 1
            n_units += len(seq)
    return n_sentences, n_units


def _line(units: Sequence[int]) -> str:
    """The text form of a unit sequence: ``[3, 14, 1] -> "3 14 1"``."""
    try:
        return " ".join(str(operator.index(u)) for u in units)
    except TypeError as e:
        found = next((type(u).__name__ for u in units if not hasattr(u, "__index__")), "non-int")
        raise InvalidInputError(f"expected integer units, found a {found}") from e
