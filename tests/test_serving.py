"""The real service end to end: Ray Serve + the gRPC ingress on loopback, real ONNX Runtime.

One service per module (Ray starts once, ~15 s: the ``service`` fixture of conftest.py); the
tests stop it themselves."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.faults import kill_under_load
from bench.procs import process_tree, titled
from bench.soak import Soak, plot
from serving.client import AsyncClient, Client
from serving.pb import tokenizer_pb2 as pb
from serving.pb import tokenizer_pb2_grpc as pb_grpc
from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import load_corpus
from tokenizer.kinds import load_served
from vocoder.runtime import Vocoder

from .conftest import KEY, LIMITED_KEY, speech_like

CLI = [sys.executable, "-m", "speechtok"]


@pytest.fixture(scope="module")
def files(tiny_corpus: Path) -> list[Path]:
    root, utts = load_corpus(tiny_corpus)
    return [u.audio_path(root) for u in sorted(utts, key=lambda u: u.id)[:6]]


def _code(fn: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        fn()  # type: ignore[operator]
    return e.value.code()


@pytest.mark.parametrize("served", ["exported", "stepped"])  # by windows, by steps
def test_unary_and_streams_equal_offline_while_batched(
    service: tuple[str, object], served: str, files: list[Path], request: pytest.FixtureRequest
) -> None:
    address, _ = service
    offline = load_served(request.getfixturevalue(served))
    expected = [offline.tokenize(decode_audio(f)) for f in files]
    name = offline.name

    async def run() -> tuple[list[list[int]], list[list[int]]]:
        client = AsyncClient(address, api_key=KEY)
        rng = np.random.default_rng(0)

        async def streamed(f: Path) -> list[int]:
            audio = decode_audio(f)
            cuts = np.sort(rng.integers(0, len(audio), 12))
            chunks = [c for c in np.split(audio, cuts) if len(c)]
            units: list[int] = []
            async for answer in client.stream(chunks, name):
                assert answer.offset == len(units) and answer.fingerprint == offline.fingerprint
                units += answer.units
            return units

        async def unary(f: Path) -> list[int]:
            return list((await client.tokenize(f, name)).units)

        # Everything at once: windows (or steps) of streams and requests share model calls.
        results = await asyncio.gather(
            *[unary(f) for f in files], *[streamed(f) for f in files[:3]]
        )  # max_streams = 3
        await client.close()
        return list(results[: len(files)]), list(results[len(files) :])

    unary_units, stream_units = asyncio.run(run())
    assert unary_units == [e.tolist() for e in expected]
    assert stream_units == [e.tolist() for e in expected[:3]]


def test_answers_carry_model_and_fingerprint(
    service: tuple[str, object], exported: Path, files: list[Path]
) -> None:
    address, _ = service
    offline = load_served(exported)
    with Client(address, api_key=KEY) as client:
        r = client.tokenize(files[0], dedup=True)
        assert (r.model, r.fingerprint) == ("rand", offline.fingerprint)
        assert sum(r.durations) == len(offline.tokenize(decode_audio(files[0])))
        info = client.model_info()
        assert (info.name, info.k, info.default, info.window.chunk_ms) == ("rand", 32, True, 160)
        assert not info.HasField("steps")
        stepped = client.model_info("stepped")
        assert not stepped.default and stepped.HasField("steps")
        assert (stepped.steps.step_ms, stepped.steps.lookahead_ms) == (160, 100)
        assert stepped.steps.latency_ms == 260
        assert [m.name for m in client.list_models().models] == ["rand", "stepped"]


def test_error_statuses_and_the_service_survives(
    service: tuple[str, object], files: list[Path]
) -> None:
    address, handle = service
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.TokenizerStub(channel)
    md = [("x-api-key", KEY)]
    good = files[0].read_bytes()

    def tokenize(audio: pb.Audio, model: str = "", metadata: list | None = None) -> object:
        request = pb.TokenizeRequest(audio=audio, options=pb.TokenizeOptions(model=model))
        return stub.Tokenize(request, metadata=md if metadata is None else metadata, timeout=30)

    def stream(messages: list[pb.StreamRequest]) -> list[pb.StreamResponse]:
        return list(stub.StreamTokenize(iter(messages), metadata=md, timeout=30))

    cfg = pb.StreamRequest(config=pb.StreamConfig(sample_rate=16000, encoding=pb.PCM_S16LE))
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: tokenize(pb.Audio(file=b"RIFF....WAVEfmt garbage"))) == invalid
    assert _code(lambda: tokenize(pb.Audio())) == invalid
    assert (
        _code(lambda: tokenize(pb.Audio(pcm=pb.Pcm(data=b"\0\0" * 100, sample_rate=16000))))
        == invalid
    )  # ENCODING_UNSPECIFIED
    assert (
        _code(
            lambda: tokenize(
                pb.Audio(pcm=pb.Pcm(data=b"\0" * 3, sample_rate=16000, encoding=pb.PCM_S16LE))
            )
        )
        == invalid
    )
    assert (
        _code(
            lambda: tokenize(
                pb.Audio(pcm=pb.Pcm(data=b"\0\0" * 100, sample_rate=10, encoding=pb.PCM_S16LE))
            )
        )
        == invalid
    )
    long_pcm = pb.Pcm(data=b"\0\0" * 16000 * 6, sample_rate=16000, encoding=pb.PCM_S16LE)
    assert _code(lambda: tokenize(pb.Audio(pcm=long_pcm))) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _code(lambda: tokenize(pb.Audio(file=good), model="nope")) == grpc.StatusCode.NOT_FOUND
    unauth = grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: tokenize(pb.Audio(file=good), metadata=[])) == unauth
    assert _code(lambda: tokenize(pb.Audio(file=good), metadata=[("x-api-key", "no")])) == unauth
    assert _code(lambda: tokenize(pb.Audio(file=good), metadata=[("x-api-key", "")])) == unauth
    full = pb.TokenizeRequest(
        audio=pb.Audio(file=good), options=pb.TokenizeOptions(full_utterance=True)
    )
    assert (
        _code(lambda: stub.Tokenize(full, metadata=md, timeout=30))
        == grpc.StatusCode.RESOURCE_EXHAUSTED
    )  # longer than max_full_utterance_seconds
    assert _code(lambda: list(stub.StreamTokenize(iter([cfg]), timeout=30))) == unauth
    # Streams: config first, 16 kHz, whole samples, known model.
    audio = pb.StreamRequest(audio=b"\0\0" * 800)
    assert _code(lambda: stream([audio])) == invalid
    bad_rate = pb.StreamRequest(config=pb.StreamConfig(sample_rate=8000, encoding=pb.PCM_S16LE))
    assert _code(lambda: stream([bad_rate, audio])) == invalid
    assert _code(lambda: stream([cfg, pb.StreamRequest(audio=b"\0" * 3)])) == invalid
    assert _code(lambda: stream([cfg, cfg])) == invalid
    unknown = pb.StreamRequest(
        config=pb.StreamConfig(model="nope", sample_rate=16000, encoding=pb.PCM_S16LE)
    )
    assert _code(lambda: stream([unknown])) == grpc.StatusCode.NOT_FOUND
    for bad in (
        pb.SynthesizeRequest(units=[]),
        pb.SynthesizeRequest(units=[10_000]),
        pb.SynthesizeRequest(units=[1, 2], durations=[1]),
        pb.SynthesizeRequest(units=[1, 2], speaker="nobody"),
    ):
        assert _code(lambda b=bad: stub.Synthesize(b, metadata=md)) == invalid
    assert (
        _code(lambda: stub.Synthesize(pb.SynthesizeRequest(units=[1], model="x"), metadata=md))
        == grpc.StatusCode.NOT_FOUND
    )
    # The health check needs no key; the service still answers after all of the above.
    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="speechtok.v1.Tokenizer"))
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    assert len(tokenize(pb.Audio(file=good)).units) > 0  # type: ignore[attr-defined]
    assert handle.open_streams.remote().result() == 0  # type: ignore[attr-defined]


def test_synthesize_equals_the_library(
    service: tuple[str, object], tiny_vocoder: tuple[Path, Path]
) -> None:
    address, _ = service
    voc = Vocoder(tiny_vocoder[0])
    units = np.random.default_rng(1).integers(0, voc.K, 200)
    with Client(address, api_key=KEY) as client:
        audio, r = client.synthesize(units.tolist(), speaker=1)
        assert np.array_equal(audio, voc.synthesize(units, 1))  # bit for bit
        assert (r.model, r.fingerprint, r.audio.sample_rate) == ("tiny-voc", voc.fingerprint, 16000)
        short, _ = client.synthesize([4, 2, 4], durations=[3, 1, 2])
        assert np.array_equal(short, voc.synthesize([4, 2, 4], durations=[3, 1, 2]))
        predicted, _ = client.synthesize([4, 2, 4], deduplicated=True)
        assert np.array_equal(predicted, voc.synthesize([4, 2, 4], deduplicated=True))


def test_stream_limits_idle_and_disconnects(service: tuple[str, object]) -> None:
    address, handle = service
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.TokenizerStub(channel)
    md = [("authorization", f"Bearer {KEY}")]
    cfg = pb.StreamRequest(config=pb.StreamConfig(sample_rate=16000, encoding=pb.PCM_F32LE))
    chunk = pb.StreamRequest(audio=speech_like(8000, 0).tobytes())
    release = threading.Event()

    def held() -> Iterator[pb.StreamRequest]:
        yield cfg
        yield chunk
        while not release.wait(0.5):  # keep it active: idle_timeout_s is short (2 s)
            yield pb.StreamRequest(audio=speech_like(160, 1).tobytes())

    calls = [stub.StreamTokenize(held(), metadata=md, timeout=30) for _ in range(3)]
    for call in calls:
        next(call)  # each stream is open and has answered once
    assert handle.open_streams.remote().result() == 3  # type: ignore[attr-defined]
    fourth = stub.StreamTokenize(iter([cfg]), metadata=md, timeout=30)
    assert _code(lambda: list(fourth)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    for call in calls:
        call.cancel()  # clients disconnect mid-stream: their sessions are freed
    release.set()
    for _ in range(50):
        if handle.open_streams.remote().result() == 0:  # type: ignore[attr-defined]
            break
        threading.Event().wait(0.1)
    assert handle.open_streams.remote().result() == 0  # type: ignore[attr-defined]

    def idle() -> Iterator[pb.StreamRequest]:
        yield cfg
        threading.Event().wait(4)  # longer than idle_timeout_s = 2

    assert (
        _code(lambda: list(stub.StreamTokenize(idle(), metadata=md, timeout=30)))
        == grpc.StatusCode.DEADLINE_EXCEEDED
    )


@pytest.mark.parametrize("served", ["exported", "stepped"])
def test_a_cut_stream_resumes_with_the_units_of_one_stream(
    service: tuple[str, object], served: str, files: list[Path], request: pytest.FixtureRequest
) -> None:
    """A client cut after some answers reopens with ``resume_frame`` and ``audio_offset`` and
    resends from the last answer's ``resume_sample``; a resume the server cannot honour is
    INVALID_ARGUMENT."""
    address, _ = service
    offline = load_served(request.getfixturevalue(served))
    audio = decode_audio(files[0])
    stub = pb_grpc.TokenizerStub(grpc.insecure_channel(address))
    md = [("authorization", f"Bearer {KEY}")]

    def config(frame: int = 0, offset: int = 0) -> pb.StreamRequest:
        return pb.StreamRequest(config=pb.StreamConfig(sample_rate=16000, encoding=pb.PCM_F32LE,
                                resume_frame=frame, audio_offset=offset,
                                model=offline.name))  # fmt: skip

    def chunks(x: np.ndarray) -> list[pb.StreamRequest]:
        return [pb.StreamRequest(audio=x[i : i + 1600].tobytes()) for i in range(0, len(x), 1600)]

    half = len(audio) // 2
    first = list(stub.StreamTokenize(iter([config(), *chunks(audio[:half])]), metadata=md))
    last = first[-2]  # the answer before the final flush: as if the call were cut there
    units = [u for a in first[:-1] for u in a.units]
    assert last.offset + len(last.units) == len(units) and 0 < last.resume_sample < half
    rest = iter([config(len(units), last.resume_sample), *chunks(audio[last.resume_sample :])])
    resumed = list(stub.StreamTokenize(rest, metadata=md))
    assert resumed[0].offset == len(units)
    units += [u for a in resumed for u in a.units]
    assert units == offline.tokenize(audio).tolist()
    bad = iter([config(len(units), 320 * len(units))])  # past what any resume may skip
    assert _code(lambda: list(stub.StreamTokenize(bad, metadata=md))) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_a_client_over_its_quota_waits_and_others_do_not(
    service: tuple[str, object], files: list[Path]
) -> None:
    """LIMITED_KEY may make 2 calls a second and open 1 stream: calls over the rate wait their
    turn up to 1 s; beyond, RESOURCE_EXHAUSTED with a retry-after-ms trailer, which the SDK
    waits out; KEY's calls are not held up."""
    address, _ = service
    stub = pb_grpc.TokenizerStub(grpc.insecure_channel(address))
    limited = [("authorization", f"Bearer {LIMITED_KEY}")]

    def raw(_: int) -> grpc.StatusCode | grpc.RpcError:
        try:
            stub.GetModelInfo(pb.ModelInfoRequest(), metadata=limited, timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e

    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # 8 at once: 2 now, 2 in their turn, 4 refused
        outcomes = list(pool.map(raw, range(8)))
    refused = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    assert 2 <= outcomes.count(grpc.StatusCode.OK) <= 5 and len(refused) >= 3
    assert 0.9 < time.monotonic() - start < 3  # refusals came after the hold, not at once
    over = refused[0]
    assert over.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "calls/s from this client" in str(over.details())
    assert 0 < int(dict(over.trailing_metadata())["retry-after-ms"]) <= 3000
    time.sleep(2.0)  # a full bucket again
    with Client(address, api_key=LIMITED_KEY) as client:  # the SDK waits as told
        start = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: client.tokenize(files[0]), range(6)))
        assert client.retried >= 1 and time.monotonic() - start >= 1.5
    assert len({tuple(a.units) for a in answers}) == 1
    release = threading.Event()

    def held() -> Iterator[pb.StreamRequest]:
        yield pb.StreamRequest(config=pb.StreamConfig(sample_rate=16000, encoding=pb.PCM_F32LE))
        while not release.wait(0.5):  # active: idle_timeout_s is 2 s
            yield pb.StreamRequest(audio=speech_like(160, 1).tobytes())

    time.sleep(2.0)  # a full bucket again
    first = stub.StreamTokenize(held(), metadata=limited, timeout=30)
    time.sleep(0.5)
    second = stub.StreamTokenize(iter([]), metadata=limited, timeout=30)
    assert _code(lambda: list(second)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    with Client(address, api_key=KEY) as other:  # another client is not held up
        start = time.monotonic()
        for _ in range(6):
            other.model_info()
        assert other.retried == 0 and time.monotonic() - start < 2.0
    release.set()
    assert list(first)[-1].final  # the held stream ends normally


def test_client_cli_prints_what_tokenize_prints(
    service: tuple[str, object], exported: Path, tmp_path: Path
) -> None:
    address, _ = service
    wav = tmp_path / "a.wav"
    sf.write(wav, speech_like(30_000, 5), 16000, subtype="PCM_16")
    local = subprocess.run(
        [*CLI, "tokenize", "--model", str(exported), "--dedup", str(wav)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env_args = ["--addr", address, "--api-key", KEY, "--dedup"]
    unary = subprocess.run(
        [*CLI, "client", "tokenize", *env_args, str(wav)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    streamed = subprocess.run(
        [*CLI, "client", "tokenize", *env_args, "--stream", "--chunk-ms", "45", str(wav)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(unary) == json.loads(local) == json.loads(streamed)
    bad = subprocess.run(
        [*CLI, "client", "tokenize", "--addr", address, str(wav)], capture_output=True, text=True
    )
    assert bad.returncode == 1 and "UNAUTHENTICATED" in bad.stderr


def test_one_minute_soak_holds_memory_descriptors_and_latency(
    service: tuple[str, object], files: list[Path], tmp_path: Path
) -> None:
    """bench/soak.py for a minute (CI's version of bench/soak.sh): 2 real-time streams and
    unary calls at half the measured capacity; no errors, descriptors flat, memory bounded."""
    address, _ = service
    ray_processes = lambda: process_tree(os.getpid())[1:]  # noqa: E731 - Ray's, not pytest's
    result = Soak(address, KEY, files, ray_processes, streams=2).run(1.0, share=0.5)
    plot(result, tmp_path / "soak.png")
    s = result.summary()
    print(s)
    assert s["errors"] == 0 and s["calls"] > 0 and s["stream_answers"] > 0, result.errors[:3]
    assert s["fd_growth"] <= 20
    assert s["rss_end_mb"] - s["rss_start_mb"] < 150
    assert (tmp_path / "soak.png").stat().st_size > 10_000


@pytest.mark.parametrize("deployment", ["model-rand", "GrpcIngress"])
def test_replica_killed_under_load_loses_nothing(
    service: tuple[str, object], exported: Path, files: list[Path], deployment: str
) -> None:
    """SIGKILL of the model replica, then of the ingress, while 4 clients call Tokenize in a
    loop and 2 stream files: Ray Serve starts a new one, calls that met the dead one come back
    UNAVAILABLE, the SDK retries unary calls and resumes cut streams, and every answer equals
    the offline units. (Last in this module: they restart the service's processes.)"""
    address, _ = service
    offline = load_served(exported)
    expected = {f: offline.tokenize(decode_audio(f)).tolist() for f in files}
    title = f"ServeReplica:speechtok-test:{deployment}"
    r = kill_under_load(address, title, files, expected, api_key=KEY)
    print(r.line(), r.errors)
    assert (r.lost, r.wrong, r.errors) == (0, 0, [])
    assert r.answered >= 28 and r.streams_answered > 0
    assert titled(title)  # the successor is there
