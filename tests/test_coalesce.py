"""The coalescer: every caller gets its own windows' units, in order, while concurrent callers
share calls. The deployment is stood in for by an object with the same ``encode_windows.remote``
shape (the served path is covered end to end in test_serving.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from serving.coalesce import Coalescer


class Method:
    """``handle.encode_windows``: units of a window = its samples (so mix-ups show)."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls: list[int] = []
        self.open = self.most_open = 0
        self.fail_first = fail_first

    async def _run(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        self.calls.append(len(audios))
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await asyncio.sleep(0.02)
            if self.fail_first and len(self.calls) == 1:
                raise RuntimeError("replica died")
            return [a.astype(np.int32) for a in audios]
        finally:
            self.open -= 1

    def remote(self, audios: list[np.ndarray]) -> Any:
        return self._run(audios)


def windows(caller: int, n: int) -> list[np.ndarray]:
    return [np.full(3, 100 * caller + i, np.float32) for i in range(n)]


def test_callers_get_their_units_and_share_calls() -> None:
    method = Method()
    coalescer = Coalescer(method.remote, in_flight=2, max_items=8)

    async def main() -> list[list[np.ndarray]]:
        return await asyncio.gather(
            *(coalescer.encode(windows(c, 1 + c % 3)) for c in range(30)), coalescer.encode([])
        )

    results = asyncio.run(main())
    for c, units in enumerate(results[:30]):
        expected = windows(c, 1 + c % 3)
        assert len(units) == len(expected)
        for u, e in zip(units, expected, strict=True):
            assert np.array_equal(u, e.astype(np.int32))
    assert results[30] == []
    assert sum(method.calls) == sum(1 + c % 3 for c in range(30))
    assert len(method.calls) < 30  # shared calls
    assert max(method.calls) <= 8
    assert method.most_open <= 2


def test_a_failed_call_fails_its_callers_only() -> None:
    method = Method(fail_first=True)
    coalescer = Coalescer(method.remote, in_flight=1, max_items=4)

    async def main() -> tuple[list[Any], list[np.ndarray]]:
        first = await asyncio.gather(
            *(coalescer.encode(windows(c, 1)) for c in range(6)), return_exceptions=True
        )
        return first, await coalescer.encode(windows(9, 2))

    first, later = asyncio.run(main())
    failed = [r for r in first if isinstance(r, RuntimeError)]
    assert 1 <= len(failed) <= 4  # the first call's group
    assert all(isinstance(r, list) for r in first if r not in failed)
    assert [int(u[0]) for u in later] == [900, 901]
    assert coalescer.open == 0


def test_a_cancelled_caller_leaves_the_others_served_and_costs_nothing() -> None:
    method = Method()
    coalescer = Coalescer(method.remote, in_flight=1, max_items=16)

    async def main() -> tuple[list[np.ndarray], list[np.ndarray]]:
        running = asyncio.ensure_future(coalescer.encode(windows(1, 2)))  # sent at once
        gone = asyncio.ensure_future(coalescer.encode(windows(2, 3)))  # waits behind it
        kept = asyncio.ensure_future(coalescer.encode(windows(3, 2)))
        await asyncio.sleep(0)
        gone.cancel()
        return await running, await kept

    running, kept = asyncio.run(main())
    assert [int(u[0]) for u in running] == [100, 101]
    assert [int(u[0]) for u in kept] == [300, 301]
    assert method.calls == [2, 2]  # the cancelled caller's 3 windows were never sent


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="in_flight and max_items >= 1"):
        Coalescer(Method().remote, in_flight=0, max_items=4)
