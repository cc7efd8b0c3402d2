"""Failures to gRPC statuses: the one place that decides which code a failure ends a call with.

Bad input is INVALID_ARGUMENT, too much of it RESOURCE_EXHAUSTED, an explicit :class:`Abort`
its own code; anything unexpected is logged and answered INTERNAL without internals."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from tokenizer.errors import AudioTooLongError, InvalidInputError

log = logging.getLogger(__name__)
S = TypeVar("S")
Q = TypeVar("Q")
T = TypeVar("T")


class Abort(Exception):
    """A request to end the call with ``code`` and ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


async def abort_for(e: Exception, context: grpc.aio.ServicerContext) -> None:
    """End the call with the status ``e`` deserves; unexpected errors are logged and answered
    INTERNAL without internals."""
    if isinstance(e, Abort):
        await context.abort(e.code, e.message)
    if isinstance(e, AudioTooLongError):
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
    if isinstance(e, InvalidInputError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
    if isinstance(e, asyncio.CancelledError | grpc.aio.AbortError):
        raise e
    log.exception("unexpected error in a call")
    await context.abort(
        grpc.StatusCode.INTERNAL,
        f"the server failed on this request ({type(e).__name__}); it was logged",
    )


def guarded(
    rpc: Callable[[S, Q, grpc.aio.ServicerContext], Awaitable[T]],
) -> Callable[[S, Q, grpc.aio.ServicerContext], Awaitable[T]]:
    """A unary RPC method whose failures end the call through :func:`abort_for`."""

    @functools.wraps(rpc)
    async def call(self: S, request: Q, context: grpc.aio.ServicerContext) -> T:
        try:
            return await rpc(self, request, context)
        except Exception as e:
            await abort_for(e, context)
        raise AssertionError("unreachable")  # context.abort raises

    return call
