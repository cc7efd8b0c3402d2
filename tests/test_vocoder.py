"""The unit HiFi-GAN: shapes, weight-norm folding, training (losses fall, resumable), ONNX
export parity, synthesis CLI, and the probe's resynthesis metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from lm_probe.resynthesis import resynthesis
from tokenizer.corpus.manifest import load_corpus
from tokenizer.errors import InvalidInputError
from tokenizer.kinds import load_tokenizer
from tokenizer.model_dir import load_model_dir
from tokenizer.train.checkpoint import read_log
from vocoder.config import GeneratorConfig
from vocoder.discriminators import Discriminators
from vocoder.model import Generator
from vocoder.runtime import Vocoder

from .conftest import TINY_GENERATOR

CLI = [sys.executable, "-m", "speechtok"]


def _gen(**kw: object) -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(n_units=20, speakers=("a", "b"), **{**TINY_GENERATOR, **kw}))


def test_generator_speaks_320_samples_per_unit_and_folds_weight_norm() -> None:
    gen = _gen().eval()
    units = torch.randint(0, 20, (3, 17))
    with torch.no_grad():
        y = gen(units, torch.tensor([0, 1, 0]))
        assert y.shape == (3, 17 * 320) and y.abs().max() <= 1
        folded = _gen().eval()
        folded.load_state_dict(gen.state_dict())
        folded.remove_weight_norm()
        assert torch.allclose(folded(units, torch.tensor([0, 1, 0])), y, atol=1e-6)
        assert not any("parametrizations" in k for k in folded.state_dict())
    scores, fmaps = Discriminators()(y)
    assert len(scores) == 8 and all(len(f) >= 5 for f in fmaps)


def test_generator_config_checks() -> None:
    with pytest.raises(ValueError, match="multiplying to 320"):
        GeneratorConfig(n_units=10, speakers=("a",), upsample_rates=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="at least one speaker"):
        GeneratorConfig(n_units=10, speakers=())


def test_training_losses_fall_and_samples_are_written(tiny_vocoder: tuple[Path, Path]) -> None:
    _, run = tiny_vocoder
    log = [r for r in read_log(run) if "mel" in r]
    assert log[0]["step"] == 4 and log[-1]["step"] == 40
    assert [r["step"] for r in read_log(run) if "call_s" in r] == [40]  # the card's wall time
    assert log[-2]["mel"] < 0.8 * log[0]["mel"], [r["mel"] for r in log]
    assert log[-2]["duration"] < log[0]["duration"]
    assert "disc" in log[-1] and "disc" not in log[0]  # the GAN joined at step 36
    assert (run / "samples" / "step-000040-fake.wav").is_file()


def test_onnx_vocoder_equals_torch_and_checks_input(tiny_vocoder: tuple[Path, Path]) -> None:
    path, _ = tiny_vocoder
    voc = Vocoder(path)
    model = load_model_dir(path)
    gen = Generator(GeneratorConfig.from_dict(dict(model.config.generator)))
    gen.remove_weight_norm().load_state_dict(
        {k: torch.from_numpy(v) for k, v in model.tensors.items()}
    )
    units = np.random.default_rng(0).integers(0, voc.K, 123)
    audio = voc.synthesize(units, 1)
    with torch.no_grad():
        ref = gen.eval()(torch.from_numpy(units)[None], torch.tensor([1]))[0].numpy()
    assert audio.shape == (123 * 320,)
    assert np.abs(audio - ref).max() < 1e-4
    short = voc.synthesize([3, 5, 3], durations=[2, 1, 4])
    assert len(short) == 7 * 320
    assert len(voc.synthesize([3, 5, 3], deduplicated=True)) % 320 == 0
    with pytest.raises(InvalidInputError, match=r"units in \[0, "):
        voc.synthesize([voc.K])
    with pytest.raises(InvalidInputError, match="speaker name or index"):
        voc.synthesize([1, 2], speaker="nobody")
    with pytest.raises(InvalidInputError, match="one integer duration >= 1 per unit"):
        voc.synthesize([1, 2], durations=[1])


def test_synthesize_cli_from_units_and_audio(
    tiny_vocoder: tuple[Path, Path], tiny_corpus: Path, exported: Path, tmp_path: Path
) -> None:
    path, _ = tiny_vocoder
    root, utts = load_corpus(tiny_corpus, "test")
    wav = utts[0].audio_path(root)
    line = subprocess.run(
        [*CLI, "tokenize", "--model", str(exported), "--dedup", str(wav)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (tmp_path / "u.jsonl").write_text(line)
    (tmp_path / "u.txt").write_text("1 2 3 3 3 4\n")
    frames = sum(json.loads(line)["durations"])
    for source, n in ((["--units", str(tmp_path / "u.jsonl")], frames),
                      (["--units", str(tmp_path / "u.txt")], 6),
                      (["--audio", str(wav), "--units-model", str(exported)], frames)):  # fmt: skip
        out = subprocess.run(
            [*CLI, "synthesize", "--vocoder", str(path), *source, "--speaker", "0",
             "--out", str(tmp_path / "a.wav")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert json.loads(out.stdout)["seconds"] == pytest.approx(n * 0.02)
        audio, rate = sf.read(tmp_path / "a.wav")
        assert rate == 16000 and len(audio) == n * 320
    bad = subprocess.run(
        [*CLI, "synthesize", "--vocoder", str(path), "--units", str(tmp_path / "a.wav"),
         "--out", str(tmp_path / "b.wav")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "expected" in bad.stderr


def test_probe_resynthesis_metrics(
    tiny_vocoder: tuple[Path, Path], tiny_corpus: Path, exported: Path
) -> None:
    path, _ = tiny_vocoder
    root, utts = load_corpus(tiny_corpus)
    r = resynthesis(load_tokenizer(exported), Vocoder(path), root, utts[:3])
    assert r["utterances"] == 3
    assert 0 <= r["frame_agreement"] <= 1 and 0 < r["chance"] < 1
    assert r["mcd_db"] > 0 and r["dedup_unit_edit_rate"] >= 0
