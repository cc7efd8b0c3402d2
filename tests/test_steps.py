"""Incremental steps: each frame encoded once with a carried state; streamed, offline, batched
and resumed units are identical, and equal the full-utterance units and those of windows that
cover the model's context."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import load_corpus
from tokenizer.encoder.config import tiny
from tokenizer.errors import InvalidInputError
from tokenizer.export import export_model
from tokenizer.kinds import load_served, load_tokenizer
from tokenizer.model_dir import STEP_GRAPH, load_model_dir
from tokenizer.onnx_tokenizer import OnnxTokenizer
from tokenizer.steps import StepSession, step_spec, tokenize_by_steps
from tokenizer.windows import WindowSpec, n_frames, tokenize_windowed

from .conftest import STEP_MS, bounded, speech_like

CLI = [sys.executable, "-m", "speechtok"]


def test_step_spec_of_a_bounded_encoder() -> None:
    spec = step_spec(bounded(), None, 160)
    # 8 new frames a step; units lag by the positional conv's 1 frame + 1 per layer (4 layers);
    # a unit depends on 1 + 4 x 2 frames before it.
    assert (spec.frames, spec.lag, spec.context) == (8, 5, 9)
    assert spec.latency_ms == 260 and spec.samples == 320 * 7 + 400
    assert step_spec(bounded(), 2, 160).lag == 3  # read at layer 2: two layers' lookahead
    assert spec.resume_start(0) == 0 and spec.resume_start(30) == 16  # (30 - 9) // 8 * 8
    with pytest.raises(InvalidInputError, match="bounded-context"):
        step_spec(tiny(), None, 160)
    with pytest.raises(InvalidInputError, match="multiple of 20 ms"):
        step_spec(bounded(), None, 150)
    with pytest.raises(InvalidInputError, match="attention_right"):
        step_spec(replace(bounded(), attention_right=3), None, 40)


def test_steps_equal_full_utterance_covering_windows_and_torch(
    stepped: Path, tiny_corpus: Path
) -> None:
    tok = load_served(stepped, threads=1)
    assert tok.steps is not None and tok.steps.frames == STEP_MS // 20
    root, utts = load_corpus(tiny_corpus)
    audios = [decode_audio(u.audio_path(root)) for u in utts if u.split == "test"]
    audios += [speech_like(n, n) for n in (0, 399, 400, 2960, 3000)]  # 0 and 1 frame, edges
    by_steps = tok.tokenize_batch(audios)
    one_by_one = [tok.tokenize(a) for a in audios]
    full = [tok.tokenize(a, full_utterance=True) for a in audios]
    covering = tokenize_windowed(audios, WindowSpec(180, 160, 100), tok.encode_batch)
    torch_steps = load_tokenizer(stepped, "torch").tokenize_batch(audios)
    rows = zip(by_steps, one_by_one, full, covering, torch_steps, audios, strict=True)
    for s, o, f, c, t, a in rows:
        assert len(s) == n_frames(len(a))
        np.testing.assert_array_equal(s, o)  # batch composition
        np.testing.assert_array_equal(s, f)  # = full utterance
        np.testing.assert_array_equal(s, c)  # = windows covering the context
        np.testing.assert_array_equal(s, t)  # = the torch step
    # The check can fail: steps that lose the carried state give other units.
    initial = tok.initial_state()

    def forgetful(jobs):  # type: ignore[no-untyped-def]
        return tok.run_steps([replace(j, state=initial) for j in jobs])

    assert tok.steps is not None
    lost = tokenize_by_steps(audios, tok.steps, initial, forgetful)
    assert any(not np.array_equal(x, f) for x, f in zip(lost, full, strict=True))


def _mixed(tok: OnnxTokenizer, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """A step runner that pads each call with steps of unrelated streams (mixed batches)."""
    other = StepSession(tok.steps, tok.initial_state())  # type: ignore[arg-type]
    other.push(speech_like(40_000, 99))

    def run(jobs):  # type: ignore[no-untyped-def]
        extra = []
        for _ in range(int(rng.integers(0, 3))):
            if (job := other.next_job()) is not None:
                extra.append(job)
                other.advance(tok.run_steps([job])[0])
        results = tok.run_steps([*extra, *jobs])
        return results[len(extra) :]

    return run


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(0, 40_000), one_sample=st.booleans())
def test_any_client_chunking_and_batching_gives_offline_units(
    stepped: Path, seed: int, n: int, one_sample: bool
) -> None:
    tok = load_served(stepped, threads=1)
    audio = speech_like(n, seed)
    offline = tok.tokenize(audio)
    rng = np.random.default_rng(seed)
    run = _mixed(tok, rng)
    assert tok.steps is not None
    session, parts, at = StepSession(tok.steps, tok.initial_state()), [], 0
    while at < n:
        size = 1 if one_sample and at < 3000 else int(rng.integers(1, 9000))
        final = session.feed(audio[at : at + size], run)
        assert final.offset == sum(len(p) for p in parts)
        if len(final.units):  # final as soon as the samples that complete its step came
            assert at < tok.steps.final_at(final.offset + len(final.units) - 1) <= at + size
        parts.append(final.units)
        at += size
    parts.append(session.flush(run).units)
    np.testing.assert_array_equal(np.concatenate(parts), offline)
    assert session.done and len(session._buffer) <= tok.steps.samples


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(8000, 40_000), cuts=st.integers(1, 3))
def test_a_cut_stream_resumed_gives_the_units_of_one_stream(
    stepped: Path, seed: int, n: int, cuts: int
) -> None:
    """Cut after any answer, resumed from the answer's resume_sample (or any later sample up
    to it... the client keeps from there): the units of one uncut stream, exactly."""
    tok = load_served(stepped, threads=1)
    assert tok.steps is not None
    audio = speech_like(n, seed)
    offline = tok.tokenize(audio)
    rng = np.random.default_rng(seed)
    session = StepSession(tok.steps, tok.initial_state())
    units: list[np.ndarray] = []
    at = 0
    for _ in range(cuts):
        stop = int(rng.integers(at, n))
        while at < stop:
            size = int(rng.integers(1, 4000))
            units.append(session.feed(audio[at : min(at + size, stop)], tok.run_steps).units)
            at = min(at + size, stop)
        frame, keep = session.emitted, session.resume_sample  # the last answer's
        session = StepSession(tok.steps, tok.initial_state())
        offset = int(rng.integers(0, keep + 1))  # a client may keep more than it must
        session.resume(frame, offset)
        at = offset
    while at < n:
        units.append(session.feed(audio[at : at + 5000], tok.run_steps).units)
        at += 5000
    units.append(session.flush(tok.run_steps).units)
    np.testing.assert_array_equal(np.concatenate(units), offline)


def test_resume_and_session_checks(stepped: Path) -> None:
    tok = load_served(stepped, threads=1)
    assert tok.steps is not None
    session = StepSession(tok.steps, tok.initial_state())
    with pytest.raises(InvalidInputError, match="audio_offset from 0 to"):
        session.resume(40, tok.steps.resume_start(40) * 320 + 320)
    with pytest.raises(InvalidInputError, match="resume_frame >= 0"):
        session.resume(-8, 0)
    with pytest.raises(InvalidInputError, match="finite"):
        session.push(np.array([np.nan], np.float32))
    session.finish()
    with pytest.raises(InvalidInputError, match="before finish"):
        session.push(np.zeros(10, np.float32))


def test_export_step_cli_fingerprint_and_refusals(stepped: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    copy.mkdir()
    for f in stepped.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    before = load_model_dir(copy).fingerprint
    done = subprocess.run(
        [*CLI, "export", str(copy), "--step-ms", "320"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = json.loads(done.stdout)
    assert line["step"] == {"frames": 16, "lag": 5, "context": 9, "latency_ms": 420}
    model = load_model_dir(copy)
    assert model.fingerprint != before and model.config.steps is not None
    assert STEP_GRAPH in model.config.graphs
    # No step: the copy tokenizes by windows again and its step graph is gone.
    export_model(copy, step_ms=0)
    assert load_model_dir(copy).config.steps is None and not (copy / STEP_GRAPH).exists()
    assert load_served(copy).steps is None
    with pytest.raises(InvalidInputError, match="float32 for a step graph"):
        export_model(copy, precision="fp16", step_ms=160)
    # The tokenize CLI's simulated stream runs the steps and gives the offline units.
    audio_path = tmp_path / "a.flac"
    import soundfile as sf

    audio = speech_like(30_000, 1)
    sf.write(audio_path, audio, 16000)
    outs = []
    for mode in ([], ["--simulate-stream", "random"]):
        cmd = [*CLI, "tokenize", "--model", str(stepped), *mode, str(audio_path)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        outs.append(json.loads(done.stdout)["units"])
    assert outs[0] == outs[1] == load_served(stepped).tokenize(decode_audio(audio_path)).tolist()
