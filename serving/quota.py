"""Fair use: per-client quotas, so that one client cannot starve the others.

A client is its API key (with none, its peer's address). Each client has a token bucket of
``rps`` calls per second (``burst`` at once) and at most ``streams`` open streams. A call over
the rate waits its turn if that comes within ``HOLD_S``; otherwise, and beyond the streams, it
ends RESOURCE_EXHAUSTED with a ``retry-after-ms`` trailer (after ``HOLD_S``: a client retrying
at once is slowed, not answered in a tight loop), which the SDK honours for the calls it
retries. Defaults come from the service's settings, and ``client_quotas`` overrides
them per key. Health checks and reflection are not counted. Keys are never logged: a client is
named in messages only by "this client".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from serving.auth import OPEN_SERVICES, presented_key
from tokenizer.errors import InvalidInputError

RETRY_AFTER = "retry-after-ms"


@dataclass(frozen=True)
class Quota:
    rps: float = 0.0
    """Calls per second (0: no limit)."""
    burst: int = 0
    """Calls at once beyond the rate (0: ``max(1, rps)``)."""
    streams: int = 0
    """Open streams (0: no limit beyond the service's ``max_streams``)."""

    @classmethod
    def parse(cls, fields: Mapping[str, Any]) -> Quota:
        unknown = set(fields) - {"rps", "burst", "streams"}
        if unknown or any(float(v) < 0 for v in fields.values()):
            raise InvalidInputError(
                f"expected a quota as {{rps, burst, streams}} >= 0, found {dict(fields)}"
            )
        return cls(float(fields.get("rps", 0)), int(fields.get("burst", 0)),
                   int(fields.get("streams", 0)))  # fmt: skip


class Quotas:
    """Every client's bucket and open streams."""

    def __init__(
        self,
        default: Quota,
        per_key: Mapping[str, Quota] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default, self.per_key, self.clock = default, dict(per_key or {}), clock
        self.tokens: dict[str, tuple[float, float]] = {}
        """Client -> (tokens, when counted)."""
        self.open: dict[str, int] = {}

    def quota(self, client: str) -> Quota:
        return self.per_key.get(client, self.default)

    def take(self, client: str, hold_s: float = 0.0) -> tuple[bool, float]:
        """One call from ``client``'s bucket: ``(True, wait)`` when it is due now or within
        ``hold_s`` (the token is taken; call after ``wait`` seconds, in turn with the others
        waiting), else ``(False, wait)`` with the seconds until it would be due."""
        q = self.quota(client)
        if q.rps <= 0:
            return True, 0.0
        burst = q.burst or max(1.0, q.rps)
        now = self.clock()
        tokens, then = self.tokens.get(client, (burst, now))
        tokens = min(burst, tokens + (now - then) * q.rps)
        wait = max(0.0, (1.0 - tokens) / q.rps)
        if wait <= hold_s:
            self.tokens[client] = (tokens - 1.0, now)
            return True, wait
        self.tokens[client] = (tokens, now)
        return False, wait

    def open_stream(self, client: str) -> bool:
        """Count a new stream of ``client`` open, if its quota allows one more."""
        q = self.quota(client)
        if q.streams and self.open.get(client, 0) >= q.streams:
            return False
        self.open[client] = self.open.get(client, 0) + 1
        return True

    def close_stream(self, client: str) -> None:
        self.open[client] -= 1
        if not self.open[client]:
            del self.open[client]


def _client(details: grpc.HandlerCallDetails, context: grpc.aio.ServicerContext) -> str:
    key = presented_key(details.invocation_metadata)
    if key:
        return key
    peer = context.peer() or ""
    return peer.rsplit(":", 1)[0]  # the host: one client however many connections it opens


async def _refuse(context: grpc.aio.ServicerContext, wait_s: float, what: str) -> None:
    context.set_trailing_metadata(((RETRY_AFTER, str(max(1, round(wait_s * 1000)))),))
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{what}; retry in {wait_s:.2f} s")


HOLD_S = 1.0
"""A call over its client's rate waits up to this long: for its turn (then it goes on), or
before it is refused (so a client that retries at once cannot make the server refuse calls in a
tight loop: refusals cost the server too)."""
HELD_MAX = 32
"""Calls of one client held at once; beyond, calls over the rate are refused at once."""


class QuotaInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call of the service against its client's quota."""

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas
        self.held: dict[str, int] = {}

    async def _admit(self, client: str, context: grpc.aio.ServicerContext) -> None:
        held = self.held.get(client, 0)
        due, wait = self.quotas.take(client, HOLD_S if held < HELD_MAX else 0.0)
        slept = min(wait, HOLD_S) if held < HELD_MAX else 0.0
        if slept:
            self.held[client] = held + 1
            try:
                await asyncio.sleep(slept)
            finally:
                self.held[client] -= 1
                if not self.held[client]:
                    del self.held[client]
        if not due:
            rps = self.quotas.quota(client).rps
            await _refuse(context, max(0.001, wait - slept), f"expected at most {rps:g} "
                          "calls/s from this client, found more")  # fmt: skip

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or (details.method or "").startswith(OPEN_SERVICES):
            return handler
        if handler.unary_unary is not None:
            call = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await self._admit(_client(details, context), context)
                return await call(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_stream is not None:
            stream = handler.stream_stream

            async def streamed(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator:
                client = _client(details, context)
                await self._admit(client, context)
                if not self.quotas.open_stream(client):
                    limit = self.quotas.quota(client).streams
                    await _refuse(context, 1.0, f"expected at most {limit} open streams from "
                                                "this client, found that many")  # fmt: skip
                try:
                    async for answer in stream(requests, context):
                        yield answer
                finally:
                    self.quotas.close_stream(client)

            return grpc.stream_stream_rpc_method_handler(
                streamed, handler.request_deserializer, handler.response_serializer
            )
        return handler
