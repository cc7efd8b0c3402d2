"""Service settings: a frozen dataclass, overridable from YAML (``speechtok serve --config``)
and flags. Defaults are safe for one machine: loopback only, no auth needed there."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    tls_cert: str = ""
    """PEM certificate chain; with ``tls_key`` the server speaks TLS only."""
    tls_key: str = ""
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
