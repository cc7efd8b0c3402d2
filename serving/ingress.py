"""The gRPC ingress: a Ray Serve deployment that runs its own ``grpc.aio`` server.

Ray Serve's built-in gRPC proxy binds every interface and has no host setting or interceptors,
so the service brings its own server: bound to ``config.host`` (loopback by default), with
API-key auth, optional TLS, the standard health service and reflection (``grpcurl`` works).
It lives inside Serve, so ``serve run``/``serve deploy`` and KubeRay run it like any
deployment; one replica per host:port.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from ray import serve

from serving.auth import ApiKeyInterceptor
from serving.coalesce import Coalescer, local_steps
from serving.config import ServeConfig, api_keys, check_exposure, max_message_bytes, quotas
from serving.pb import tokenizer_pb2 as pb
from serving.pb import tokenizer_pb2_grpc as pb_grpc
from serving.quota import QuotaInterceptor
from serving.served import Model, ServedVocoder
from serving.servicer import TokenizerServicer
from tokenizer.kinds import load_served
from tokenizer.model_dir import ModelError

log = logging.getLogger(__name__)
SERVICE = pb.DESCRIPTOR.services_by_name["Tokenizer"].full_name


@serve.deployment(
    num_replicas=1,
    ray_actor_options={"num_cpus": 0.5},
    graceful_shutdown_timeout_s=5.0,
    graceful_shutdown_wait_loop_s=0.5,
)
class GrpcIngress:
    async def __init__(  # type: ignore[misc]  # Ray actors may have an async __init__
        self,
        config: ServeConfig,
        models: dict[str, Any],
        default: str,
        vocoders: dict[str, Any] | None = None,
    ) -> None:
        served = {}
        for name, handle in models.items():
            # two calls per replica: one running, the next already queued behind it
            windows = Coalescer(
                handle.encode_windows.remote, 2 * config.model_replicas, config.max_batch
            )
            info = await handle.info.remote()
            steps, initial = None, None
            if info["steps"]:  # streams run by steps here: no Ray hop per chunk
                tok = load_served(info["path"], threads=config.threads, spinning=False)
                if tok.fingerprint != info["fingerprint"]:
                    raise ModelError(
                        f"expected the ingress to load {name} as its replicas did (fingerprint "
                        f"{info['fingerprint'][:16]}...), found {tok.fingerprint[:16]}... in "
                        f"{info['path']}"
                    )
                steps, initial = local_steps(tok, config.max_batch), tok.initial_state()
            served[name] = Model(handle, info, windows, steps, initial)
        voiced = {}
        for name, handle in (vocoders or {}).items():
            voiced[name] = ServedVocoder(handle, await handle.info.remote())
        check_exposure(config)
        keys = api_keys(config)
        options = [
            ("grpc.max_receive_message_length", max_message_bytes(config)),
            ("grpc.max_send_message_length", config.max_message_mb << 20),
            ("grpc.so_reuseport", 0),
            ("grpc.keepalive_time_ms", int(config.keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ]
        interceptors: list[grpc.aio.ServerInterceptor] = [ApiKeyInterceptor(keys)] if keys else []
        interceptors.append(QuotaInterceptor(quotas(config)))
        self.server = grpc.aio.server(interceptors=interceptors, options=options)
        self.servicer = TokenizerServicer(config, served, default, voiced)
        pb_grpc.add_TokenizerServicer_to_server(self.servicer, self.server)
        self.health = (
            health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        address = f"{config.host}:{config.port}"
        if bool(config.tls_cert) != bool(config.tls_key):
            raise ValueError(
                f"expected both tls_cert and tls_key (or neither), found only "
                f"{'tls_cert' if config.tls_cert else 'tls_key'}"
            )
        if config.tls_client_ca and not config.tls_cert:
            raise ValueError(
                "expected tls_cert and tls_key with tls_client_ca (client certificates are "
                "checked in TLS), found no tls_cert"
            )
        if config.tls_cert:
            ca = Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
            creds = grpc.ssl_server_credentials(
                [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())],
                root_certificates=ca,
                require_client_auth=ca is not None,
            )
            bound = self.server.add_secure_port(address, creds)
        else:
            bound = self.server.add_insecure_port(address)
        if not bound:
            raise RuntimeError(f"expected to bind {address}, found it taken or unavailable")
        await self.server.start()
        for service in ("", SERVICE):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.address = address
        log.info(
            "speechtok gRPC on %s (models %s, vocoders %s, auth %s, tls %s, client certs %s)",
            address,
            sorted(served),
            sorted(voiced),
            bool(keys),
            bool(config.tls_cert),
            bool(config.tls_client_ca),
        )

    def ready(self) -> str:
        return self.address

    async def drain(self, grace_s: float) -> None:
        """Stop taking calls (health NOT_SERVING, new RPCs refused) and give those in flight
        ``grace_s`` to finish; what is left then is cancelled."""
        for service in ("", SERVICE):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace=grace_s)

    def open_streams(self) -> int:
        return self.servicer.streams.open

    async def __del__(self) -> None:
        await self.server.stop(grace=1.0)
