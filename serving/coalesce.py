"""Stream windows of every open stream, sent to a model deployment in few calls.

Each stream completes a window every chunk (320 ms for the default model), so 64 streams make
200 windows a second. Sent one handle call each, the ingress would spend much of its core in
Ray's router and serialisation. The coalescer keeps at most ``in_flight`` calls open. Windows
that complete while those calls run wait and go together in the next call. An idle service
sends at once; a loaded one sends fewer, larger calls, which the replica's ``@serve.batch``
then runs in ONNX Runtime batches. A window's units do not depend on its batch, so this
changes only speed, never units.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import numpy as np

Waiting = tuple[list[np.ndarray], "asyncio.Future[list[np.ndarray]]"]
"""A caller's windows and the future its units go to."""


class WindowCoalescer:
    def __init__(self, handle: Any, in_flight: int, max_windows: int) -> None:
        """``handle``: a ``TokenizerModel`` deployment handle; ``in_flight``: calls open at
        once; ``max_windows``: most windows in one call."""
        if in_flight < 1 or max_windows < 1:
            raise ValueError(
                f"expected in_flight and max_windows >= 1, found {in_flight} and {max_windows}"
            )
        self.handle = handle
        self.in_flight, self.max_windows = in_flight, max_windows
        self.open = 0
        self._tasks: set[asyncio.Task[None]] = set()  # held so that running calls are not collected
        self._pending: deque[Waiting] = deque()

    async def encode(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Units of window-sized audio, as ``TokenizerModel.encode_windows`` gives them."""
        if not audios:
            return []
        future: asyncio.Future[list[np.ndarray]] = asyncio.get_running_loop().create_future()
        self._pending.append((audios, future))
        self._send()
        return await future

    def _send(self) -> None:
        while self.open < self.in_flight:
            group: list[Waiting] = []
            count = 0
            while self._pending and (
                not group or count + len(self._pending[0][0]) <= self.max_windows
            ):
                audios, future = self._pending.popleft()
                if future.done():  # its stream ended while it waited: nothing to compute
                    continue
                group.append((audios, future))
                count += len(audios)
            if not group:
                return
            self.open += 1
            task = asyncio.get_running_loop().create_task(self._call(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _call(self, group: list[Waiting]) -> None:
        try:
            units = await self.handle.encode_windows.remote(
                [a for audios, _ in group for a in audios]
            )
            at = 0
            for audios, future in group:
                if not future.done():  # a stream that ended meanwhile left a cancelled future
                    future.set_result(units[at : at + len(audios)])
                at += len(audios)
        except Exception as e:
            for _, future in group:
                if not future.done():
                    future.set_exception(e)
        finally:
            self.open -= 1
            self._send()
