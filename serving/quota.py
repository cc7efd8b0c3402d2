"""Fair use: per-client quotas, so that one client cannot starve the others.

A client is its API key (with none, its peer's address). Each client has a token bucket of
``rps`` calls per second (``burst`` at once) and at most ``streams`` open streams; beyond either
a call ends RESOURCE_EXHAUSTED with a ``retry-after-ms`` trailer, which the SDK honours for the
calls it retries. Defaults come from the service's settings, and ``client_quotas`` overrides
them per key. Health checks and reflection are not counted. Keys are never logged: a client is
named in messages only by "this client".
"""

from __future__ import annotations

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

    def wait_s(self, client: str) -> float:
        """Take one call from ``client``'s bucket: 0 if there was one, else the seconds until
        there is."""
        q = self.quota(client)
        if q.rps <= 0:
            return 0.0
        burst = q.burst or max(1.0, q.rps)
        now = self.clock()
        tokens, then = self.tokens.get(client, (burst, now))
        tokens = min(burst, tokens + (now - then) * q.rps)
        if tokens >= 1.0:
            self.tokens[client] = (tokens - 1.0, now)
            return 0.0
        self.tokens[client] = (tokens, now)
        return (1.0 - tokens) / q.rps

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


class QuotaInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call of the service against its client's quota."""

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas

    async def _admit(self, client: str, context: grpc.aio.ServicerContext) -> None:
        if wait := self.quotas.wait_s(client):
            rps = self.quotas.quota(client).rps
            await _refuse(context, wait, f"expected at most {rps:g} calls/s from this client, "
                                         "found more")  # fmt: skip

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
