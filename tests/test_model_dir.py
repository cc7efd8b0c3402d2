"""Model directories and k-means tokenizers: fingerprints, tamper detection, the typed config
and the kinds registry, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tokenizer.dedup import dedup
from tokenizer.features import FRAME_RATE, FeatureConfig, extract, n_frames
from tokenizer.kinds import REGISTRY, load_served, load_tokenizer, require
from tokenizer.kmeans import KmeansConfig, fit_kmeans, save_kmeans_tokenizer
from tokenizer.model_dir import KINDS, ModelError, load_model_dir, read_config
from tokenizer.shipped import models_root

MODELS = models_root()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(c, 0.1, (200, 39)) for c in (-1.0, 0.0, 1.0)])
    tensors = fit_kmeans(feats.astype(np.float32), KmeansConfig(K=3, seed=0))
    save_kmeans_tokenizer(tmp_path / "m", "toy", FeatureConfig(), tensors, {"command": "x"})
    return tmp_path / "m"


def test_feature_frames_match_encoder_grid() -> None:
    assert [n_frames(n) for n in (0, 399, 400, 719, 720, 16000)] == [0, 0, 1, 1, 2, 49]
    x = np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    assert extract(x, FeatureConfig()).shape == (49, 39)
    assert extract(x, FeatureConfig(type="logmel", n_mels=80)).shape == (49, 80)
    assert FRAME_RATE == 50.0


def test_kmeans_finds_the_clusters(model: Path) -> None:
    c = load_model_dir(model).tensors["centroids"]
    assert sorted(np.round(c.mean(1)).tolist()) == [-1.0, 0.0, 1.0]  # standardised, still apart


def test_tokenize_is_deterministic_and_dense(model: Path) -> None:
    tok = load_tokenizer(model)
    x = np.random.default_rng(2).standard_normal(32000).astype(np.float32) * 0.1
    a, b = tok.tokenize(x), tok.tokenize(x.copy())
    assert a.dtype == np.int32 and len(a) == n_frames(32000)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < tok.K


def test_fingerprint_detects_changes(model: Path) -> None:
    fp = load_model_dir(model).fingerprint
    assert (model / "FINGERPRINT").read_text().strip() == fp and len(fp) == 64
    config = json.loads((model / "config.json").read_text())
    config["tokenizer"]["features"]["n_mfcc"] = 12
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="modified after it was saved"):
        load_model_dir(model)


def test_missing_parts(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"found no config\.json"):
        load_model_dir(tmp_path)


def test_dedup() -> None:
    units, durations = dedup(np.array([4, 4, 4, 1, 4, 4]))
    assert units.tolist() == [4, 1, 4] and durations.tolist() == [3, 1, 2]


def test_tokenize_and_info_cli(model: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(3).standard_normal(16000).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", x, 16000)
    run = [sys.executable, "-m", "speechtok"]
    done = subprocess.run([*run, "tokenize", "--model", str(model), "--dedup",
                           str(tmp_path / "a.wav")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert sum(line["durations"]) == 49 and line["fingerprint"] == load_model_dir(model).fingerprint
    units, _ = dedup(load_tokenizer(model).tokenize(x))
    assert line["units"] == units.tolist() and line["frame_rate"] == 50.0
    info = subprocess.run([*run, "info", "--model", str(model)], capture_output=True, text=True)
    assert json.loads(info.stdout)["K"] == 3
    (tmp_path / "bad.wav").write_bytes(b"RIFF....nonsense")
    bad = subprocess.run([*run, "tokenize", "--model", str(model), str(tmp_path / "bad.wav")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "expected" in bad.stderr


@pytest.mark.parametrize("name", [d.name for d in sorted(MODELS.iterdir()) if d.is_dir()])
def test_shipped_configs_read_once_and_round_trip(name: str) -> None:
    """Every shipped model parses into a ModelConfig whose JSON is the file's, unchanged."""
    config = read_config(MODELS / name)
    assert config.to_dict() == json.loads((MODELS / name / "config.json").read_text())
    assert config.kind in KINDS and config.K > 0
    assert (config.kind == "vocoder") == (config.frame_rate is None)


def _config(**changes: object) -> dict:
    raw = json.loads((MODELS / "dcspin-tiny-k100-stream" / "config.json").read_text())
    for key, value in changes.items():
        where, _, field = key.rpartition("__")
        target = raw["tokenizer"] if where else raw
        if value is None:
            del target[field]
        else:
            target[field] = value
    return raw


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "wavlm"}, r"expected a model kind in \[.*\] in .*config\.json, found 'wavlm'"),
        ({"name": None}, r"expected name \(str\) in .*config\.json, found nothing"),
        ({"K": "100"}, r"expected K \(int\) in .*config\.json, found str '100'"),
        ({"K": True}, r"expected K \(int\) in .*, found bool True"),
        ({"tokenizer__layer": "top"}, r"expected tokenizer\.layer \(int\) in .*, found str"),
        (
            {"tokenizer__encoder": None},
            r"expected tokenizer\.encoder \(dict\) in .*, found nothing",
        ),
        ({"tokenizer__window": {"left_ms": 10}}, r"expected a valid tokenizer section in .*"),
    ],
)
def test_config_errors_name_the_file_and_the_field(
    tmp_path: Path, changes: dict, message: str
) -> None:
    (tmp_path / "config.json").write_text(json.dumps(_config(**changes)))
    with pytest.raises(ModelError, match=message):
        read_config(tmp_path)


def test_loaders_go_through_the_kinds_registry(tmp_path: Path) -> None:
    assert tuple(REGISTRY) == KINDS
    with pytest.raises(ModelError, match="expected a tokenizer model directory, found a vocoder"):
        load_tokenizer(MODELS / (MODELS / "DEFAULT_VOCODER").read_text().strip())
    with pytest.raises(ModelError, match="expected a vocoder model directory, found 'spin'"):
        require(read_config(MODELS / "dcspin-tiny-k100-stream"), tmp_path, "vocoder")
    with pytest.raises(ModelError, match="expected an exported model"):
        load_served(MODELS / "hubert-tiny")
