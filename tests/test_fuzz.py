"""The malformed-input corpus (``bench/fuzz.py``): the generator in process, its file cases
through the real decoder, and a seeded subset against the real service on loopback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from bench.fuzz import (
    FAMILIES,
    NEVER,
    Case,
    RssSampler,
    cases,
    correct_request,
    run,
    sendable,
)
from bench.procs import rss_bytes, titled
from serving.requests import limits_for, read_audio
from serving.status import abort_for
from tokenizer.audio import decode_audio
from tokenizer.kinds import load_served

from .conftest import KEY, SERVICE_CONFIG

SUBSET = 160
"""Cases sent to the service (the idle-timeout streams, slow, are left out)."""
RSS_GROWTH_MB = 300
"""Most the Serve replicas' memory may grow during the subset (generous: allocator noise)."""


def test_the_generator_is_seeded_distinct_and_covers_every_family() -> None:
    corpus = cases(0, 1200)
    keys = [c.key() for c in corpus]
    assert keys == [c.key() for c in cases(0, 1200)]
    assert keys != [c.key() for c in cases(1, 1200)]
    assert len(set(keys)) == len(corpus) == 1200
    assert {c.family for c in corpus} == set(FAMILIES)
    assert {c.family for c in cases(0, 2 * len(FAMILIES))} == set(FAMILIES)  # by turns
    assert all(c.allowed and not c.allowed & NEVER for c in corpus)
    assert any(c.slow for c in corpus) and any("OK" in c.allowed for c in corpus)


def test_metadata_grpc_refuses_to_send_is_told_apart() -> None:
    assert sendable((("x-api-key", "k"), ("x-data-bin", b"\xff")))
    for refused in (("X-Odd", "v"), ("", "v"), (":authority", "a"), ("x-odd", "a\nb"),
                    ("x-odd", "h\u00e9"), ("x-odd-bin", "str"), ("x-odd", b"bytes")):  # fmt: skip
        assert not sendable((refused,))


class _Context:
    """What :func:`abort_for` needs of a gRPC context: ``abort`` raises with the code."""

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise _Aborted(code.name)


class _Aborted(Exception):
    pass


def _status_in_process(case: Case) -> str:
    """The status the service would give a Tokenize case's audio, decoded here."""
    try:
        read_audio(
            case.request.audio, limits_for(SERVICE_CONFIG, SERVICE_CONFIG.max_request_seconds)
        )
    except Exception as e:
        try:
            asyncio.run(abort_for(e, _Context()))  # type: ignore[arg-type]
        except _Aborted as status:
            return str(status)
    return "OK"


def test_every_file_case_decodes_to_an_allowed_status_in_process() -> None:
    """The decoder alone, on every file-family case: truncated or lying files are refused
    (WAV, RF64 and AIFF as much as FLAC), never an unexpected error."""
    families = ("random-bytes", "truncated", "lying-header", "bomb", "pcm", "float-values")
    corpus = [c for c in cases(3, 1200, SERVICE_CONFIG) if c.family in families]
    wrong = [(c.name, s) for c in corpus if (s := _status_in_process(c)) not in c.allowed]
    assert len(corpus) > 900 and wrong == []


@pytest.mark.slow
def test_the_service_answers_the_corpus_and_keeps_serving(
    service: tuple[str, object], exported: Path
) -> None:
    """A seeded subset over every family against the real service: only allowed statuses
    (never UNKNOWN or INTERNAL), health SERVING after every case, the correct request's units
    unchanged, every stream slot freed, and the replicas' memory bounded."""
    address, handle = service
    corpus = [c for c in cases(7, SUBSET, SERVICE_CONFIG) if not c.slow]
    assert {c.family for c in corpus} == set(FAMILIES)
    replicas = titled("ServeReplica:speechtok-test:")
    assert len(replicas) >= 3  # ingress, model, vocoder
    with RssSampler(lambda: rss_bytes(replicas)) as rss:
        report = run(address, corpus, KEY)
    print(report.counts(), f"replica RSS MB {rss.start >> 20} -> peak {rss.peak >> 20}")
    assert [(o.name, o.label, o.message) for o in report.disallowed] == []
    assert report.failures == []
    offline = load_served(exported).tokenize(decode_audio(correct_request().audio.file))
    assert report.expected_units == offline.tolist()
    assert rss.peak - rss.start < RSS_GROWTH_MB << 20
    deadline = time.monotonic() + 10
    while handle.open_streams.remote().result() and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.1)
    assert handle.open_streams.remote().result() == 0  # type: ignore[attr-defined]
