"""Work of every open stream (and request), sent to the model in few calls.

Each stream completes a window or a step every few hundred ms, so 64 streams make hundreds of
them a second. Sent one call each, the ingress would spend much of its core in Ray's router
and serialisation (windows through a deployment handle) or in per-call overhead (steps in the
ingress's own ONNX Runtime session). A :class:`Coalescer` keeps at most ``in_flight`` calls
open; items that arrive while those calls run wait and go together in the next call. An idle
service sends at once; a loaded one sends fewer, larger calls. A window's units, and a step's
results, do not depend on their batch, so this changes only speed, never units.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from tokenizer.steps import StepJob, StepResult, StepSession

if TYPE_CHECKING:
    from tokenizer.onnx_tokenizer import OnnxTokenizer

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    def __init__(
        self,
        call: Callable[[list[Item]], Awaitable[list[Result]]],
        in_flight: int,
        max_items: int,
    ) -> None:
        """``call``: results of a batch of items, in order (a handle's remote method, or a
        local model call off the event loop); ``in_flight``: calls open at once;
        ``max_items``: most items in one call."""
        if in_flight < 1 or max_items < 1:
            raise ValueError(
                f"expected in_flight and max_items >= 1, found {in_flight} and {max_items}"
            )
        self.call = call
        self.in_flight, self.max_items = in_flight, max_items
        self.open = 0
        self._tasks: set[asyncio.Task[None]] = set()  # held so that running calls are not collected
        self._pending: deque[tuple[list[Item], asyncio.Future[list[Result]]]] = deque()

    async def encode(self, items: list[Item]) -> list[Result]:
        """The results of ``items``, from a call they may share with other callers' items."""
        if not items:
            return []
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, future))
        self._send()
        return await future

    def _send(self) -> None:
        while self.open < self.in_flight:
            group: list[tuple[list[Item], asyncio.Future[list[Result]]]] = []
            count = 0
            while self._pending and (
                not group or count + len(self._pending[0][0]) <= self.max_items
            ):
                items, future = self._pending.popleft()
                if future.done():  # its stream ended while it waited: nothing to compute
                    continue
                group.append((items, future))
                count += len(items)
            if not group:
                return
            self.open += 1
            task = asyncio.get_running_loop().create_task(self._call(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _call(self, group: list[tuple[list[Item], asyncio.Future[list[Result]]]]) -> None:
        try:
            results = await self.call([item for items, _ in group for item in items])
            at = 0
            for items, future in group:
                if not future.done():  # a stream that ended meanwhile left a cancelled future
                    future.set_result(results[at : at + len(items)])
                at += len(items)
        except Exception as e:
            for _, future in group:
                if not future.done():
                    future.set_exception(e)
        finally:
            self.open -= 1
            self._send()


async def run_steps(session: StepSession, steps: Coalescer[StepJob, StepResult]) -> None:
    """Every step of ``session`` that is ready, one after the other, each in a call shared
    with other sessions' steps."""
    while (job := session.next_job()) is not None:
        session.advance((await steps.encode([job]))[0])


def local_steps(tok: OnnxTokenizer, max_batch: int) -> Coalescer[StepJob, StepResult]:
    """Steps of every session of this process, ``max_batch`` per ONNX Runtime call, one call
    at a time, off the event loop (ONNX Runtime lets go of the GIL while it computes)."""

    async def call(jobs: list[StepJob]) -> list[StepResult]:
        return await asyncio.to_thread(tok.run_steps, jobs)

    return Coalescer(call, 1, max_batch)
