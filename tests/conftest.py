"""Shared fixtures: one tiny synthesized corpus per test session (seconds to build), one
exported random-init encoder tokenizer (ONNX graphs with canonical windows), and the real
service on loopback (once per module that asks for it)."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from serving.config import ServeConfig
from tokenizer.corpus.synth import SynthConfig, build_corpus
from tokenizer.encoder.config import EncoderConfig, tiny
from tokenizer.encoder.model import Encoder
from tokenizer.export import export_model
from tokenizer.quantizer import Quantizer, quantizer_for
from tokenizer.save import save_encoder_tokenizer
from tokenizer.windows import WindowSpec

# Ray Data's usage collector queries a Prometheus on localhost from a background thread and logs
# each refusal with its traceback; on Python 3.11 a traceback formatted in one thread while
# another parses Python (torch.onnx.export reads torchlib's sources) can raise "AST constructor
# recursion depth mismatch" (CPython gh-106905). Tests send no usage reports.
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

TINY = SynthConfig(sentences=24, parallel_sentences=2, seed=7)
SPEC = WindowSpec(320, 160, 160)
STEP_MS = 160
"""The ``stepped`` model's step."""
KEY = "test-key"
LIMITED_KEY = "test-key-with-a-quota"
SERVICE_CONFIG = ServeConfig(
    api_keys=[KEY, LIMITED_KEY, ""],  # an empty key must never authenticate
    client_quotas={LIMITED_KEY: {"rps": 2, "burst": 2, "streams": 1}},
    max_full_utterance_seconds=1.0,
    max_request_seconds=5.0,
    max_streams=3,
    idle_timeout_s=2.0,
    threads=1,
    model_cpus=0.5,
)
"""The ``service`` fixture's settings (its models, vocoders and port are added)."""


def speech_like(n: int, seed: int) -> np.ndarray:
    """A gliding, amplitude-modulated tone with noise: voice-like enough for equality tests."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    x = np.sin(2 * np.pi * (150 + 80 * np.sin(3 * t)) * t) * (0.3 + 0.2 * np.sin(5 * t))
    return (x + 0.05 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="session", autouse=True)
def probe_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Probes in tests (and their subprocesses) cache in a temporary folder, never in ~/.cache."""
    path = tmp_path_factory.mktemp("probe-cache")
    os.environ["SPEECHTOK_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, TINY, jobs=2)
    return out


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init Spin-shaped tokenizer (units need not mean anything to test equality)."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("exported") / "m"
    quantizer = random_spin(0)
    save_encoder_tokenizer(
        out,
        name="rand",
        kind="spin",
        encoder=Encoder(tiny()).eval(),
        layer=None,
        quantizer=quantizer,
        train_info={},
        card="",
    )
    export_model(out, SPEC)
    return out


def bounded() -> EncoderConfig:
    """The tiny encoder with a bounded context: 9 frames before a frame, 5 after."""
    return dataclasses.replace(
        tiny(), extractor_mode="layer_norm", pos_conv_kernel=3, attention_left=2, attention_right=1
    )


def random_spin(seed: int) -> Quantizer:
    rng = np.random.default_rng(seed)
    return quantizer_for(
        "spin",
        {
            "head.weight": rng.standard_normal((64, 256)).astype(np.float32) * 0.1,
            "head.bias": np.zeros(64, np.float32),
            "codebook": rng.standard_normal((32, 64)).astype(np.float32),
        },
    )


@pytest.fixture(scope="session")
def stepped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random bounded-context Spin tokenizer exported with incremental steps of ``STEP_MS``
    (and a window that covers its context)."""
    torch.manual_seed(5)
    out = tmp_path_factory.mktemp("stepped") / "m"
    save_encoder_tokenizer(
        out,
        name="stepped",
        kind="spin",
        encoder=Encoder(bounded()).eval(),
        layer=None,
        quantizer=random_spin(5),
        train_info={},
        card="",
    )
    export_model(out, WindowSpec(180, 160, 100), step_ms=STEP_MS)
    return out


TINY_GENERATOR = {"channels": 32, "unit_dim": 16, "speaker_dim": 8, "duration_channels": 16}


@pytest.fixture(scope="session")
def tiny_vocoder(
    tiny_corpus: Path, exported: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A unit HiFi-GAN trained for 40 steps (36 mel-only, 4 with the GAN) on the tiny corpus:
    (its model directory, its run folder)."""
    from tokenizer.kinds import load_tokenizer
    from vocoder.config import VocoderTrainConfig
    from vocoder.export import save_vocoder
    from vocoder.train import train_vocoder

    root = tmp_path_factory.mktemp("vocoder")
    config = VocoderTrainConfig(
        steps=40,
        gan_start_step=36,
        warmup_steps=2,
        lr=2e-3,
        batch_size=4,
        segment_frames=16,
        sample_every=20,
        log_every=4,
        checkpoint_every=20,
        generator=TINY_GENERATOR,
    )
    tok = load_tokenizer(exported)
    gen, info = train_vocoder(root / "run", tiny_corpus, tok, config)
    save_vocoder(root / "voc", "tiny-voc", gen, tok, info)
    return root / "voc", root / "run"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def service(
    exported: Path, stepped: Path, tiny_vocoder: tuple[Path, Path]
) -> Iterator[tuple[str, object]]:
    """The real service (Ray Serve + the gRPC ingress on 127.0.0.1, app ``speechtok-test``)
    serving ``exported`` (the default, by windows) and ``stepped`` (by steps): (its address,
    the ingress's handle). Ray starts once per module that asks for it."""
    import ray
    from ray import serve

    from serving.app import build_app

    config = dataclasses.replace(
        SERVICE_CONFIG,
        models=[str(exported), str(stepped)],
        vocoders=[str(tiny_vocoder[0])],
        port=_free_port(),
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(proxy_location="Disabled")
        handle = serve.run(build_app(config), name="speechtok-test", route_prefix=None)
        address = handle.ready.remote().result()
        assert address.startswith("127.0.0.1:")
        yield address, handle
    finally:
        serve.shutdown()
        ray.shutdown()
