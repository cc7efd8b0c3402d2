"""PNMI and purities against tables computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lm_probe.metrics import contingency, phone_losses, scores
from tokenizer.errors import InvalidInputError


def test_hand_computed_table() -> None:
    # phones a, b; units 0, 1, 2.  p(a,0)=.4 p(a,1)=.1 p(b,1)=.1 p(b,2)=.4
    s = scores(np.array([[4, 1, 0], [0, 1, 4]]))
    h_phone = math.log(2)  # p(a) = p(b) = .5
    # I = sum p(x,y) log p(x,y)/(p(x)p(y)); p(0)=.4 p(1)=.2 p(2)=.4
    mi = 2 * 0.4 * math.log(0.4 / (0.5 * 0.4)) + 2 * 0.1 * math.log(0.1 / (0.5 * 0.2))
    assert s.mutual_info == pytest.approx(mi)
    assert s.pnmi == pytest.approx(mi / h_phone)
    assert s.phone_purity == pytest.approx(0.4 + 0.1 + 0.4)  # max over phones, per unit
    assert s.cluster_purity == pytest.approx(0.4 + 0.4)  # max over units, per phone
    assert s.phone_entropy == pytest.approx(h_phone)


def test_perfect_and_independent() -> None:
    perfect = scores(np.diag([3, 5, 2]))
    assert perfect.pnmi == pytest.approx(1.0) and perfect.phone_purity == pytest.approx(1.0)
    independent = scores(np.outer([1, 3], [2, 2, 4]))
    assert independent.pnmi == pytest.approx(0.0, abs=1e-12)


def test_one_unit() -> None:
    s = scores(np.array([[3], [1]]))
    assert s.pnmi == 0.0 and s.mutual_info == 0.0
    assert s.phone_purity == pytest.approx(0.75) and s.cluster_purity == pytest.approx(1.0)


def test_one_phone() -> None:
    s = scores(np.array([[2, 6]]))
    assert math.isnan(s.pnmi)  # H(phone) = 0: undefined, said so
    assert s.phone_purity == pytest.approx(1.0) and s.cluster_purity == pytest.approx(0.75)


def test_empty() -> None:
    with pytest.raises(InvalidInputError, match="at least one frame"):
        scores(np.zeros((2, 2)))
    with pytest.raises(InvalidInputError, match="at least one frame"):
        contingency([], [])


def test_contingency_from_frames() -> None:
    table = contingency(["a", "a", "b", "b", "b"], [7, 7, 7, 9, 9])
    assert table.phones == ["a", "b"] and table.units == [7, 9]
    np.testing.assert_array_equal(table.counts, [[2, 0], [1, 2]])
    with pytest.raises(InvalidInputError, match="2 labels for 3 units"):
        contingency(["a", "b"], [1, 2, 3])


def test_phone_losses_split_what_pnmi_misses() -> None:
    # a on units 0 (4) and 1 (1); b on units 1 (1) and 2 (4); c alone on unit 3
    table = contingency(["a"] * 5 + ["b"] * 5 + ["c"] * 2, [0] * 4 + [1] + [1] + [2] * 4 + [3] * 2)
    losses = {r["phone"]: r for r in phone_losses(table)}
    assert sum(r["lost"] for r in losses.values()) == pytest.approx(1 - scores(table).pnmi)
    assert losses["c"]["lost"] == 0.0 and losses["c"]["recall"] == 1.0  # its own unit
    assert losses["a"]["lost"] > 0  # a and b share unit 1, so both lose the same
    assert losses["a"]["lost"] == pytest.approx(losses["b"]["lost"])
    assert losses["a"]["share"] == pytest.approx(5 / 12)
    # unit 1 (one frame each of a and b) reads as a, its first most frequent phone
    assert losses["a"]["recall"] == 1.0 and losses["b"]["recall"] == pytest.approx(4 / 5)
    assert losses["b"]["read_as"] == {"a": pytest.approx(1 / 5)} and losses["a"]["read_as"] == {}
    assert phone_losses(contingency(["a", "a"], [0, 1])) == []  # one phone: PNMI undefined
