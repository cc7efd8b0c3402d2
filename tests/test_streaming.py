"""Canonical windows, streaming sessions, ONNX export and the ONNX Runtime backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizer.audio import decode_audio
from tokenizer.errors import AudioError, InvalidInputError
from tokenizer.kinds import load_served, load_tokenizer
from tokenizer.model_dir import ModelError, load_model_dir
from tokenizer.streaming import StreamSession
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.windows import WindowSpec, n_frames

from .conftest import SPEC
from .conftest import speech_like as _speech_like

CLI = [sys.executable, "-m", "speechtok"]


@given(st.integers(0, 40_000))
def test_window_plan_covers_every_frame_once(n: int) -> None:
    windows = SPEC.plan(n)
    assert sum(w.keep for w in windows) == n_frames(n)
    expected = 0
    for w in windows:
        assert w.first_frame == expected and w.keep > 0
        assert w.start % 320 == 0 and 0 <= w.start < w.end <= n
        assert w.end - w.start <= SPEC.window_samples
        assert n_frames(w.end - w.start) >= w.keep_from + w.keep  # the window has those frames
        expected += w.keep


def test_window_spec_checks() -> None:
    assert SPEC.window_samples == 320 * (16 + 8 + 8 - 1) + 400 and SPEC.latency_ms == 320
    for bad in ((10, 160, 0), (0, 0, 0), (-20, 160, 0)):
        with pytest.raises(InvalidInputError, match="multiples of 20 ms"):
            WindowSpec(*bad)
    assert WindowSpec.parse("0,200,40") == WindowSpec(0, 200, 40)
    with pytest.raises(InvalidInputError, match="LEFT,CHUNK,RIGHT"):
        WindowSpec.parse("1,2")


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(0, 40_000), one_sample=st.booleans())
def test_any_client_chunking_gives_offline_units(
    exported: Path, seed: int, n: int, one_sample: bool
) -> None:
    tok = load_served(exported, threads=1)
    audio = _speech_like(n, seed)
    offline = tok.tokenize(audio)
    rng = np.random.default_rng(seed)
    session, parts, at, offsets = StreamSession(SPEC), [], 0, []
    while at < n:
        size = 1 if one_sample and at < 3000 else int(rng.integers(1, 9000))
        final = session.feed(audio[at : at + size], tok.encode_windows)
        offsets.append(final.offset)
        parts.append(final.units)
        at += size
    final = session.flush(tok.encode_windows)
    parts.append(final.units)
    streamed = np.concatenate(parts)
    np.testing.assert_array_equal(streamed, offline)
    assert len(streamed) == n_frames(n) and session.emitted == n_frames(n)
    assert len(session._buffer) == 0


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(8000, 40_000), cuts=st.integers(1, 3))
def test_a_cut_stream_resumed_gives_the_units_of_one_stream(
    exported: Path, seed: int, n: int, cuts: int
) -> None:
    """What a client does when its call is cut: a new session resumes at the last answer's
    frame count with audio from at most its ``resume_sample``; the units equal offline."""
    tok = load_served(exported, threads=1)
    audio = _speech_like(n, seed)
    rng = np.random.default_rng(seed)
    session, parts, at = StreamSession(SPEC), [], 0
    cut_at = sorted(rng.integers(1, n, cuts))
    while at < n:
        size = int(rng.integers(1, 6000))
        final = session.feed(audio[at : at + size], tok.encode_windows)
        parts.append(final.units)
        at += size
        if cut_at and at >= cut_at[0]:  # cut: what was sent since the last answer is lost
            cut_at.pop(0)
            frame, need = session.emitted, session.resume_sample
            at = int(rng.integers(0, need + 1))  # resend from any sample up to resume_sample
            session = StreamSession(SPEC)
            session.resume(frame, at)
    parts.append(session.flush(tok.encode_windows).units)
    np.testing.assert_array_equal(np.concatenate(parts), tok.tokenize(audio))


def test_resume_checks() -> None:
    with pytest.raises(InvalidInputError, match="multiple of the 8-frame chunk"):
        StreamSession(SPEC).resume(5, 0)
    need = SPEC.window(2, None).start
    with pytest.raises(InvalidInputError, match=f"from 0 to {need}"):
        StreamSession(SPEC).resume(16, need + 1)
    session = StreamSession(SPEC)
    session.push(np.zeros(100, np.float32))
    with pytest.raises(InvalidInputError, match="new session"):
        session.resume(0, 0)


def test_session_keeps_only_what_it_needs_and_checks_input() -> None:
    session = StreamSession(SPEC)
    jobs = session.push(np.zeros(16000 * 5, np.float32))
    assert [j.window.first_frame for j in jobs] == list(range(0, 8 * len(jobs), 8))
    assert len(session._buffer) <= SPEC.window_samples + 16000  # not all 5 s
    with pytest.raises(AudioError, match="finite"):
        session.push(np.array([np.nan], np.float32))
    with pytest.raises(AudioError, match="1-D float"):
        session.push(np.zeros((2, 10), np.float32))
    with pytest.raises(AudioError, match="at most 10 samples"):
        StreamSession(SPEC, max_samples=10).push(np.zeros(11, np.float32))
    session.finish()
    with pytest.raises(InvalidInputError, match="after"):
        session.push(np.zeros(10, np.float32))


def test_onnx_matches_torch(exported: Path) -> None:
    onnx_tok = load_served(exported, threads=1)
    torch_tok = load_tokenizer(exported, "torch")
    assert isinstance(torch_tok, TorchTokenizer)
    audios = [_speech_like(n, i) for i, n in enumerate((400, 9000, 48_000))]
    for a in audios:
        with torch.inference_mode():
            scores, _ = torch_tok.scores(torch.from_numpy(a)[None], torch.tensor([len(a)]))
            ref = scores[0].numpy()
        got = onnx_tok.scores(a)
        assert np.abs(got - ref).max() <= 1e-3
        top2 = np.sort(ref, axis=1)[:, -2:]
        differ = onnx_tok.tokenize(a, full_utterance=True) != ref.argmax(1)
        assert np.all(top2[differ, 1] - top2[differ, 0] < 1e-3)  # only near-ties may differ
        np.testing.assert_array_equal(torch_tok.tokenize(a), onnx_tok.tokenize(a))
    # Batched windows (padded) give what each window gives alone.
    batch = onnx_tok.encode_windows([a[: SPEC.window_samples] for a in audios])
    for a, units in zip(audios, batch, strict=True):
        np.testing.assert_array_equal(units, onnx_tok.encode_windows([a[: SPEC.window_samples]])[0])


def test_runtime_import_does_not_import_torch() -> None:
    code = (
        "import sys, tokenizer.onnx_tokenizer, tokenizer.streaming; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_graph_tampering_is_caught(exported: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(exported, copy)
    config = load_model_dir(copy).config
    assert set(config.graphs) == {"model.onnx", "window.onnx"}
    assert config.window == SPEC
    data = bytearray((copy / "window.onnx").read_bytes())
    data[-10] ^= 1
    (copy / "window.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"window\.onnx with sha256"):
        load_model_dir(copy)


def test_tokenize_cli_modes_agree(exported: Path, tmp_path: Path) -> None:
    import soundfile as sf

    wav = tmp_path / "a.wav"
    sf.write(wav, _speech_like(30_000, 3), 16000)
    outs = {}
    for mode in (
        ["--backend", "torch"],
        ["--backend", "onnx"],
        ["--simulate-stream", "random"],
        ["--simulate-stream", "30"],
        ["--full-utterance"],
    ):
        done = subprocess.run(
            [*CLI, "tokenize", "--model", str(exported), *mode, str(wav)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        outs[" ".join(mode)] = json.loads(done.stdout)["units"]
    windowed = outs["--backend onnx"]
    assert len(windowed) == n_frames(30_000)
    assert all(outs[m] == windowed for m in outs if m != "--full-utterance")
    bad = subprocess.run(
        [*CLI, "tokenize", "--model", str(exported), "--simulate-stream", "0", str(wav)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "CHUNK_MS > 0" in bad.stderr


def test_choose_window_rule() -> None:
    from lm_probe.window_curve import choose

    def point(left: int, chunk: int, right: int, agreement: float) -> dict[str, object]:
        return {
            "left_ms": left,
            "chunk_ms": chunk,
            "right_ms": right,
            "agreement": agreement,
            "latency_ms": chunk + right,
            "window_ms": left + chunk + right,
        }

    points = [
        point(0, 160, 0, 0.9),
        point(320, 160, 80, 0.975),
        point(960, 160, 80, 0.99),
        point(320, 320, 80, 0.98),
        point(960, 320, 240, 0.999),
    ]
    assert choose(points)[0] == WindowSpec(320, 320, 80)  # least work per second, <= 400 ms
    spec, why = choose([point(0, 160, 0, 0.9), point(0, 320, 240, 0.99)])
    assert spec == WindowSpec(0, 160, 0) and "no window reaches 97%" in why


def test_streaming_curve_cli(exported: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *CLI,
            "streaming-curve",
            "--model",
            str(exported),
            "--corpus",
            str(tiny_corpus),
            "--max-utterances",
            "3",
            "--grid",
            "0,160,0",
            "960,320,240",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "curve.json").read_text())
    assert [p["latency_ms"] for p in record["points"]] == [160, 560]
    assert all(0.0 <= p["agreement"] <= 1.0 for p in record["points"])
    assert (tmp_path / "curve.png").stat().st_size > 0 and "agreement" in (
        tmp_path / "curve.md"
    ).read_text()


def test_fp16_export_agrees_with_fp32_and_is_fingerprinted(exported: Path, tmp_path: Path) -> None:
    import shutil

    from tokenizer.export import export_graph, export_model, unit_agreement

    copy = tmp_path / "m"
    shutil.copytree(exported, copy)
    export_model(copy, SPEC, "fp16")
    model = load_model_dir(copy)
    assert model.config.precision == "fp16"
    assert model.fingerprint != load_model_dir(exported).fingerprint
    audios = [_speech_like(n, i) for i, n in enumerate((9000, 32_000))]
    fp32 = export_graph(load_tokenizer(copy, "torch"), None)  # type: ignore[arg-type]
    agree = unit_agreement((copy / "model.onnx").read_bytes(), fp32, audios)
    assert 0.9 <= agree <= 1.0
    served = load_served(copy)  # float32 in and out, whatever the inside computes in
    assert served.tokenize(audios[0]).dtype == np.int32
    export_model(copy, SPEC)  # back to float32: the same graphs and fingerprint as before
    assert load_model_dir(copy).fingerprint == load_model_dir(exported).fingerprint


def test_int8_export_is_its_own_model_and_keeps_the_invariants(
    exported: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """int8 graphs (quantized from float32, calibrated on corpus windows) are a model of their
    own (another fingerprint) whose streamed units equal its offline units; the head and the
    first convolution stay float32."""
    import shutil

    import onnx

    from tokenizer.corpus.manifest import load_corpus
    from tokenizer.export import export_model
    from tokenizer.quantize import kept_float

    root, utts = load_corpus(tiny_corpus)
    audio = [decode_audio(u.audio_path(root)) for u in sorted(utts, key=lambda u: u.id)[:12]]
    copy = tmp_path / "m"
    shutil.copytree(exported, copy)
    with pytest.raises(InvalidInputError, match="calibration audio"):
        export_model(copy, SPEC, "int8", audio[:1])
    export_model(copy, SPEC, "int8", audio)
    model = load_model_dir(copy)
    assert model.config.precision == "int8"
    assert model.fingerprint != load_model_dir(exported).fingerprint
    graph = onnx.load(str(copy / "window.onnx"))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert kept_float(graph)  # the first conv and the head stay float
    tok = load_served(copy, threads=1)
    session, parts = StreamSession(SPEC), []
    for at in range(0, len(audio[0]), 1234):
        parts.append(session.feed(audio[0][at : at + 1234], tok.encode_windows).units)
    parts.append(session.flush(tok.encode_windows).units)
    units = tok.tokenize(audio[0])
    np.testing.assert_array_equal(np.concatenate(parts), units)
    fp32 = load_served(exported, threads=1).tokenize(audio[0])
    assert (units == fp32).mean() > 0.5  # close to float32, not equal by contract
