"""Service settings: a frozen dataclass, overridable from YAML (``speechtok serve --config``)
and flags. Defaults are safe for one machine: loopback only, no auth needed there; bound beyond
loopback the service needs API keys or TLS, or an operator's explicit
``allow_unauthenticated``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from serving.quota import Quota, Quotas
from tokenizer.errors import InvalidInputError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    models: list[str] = field(default_factory=list)
    """Model directories or shipped names to serve (empty: the default model)."""
    vocoders: list[str] | None = None
    """Vocoder directories or shipped names for ``Synthesize`` (None: the default vocoder if
    one is shipped; empty: none)."""
    host: str = "127.0.0.1"
    """Interface the gRPC server binds; loopback unless an operator opens it."""
    port: int = 50051
    api_keys: list[str] = field(default_factory=list)
    """If non-empty, every call must send ``authorization: Bearer KEY`` or ``x-api-key: KEY``
    metadata with one of these (health and reflection stay open)."""
    api_keys_env: str = "SPEECHTOK_API_KEYS"
    """Environment variable with comma-separated keys, added to ``api_keys``."""
    allow_unauthenticated: bool = False
    """Serve beyond loopback with neither API keys nor TLS (refused unless set)."""
    drain_seconds: float = 5.0
    """On SIGTERM/SIGINT: stop taking calls, and give those in flight this long to finish."""
    tls_cert: str = ""
    """PEM certificate chain; with ``tls_key`` the server speaks TLS only."""
    tls_key: str = ""
    tls_client_ca: str = ""
    """PEM CA certificates; with TLS on, clients must present a certificate one of them signed
    (mutual TLS, beside or instead of API keys)."""
    client_rps: float = 0.0
    """Calls per second per client (an API key; without keys, a peer address), ``client_burst``
    at once (0: ``max(1, client_rps)``); 0: no limit. RESOURCE_EXHAUSTED with a retry-after-ms
    trailer beyond it."""
    client_burst: int = 0
    client_streams: int = 16
    """Open streams per client (0: only ``max_streams`` bounds them)."""
    client_quotas: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per-API-key quotas instead of the defaults above: ``KEY: {rps, burst, streams}``."""
    keepalive_s: float = 60.0
    """Ping each connection this often when idle; one that does not answer within 20 s is
    closed, and its streams with it (clients that vanished without a word)."""
    max_request_seconds: float = 600.0
    """Longest audio per unary request (RESOURCE_EXHAUSTED beyond)."""
    max_full_utterance_seconds: float = 60.0
    """Longest audio for ``full_utterance`` requests (attention memory grows with length^2)."""
    max_sample_rate: int = 48000
    """Highest accepted input rate (Hz): bounds the memory a small compressed file can take."""
    max_channels: int = 8
    max_stream_seconds: float = 3600.0
    """Most audio per stream (RESOURCE_EXHAUSTED beyond)."""
    stream_deadline_s: float = 7200.0
    """Wall-clock life of a stream, however active (DEADLINE_EXCEEDED beyond)."""
    max_streams: int = 64
    """Concurrent streams per ingress (RESOURCE_EXHAUSTED beyond)."""
    idle_timeout_s: float = 30.0
    """A stream that sends nothing for this long is closed with DEADLINE_EXCEEDED."""
    max_message_mb: int = 64
    """Cap on a gRPC message (MiB); the limit in force is smaller when ``max_request_seconds``
    of PCM at ``max_sample_rate`` and ``max_channels`` needs less (:func:`max_message_bytes`)."""
    max_batch: int = 16
    """Windows per model call, across requests and streams (``@serve.batch``)."""
    batch_wait_ms: float = 5.0
    model_replicas: int = 1
    threads: int = 2
    """ONNX Runtime intra-op threads per model replica."""
    spinning: bool = False
    """Let ONNX Runtime's idle threads busy-wait for the next call (lower latency when the
    replica has cores to itself; off by default, so they leave the cores to the ingress and
    other replicas)."""
    model_cpus: float = 1.0
    """Ray CPUs reserved per model replica."""
    model_gpus: float = 0.0
    """Ray GPUs per model replica (with onnxruntime-gpu the CUDA EP is used)."""


def api_keys(config: ServeConfig) -> list[str]:
    """``api_keys`` plus the comma-separated keys in ``$api_keys_env``."""
    env = os.environ.get(config.api_keys_env, "").split(",")
    return [k.strip() for k in [*config.api_keys, *env] if k.strip()]


def max_message_bytes(config: ServeConfig) -> int:
    """The largest message worth reading: ``max_request_seconds`` of float32 PCM at the highest
    accepted rate and channel count, plus 1 MiB for the rest, at most ``max_message_mb``. Larger
    ones are refused by gRPC (RESOURCE_EXHAUSTED) before they are read into memory."""
    pcm = config.max_request_seconds * config.max_sample_rate * config.max_channels * 4
    return int(min(config.max_message_mb << 20, pcm + (1 << 20)))


def check_exposure(config: ServeConfig) -> None:
    """Secure by default: refuse to bind beyond loopback with neither API keys nor TLS unless
    the operator says ``allow_unauthenticated``."""
    if config.host in LOOPBACK or config.allow_unauthenticated:
        return
    if not api_keys(config) and not config.tls_cert:
        raise InvalidInputError(
            f"expected API keys (api_keys or ${config.api_keys_env}) or TLS (tls_cert, tls_key) "
            f"to serve on {config.host}, beyond loopback; found neither (pass "
            f"--allow-unauthenticated to let anyone who can reach it call it)"
        )


def quotas(config: ServeConfig) -> Quotas:
    """The per-client quotas of ``config``."""
    default = Quota(config.client_rps, config.client_burst, config.client_streams)
    return Quotas(default, {k: Quota.parse(q) for k, q in config.client_quotas.items()})
