"""Unit n-gram LM: a hand-written ARPA scored by hand, lmplz on generated corpora, errors."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from lm_probe.ngram import NgramLM, find_kenlm_binary, train_ngram
from tokenizer.dedup import dedup
from tokenizer.errors import InvalidInputError, SpeechtokError

# A bigram model over units 1 2 3 (log10 probabilities and backoffs chosen by hand; KenLM does
# not require them to be normalised). Bigrams missing here are scored by backing off.
P = {"<unk>": -1.0, "<s>": -99.0, "</s>": -0.7, "1": -0.5, "2": -0.6, "3": -0.55}
BO = {"<unk>": 0.0, "<s>": -0.3, "</s>": 0.0, "1": -0.2, "2": -0.25, "3": -0.15}
P2 = {
    ("<s>", "1"): -0.1,
    ("1", "2"): -0.2,
    ("2", "3"): -0.15,
    ("3", "</s>"): -0.3,
    ("2", "</s>"): -0.4,
}


def _arpa_text() -> str:
    header = ["\\data\\", f"ngram 1={len(P)}", f"ngram 2={len(P2)}", ""]
    unigrams = ["\\1-grams:", *(f"{P[w]}\t{w}\t{BO[w]}" for w in P), ""]
    bigrams = ["\\2-grams:", *(f"{p}\t{a} {b}" for (a, b), p in P2.items()), ""]
    return "\n".join([*header, *unigrams, *bigrams, "\\end\\", ""])


def _manual_log10(words: list[str]) -> float:
    """log10 p(sentence) with <s> ... </s>: the bigram if present, else backoff(prev) + unigram."""
    total = 0.0
    for prev, word in zip(["<s>", *words], [*words, "</s>"], strict=True):
        total += P2[(prev, word)] if (prev, word) in P2 else BO[prev] + P[word]
    return total


@pytest.fixture
def hand_lm(tmp_path: Path) -> NgramLM:
    path = tmp_path / "hand.arpa"
    path.write_text(_arpa_text())
    return NgramLM.from_arpa(path)


def test_hand_written_arpa_matches_manual_perplexity(hand_lm: NgramLM) -> None:
    sentences = [[1, 2, 3], [3, 1, 2]]
    # By hand: [1 2 3] = -0.1 - 0.2 - 0.15 - 0.3 = -0.75 (every bigram present);
    # [3 1 2] = (-0.3 - 0.55) + (-0.15 - 0.5) - 0.2 - 0.4 = -2.1 (<s> 3 and 3 1 back off).
    assert _manual_log10(["1", "2", "3"]) == pytest.approx(-0.75)
    assert _manual_log10(["3", "1", "2"]) == pytest.approx(-2.1)
    log10_prob = -0.75 + -2.1
    n_tokens = 3 + 1 + 3 + 1  # units plus one </s> per sentence
    score = hand_lm.score(sentences)
    assert hand_lm.order == 2
    assert (score.n_tokens, score.n_sentences) == (n_tokens, 2)
    assert score.log10_prob == pytest.approx(log10_prob, abs=1e-4)
    assert score.ppl == pytest.approx(10 ** (-log10_prob / n_tokens), abs=1e-4)
    assert score.bits_per_token == pytest.approx(math.log2(score.ppl), abs=1e-6)


def test_unseen_unit_is_scored_as_unk_and_empty_sequences_are_skipped(hand_lm: NgramLM) -> None:
    # 9 is not in the model: p(<unk> | 1) backs off to BO[1] + P[<unk>].
    score = hand_lm.score([[1, 9, 2], []])
    expected = -0.1 + (BO["1"] + P["<unk>"]) + (BO["<unk>"] + P["2"]) + -0.4
    assert score.log10_prob == pytest.approx(expected, abs=1e-4)
    assert (score.n_tokens, score.n_sentences) == (4, 1)


def _pattern(rng: random.Random, n: int, vocab: int) -> list[list[int]]:
    """Cycles 0 1 ... vocab-1 0 1 ..., each from a random phase, 40-79 units long."""
    starts = [(rng.randrange(vocab), rng.randrange(40, 80)) for _ in range(n)]
    return [[(s + i) % vocab for i in range(length)] for s, length in starts]


def _uniform(rng: random.Random, n: int, vocab: int) -> list[list[int]]:
    return [[rng.randrange(vocab) for _ in range(rng.randrange(40, 80))] for _ in range(n)]


def test_lmplz_pattern_is_far_more_predictable_than_uniform_units(tmp_path: Path) -> None:
    rng, vocab = random.Random(0), 8
    pattern = train_ngram(_pattern(rng, 300, vocab), order=4, workdir=tmp_path / "pattern")
    uniform = train_ngram(_uniform(rng, 300, vocab), order=4)
    assert pattern.order == uniform.order == 4
    assert (tmp_path / "pattern" / "model.arpa").is_file()
    # The next unit is certain; only the sentence end (</s>) costs anything.
    assert pattern.score(_pattern(rng, 50, vocab)).ppl < 1.5
    # About the vocabulary size; a bit above it from </s> and the smoothing of sparse 4-grams.
    assert 7.0 < uniform.score(_uniform(rng, 50, vocab)).ppl < 11.0


def test_train_accepts_a_generator_and_skips_empty_sequences() -> None:
    lm = train_ngram((s for s in [[], [1, 2, 1, 2], [2, 1]]), order=2)
    assert lm.score([[1, 2]]).n_tokens == 3


def test_a_context_with_nothing_to_back_off_to_still_loads(tmp_path: Path) -> None:
    """On this one-sequence corpus lmplz gives the context ``0 1 1`` a backoff of ``-inf``, which
    KenLM refuses to load; it is written as KenLM's log10(0) and the model scores."""
    units = [int(c) for c in "1111101001111011100"]
    lm = train_ngram([units], order=4, workdir=tmp_path)
    assert "\t0 1 1\t-99\n" in (tmp_path / "model.arpa").read_text()
    assert math.isfinite(lm.score([units]).ppl)


@pytest.mark.parametrize("order", [0, 1])
def test_order_below_two_is_rejected(order: int) -> None:
    with pytest.raises(InvalidInputError, match=f"expected an n-gram order >= 2, found {order}"):
        train_ngram([[1, 2, 3]], order=order)


@pytest.mark.parametrize("sequences", [[], [[], []]])
def test_no_units_is_rejected(sequences: list[list[int]]) -> None:
    with pytest.raises(InvalidInputError, match="non-empty unit sequence, found none"):
        train_ngram(sequences)


def test_score_without_units_is_rejected(hand_lm: NgramLM) -> None:
    with pytest.raises(InvalidInputError, match="non-empty unit sequence"):
        hand_lm.score([[]])


def test_non_integer_units_are_rejected(hand_lm: NgramLM) -> None:
    with pytest.raises(InvalidInputError, match="expected integer units, found a float"):
        hand_lm.score([[1, 2.5]])  # type: ignore[list-item]


def test_lmplz_failure_quotes_its_stderr() -> None:
    with pytest.raises(
        SpeechtokError, match=r"(?s)exit status 1; lmplz said:\n.*Failed to parse lots"
    ):
        train_ngram([[1, 2, 3]], memory="lots")


def test_missing_kenlm_binary_says_run_make_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SpeechtokError, match=r"lmplz in .*bin or on PATH, found none.*make setup"):
        find_kenlm_binary("lmplz")
    with pytest.raises(SpeechtokError, match="make setup"):
        train_ngram([[1, 2, 3]])


def test_kenlm_binary_next_to_python_comes_before_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "bin" / "lmplz"
    local.parent.mkdir()
    local.write_text("#!/bin/sh\n")
    local.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    assert find_kenlm_binary("lmplz") == local


def test_from_arpa_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="found no file"):
        NgramLM.from_arpa(tmp_path / "missing.arpa")


def test_dedup_collapses_runs() -> None:
    units, durations = dedup(np.array([5, 5, 2, 2, 2, 5, 7]))
    assert units.tolist() == [5, 2, 5, 7] and durations.tolist() == [2, 3, 1, 1]
    assert dedup(np.array([], np.int32))[0].tolist() == []
