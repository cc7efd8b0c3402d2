"""Failures to gRPC statuses: the one place that decides which code a failure ends a call with.

Bad input is INVALID_ARGUMENT, too much of it RESOURCE_EXHAUSTED, an explicit :class:`Abort`
its own code; a model replica (or its node) that died or is restarting while answering is
UNAVAILABLE, which clients retry (the calls that reach a replica are idempotent); anything
unexpected is logged and answered INTERNAL without internals."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from ray import exceptions as ray_errors
from ray.serve import exceptions as serve_errors

from tokenizer.errors import AudioTooLongError, InvalidInputError

log = logging.getLogger(__name__)
S = TypeVar("S")
Q = TypeVar("Q")
T = TypeVar("T")

GONE = (
    ray_errors.RayActorError,  # died (killed, crashed, OOM) or unreachable
    ray_errors.WorkerCrashedError,
    ray_errors.NodeDiedError,
    serve_errors.ReplicaUnavailableError,
    serve_errors.DeploymentUnavailableError,
    serve_errors.BackPressureError,
)
"""Failures of the serving machinery, not of the request: a retry can succeed."""


def quoted(value: str, limit: int = 64) -> str:
    """``value`` as a message shows what a client sent: quoted, and cut after ``limit``
    characters (an echo of a huge field must not make the answer's trailer too large to read)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


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
    if isinstance(e, GONE):
        log.warning("a model replica failed while answering: %s", type(e).__name__)
        await context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"a model replica stopped while answering ({type(e).__name__}); it is restarting: "
            f"retry",
        )
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
