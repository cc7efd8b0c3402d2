"""``speechtok import fairseq|hf`` on synthetic checkpoints: the model directories it writes give
the units the Python import path gives, and bad checkpoints get messages naming the keys."""

from __future__ import annotations

import fractions
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from tokenizer.encoder.import_fairseq import load_fairseq_checkpoint
from tokenizer.encoder.import_hf import load_hf
from tokenizer.encoder.model import Encoder
from tokenizer.kinds import load_tokenizer

from .conftest import speech_like
from .test_encoder import fairseq_checkpoint, random_hf

CLI = [sys.executable, "-m", "speechtok", "import"]
AUDIO = speech_like(12_000, 9)


def _run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


def _nearest(encoder: Encoder, centroids: np.ndarray, layer: int) -> np.ndarray:
    """The textlesslib / fairseq ``ApplyKmeans`` units of ``AUDIO`` at ``layer``, by hand."""
    with torch.no_grad():
        x, _ = encoder(torch.from_numpy(AUDIO)[None], layer=layer)
    x = x[0].numpy()
    dist = (x**2).sum(1, keepdims=True) - 2 * x @ centroids.T + (centroids**2).sum(1)
    return dist.argmin(1)


@pytest.fixture(scope="module")
def centroids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("km") / "km.npy"
    np.save(path, np.random.default_rng(0).standard_normal((7, 64)).astype(np.float32))
    return path


@pytest.mark.parametrize("task_model", [False, True])
def test_hf_import_with_kmeans_equals_the_python_path(
    tmp_path: Path, centroids: Path, task_model: bool
) -> None:
    import transformers

    hf, hf_config = random_hf()
    if task_model:  # HubertForCTC: the encoder under "hubert.", an lm_head beside it
        ctc = transformers.HubertForCTC(transformers.HubertConfig(**{**hf_config, "vocab_size": 5}))
        ctc.hubert.load_state_dict(hf.state_dict())
        ctc.save_pretrained(tmp_path / "hf")
    else:
        hf.save_pretrained(tmp_path / "hf")
    done = _run("hf", tmp_path / "hf", "--out", tmp_path / "m", "--kmeans", centroids, "--layer", 1)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert (line["kind"], line["K"], line["kmeans"]["K"]) == ("hubert", 0, 7)
    tok = load_tokenizer(tmp_path / "m-km7", "torch")
    expected = _nearest(load_hf(hf.state_dict(), hf_config), np.load(centroids), 1)
    np.testing.assert_array_equal(tok.tokenize(AUDIO, full_utterance=True), expected)
    card = (tmp_path / "m" / "README.md").read_text()
    assert "model.safetensors" in card and "sha256" in card
    # The encoder alone has no units, and says what to do.
    sf.write(tmp_path / "a.wav", AUDIO, 16000)
    bare = subprocess.run(
        [sys.executable, "-m", "speechtok", "tokenize", "--model", str(tmp_path / "m"),
         str(tmp_path / "a.wav")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bare.returncode == 2 and "expected a model with units" in bare.stderr, bare.stderr
    assert "speechtok train kmeans" in bare.stderr


@pytest.mark.parametrize("old_args", [False, True])
def test_fairseq_import_keeps_hubert_head_and_equals_the_python_path(
    tmp_path: Path, centroids: Path, old_args: bool
) -> None:
    hf, hf_config = random_hf()
    ckpt = fairseq_checkpoint(hf, hf_config, old_args)
    torch.save(ckpt, tmp_path / "hubert.pt")
    done = _run("fairseq", tmp_path / "hubert.pt", "--out", tmp_path / "m", "--kmeans", centroids)
    assert done.returncode == 0, done.stderr  # argparse.Namespace loads without --trust-pickle
    line = json.loads(done.stdout)
    assert (line["kind"], line["K"]) == ("hubert", 10)
    encoder = load_fairseq_checkpoint(tmp_path / "hubert.pt")
    state = ckpt["model"]
    with torch.no_grad():
        x, _ = encoder(torch.from_numpy(AUDIO)[None])
        z = torch.nn.functional.normalize(x[0] @ state["final_proj.weight"].T
                                          + state["final_proj.bias"], dim=-1)  # fmt: skip
        head = (z @ torch.nn.functional.normalize(state["label_embs_concat"], dim=-1).T).argmax(1)
    hubert = load_tokenizer(tmp_path / "m", "torch")
    np.testing.assert_array_equal(hubert.tokenize(AUDIO, full_utterance=True), head.numpy())
    kmeans = load_tokenizer(tmp_path / "m-km7", "torch")
    expected = _nearest(encoder, np.load(centroids), 2)  # no --layer: the final output (2 layers)
    np.testing.assert_array_equal(kmeans.tokenize(AUDIO, full_utterance=True), expected)


def test_bad_checkpoints_get_messages_naming_the_problem(tmp_path: Path) -> None:
    hf, hf_config = random_hf()
    ckpt: dict[str, Any] = fairseq_checkpoint(hf, hf_config)
    ckpt["model"]["encoder.layers.0.self_attn.rel_pos_bias.weight"] = torch.zeros(3)
    torch.save(ckpt, tmp_path / "unknown.pt")
    done = _run("fairseq", tmp_path / "unknown.pt", "--out", tmp_path / "m")
    assert done.returncode == 2 and "unexpected" in done.stderr, done.stderr
    assert "self_attn.rel_pos_bias.weight" in done.stderr and "Traceback" not in done.stderr
    del ckpt["model"]["encoder.layers.0.self_attn.rel_pos_bias.weight"]
    ckpt["extra"] = fractions.Fraction(1, 3)  # a pickled object beyond tensors and containers
    torch.save(ckpt, tmp_path / "pickled.pt")
    done = _run("fairseq", tmp_path / "pickled.pt", "--out", tmp_path / "m")
    assert done.returncode == 2 and "fractions.Fraction" in done.stderr, done.stderr
    assert "--trust-pickle" in done.stderr
    done = _run("fairseq", tmp_path / "pickled.pt", "--out", tmp_path / "m", "--trust-pickle")
    assert done.returncode == 0, done.stderr
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**hf_config, "model_type": "bert"}))
    done = _run("hf", tmp_path / "hf", "--out", tmp_path / "m2")
    assert done.returncode == 2 and "expected a Hugging Face checkpoint" in done.stderr
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"")
    done = _run("hf", tmp_path / "hf", "--out", tmp_path / "m2")
    assert done.returncode == 2 and "model_type hubert / wav2vec2 / wavlm" in done.stderr
