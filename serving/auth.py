"""API-key authentication: a gRPC server interceptor. Keys come in metadata as
``authorization: Bearer KEY`` or ``x-api-key: KEY``; health checks and reflection stay open so
load balancers and ``grpcurl list`` work without a key."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def presented_key(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "x-api-key":
            return str(value)
        if key == "authorization" and str(value).startswith("Bearer "):
            return str(value)[len("Bearer ") :]
    return None


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = [k.encode() for k in keys]

    def _ok(self, key: str | None) -> bool:
        if not key:
            return False
        return any(hmac.compare_digest(key.encode(), k) for k in self.keys if k)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method or ""
        if method.startswith(OPEN_SERVICES) or self._ok(presented_key(details.invocation_metadata)):
            return await continuation(details)
        found = "no key" if presented_key(details.invocation_metadata) is None else "a wrong key"
        message = (
            f"expected an API key in 'authorization: Bearer KEY' or 'x-api-key' "
            f"metadata, found {found}"
        )

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        async def deny_stream(request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        handler = await continuation(details)
        if handler is not None and handler.request_streaming:
            return grpc.stream_stream_rpc_method_handler(deny_stream)
        return grpc.unary_unary_rpc_method_handler(deny)
