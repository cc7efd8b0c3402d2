"""Training: run configs, HuBERT pretraining (resume == one run), Spin/DC-Spin, encoder
tokenizers (batched == one at a time), shipped-model lookup."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tokenizer.corpus.manifest import Utterance, load_corpus
from tokenizer.corpus.phones import PHONES
from tokenizer.errors import InvalidInputError
from tokenizer.kinds import load_tokenizer
from tokenizer.model_dir import load_model_dir
from tokenizer.torch_tokenizer import TorchTokenizer
from tokenizer.train.checkpoint import (
    ADDED,
    CheckpointError,
    load_checkpoint,
    read_log,
    save_checkpoint,
)
from tokenizer.train.data import TrainAudio, crop_batch, engine_weights, n_frames
from tokenizer.train.distill import DistillConfig
from tokenizer.train.hubert import HubertConfig, export_hubert, span_mask, train_hubert
from tokenizer.train.loop import TrainConfig
from tokenizer.train.phones import PhonesConfig
from tokenizer.train.runconfig import RunConfigError, load_run_config
from tokenizer.train.spin import (
    SpinConfig,
    SpinModel,
    export_spin,
    init_codebooks,
    sinkhorn,
    train_spin,
    unit_label_loss,
)

ROOT = Path(__file__).resolve().parent.parent
MFCC = ROOT / "models" / "mfcc-km100"
HUBERT = HubertConfig(steps=4, batch_size=2, max_seconds=1.0, warmup_steps=2, log_every=1)
CLI = [sys.executable, "-m", "speechtok"]


def _train_utts(corpus: Path) -> tuple[Path, list]:
    root, utts = load_corpus(corpus)
    return root, [u for u in utts if u.split == "train"]


@pytest.fixture(scope="module")
def hubert_model(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, utts = _train_utts(tiny_corpus)
    run = tmp_path_factory.mktemp("hubert")
    model, _ = train_hubert(run / "run", root, utts, load_tokenizer(MFCC), HUBERT)
    export_hubert(model, run / "model", "tiny-hubert", {"command": "test"})
    return run / "model"


def test_run_config_yaml_and_sets(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("steps: 50\nlr: 1\npreset: tiny\n")
    config = load_run_config(HubertConfig(), tmp_path / "r.yaml", ["batch_size=3", "lr=2e-4"])
    assert (config.steps, config.lr, config.batch_size) == (50, 2e-4, 3)
    assert isinstance(config.lr, float)
    with pytest.raises(RunConfigError, match="found \\['stepz'\\]"):
        load_run_config(HubertConfig(), None, ["stepz=3"])
    with pytest.raises(RunConfigError, match="steps: expected int, found 'many'"):
        load_run_config(HubertConfig(), None, ["steps=many"])
    with pytest.raises(RunConfigError, match="expected one of"):
        load_run_config(HubertConfig(), None, ["preset=huge"])
    with pytest.raises(RunConfigError, match="KEY=VALUE"):
        load_run_config(HubertConfig(), None, ["steps"])
    with pytest.raises(InvalidInputError, match=r"accum=0 \(at least 1\)"):
        load_run_config(HubertConfig(), None, ["accum=0"])


def test_span_mask_covers_spans() -> None:
    mask = span_mask([100, 30, 5], 100, 0.8, 10, np.random.default_rng(0))
    assert mask.shape == (3, 100)
    assert 0.3 < mask[0].float().mean() < 0.8  # overlapping spans: less than 80 %
    assert not mask[1, 30:].any() and not mask[2].any()  # padding and too-short rows


def test_hubert_resume_equals_one_run(tiny_corpus: Path, tmp_path: Path) -> None:
    root, utts = _train_utts(tiny_corpus)
    targets = load_tokenizer(MFCC)
    dev = load_corpus(tiny_corpus, "dev")
    # Validation every 2 steps on the dev split: logged, and it changes nothing that is learnt.
    checked = replace(HUBERT, valid_every=2, valid_batches=2)
    whole, step = train_hubert(tmp_path / "a", root, utts, targets, checked, valid=dev)
    log = read_log(tmp_path / "a")
    assert step == 4 and [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)
    valid = [r for r in log if "valid_loss" in r]
    assert [r["step"] for r in valid] == [2, 4] and all(np.isfinite(r["valid_loss"]) for r in valid)
    _, step = train_hubert(tmp_path / "b", root, utts, targets, HUBERT, until_step=2)
    assert step == 2
    # The second piece reads its crops from disk in a worker process: the same batches.
    streamed = replace(HUBERT, stream_audio=True, workers=1)
    pieces, step = train_hubert(tmp_path / "b", root, utts, targets, streamed)
    assert step == 4
    a, b = whole.state_dict(), pieces.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(CheckpointError, match="changes in \\['lr'\\]"):
        train_hubert(tmp_path / "b", root, utts, targets, replace(HUBERT, lr=1e-3))


def test_checkpoint_without_an_added_field_resumes_at_its_old_value(tmp_path: Path) -> None:
    """A run saved before a config field existed (``checkpoint.ADDED``) resumes when the run
    asks for the value it had, and not for another."""
    old = {"lr": 1e-3, "steps": 4, "utterances": ["a"]}
    save_checkpoint(tmp_path, {"config": old, "step": 2})
    now = {**old, "perturb_strength": 1.0}
    assert load_checkpoint(tmp_path, now)["step"] == 2  # type: ignore[index]
    with pytest.raises(CheckpointError, match="perturb_strength"):
        load_checkpoint(tmp_path, {**old, "perturb_strength": 0.5})
    with pytest.raises(CheckpointError, match="other_field"):
        load_checkpoint(tmp_path, {**old, "other_field": 1.0})


def test_added_fields_hold_the_defaults_that_kept_old_runs_as_they_were() -> None:
    """A field is added with the default that does what runs did before it; ``ADDED`` (which
    sits below the configs and cannot import them) repeats that default for each config."""
    defaults: dict[str, set[object]] = {}
    for config in (HubertConfig(), SpinConfig(), DistillConfig(), PhonesConfig()):
        for k, v in vars(config).items():
            defaults.setdefault(k, set()).add(v)
    for field, old in ADDED.items():
        assert defaults.get(field) == {old}, field


def test_hubert_iteration_starts_from_init(
    hubert_model: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """--init copies the encoder (one step at lr 0 leaves it as it was), the run remembers it,
    and an encoder of another shape is refused."""
    root, utts = _train_utts(tiny_corpus)
    init = load_tokenizer(hubert_model, "torch")
    frozen = replace(HUBERT, steps=1, lr=0.0, warmup_steps=1)
    model, _ = train_hubert(tmp_path / "a", root, utts, init, frozen, init=init)
    a, b = model.encoder.state_dict(), init.encoder.state_dict()  # type: ignore[attr-defined]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CheckpointError):  # the same run folder without --init
        train_hubert(tmp_path / "a", root, utts, init, frozen)
    with pytest.raises(InvalidInputError, match="this run's encoder shape"):
        train_hubert(tmp_path / "b", root, utts, init, replace(frozen, preset="base"), init=init)


def test_audio_read_from_disk_equals_audio_in_memory(tiny_corpus: Path, tmp_path: Path) -> None:
    import soundfile as sf

    root, utts = _train_utts(tiny_corpus)
    utts = utts[:6]
    # One file at another rate and in stereo: read whole, resampled, then cut.
    x, rate = sf.read(utts[0].audio_path(root), dtype="float32")
    sf.write(tmp_path / "odd.flac", np.stack([x, x], 1)[::2], rate // 2)
    utts[0] = replace(utts[0], audio=str(tmp_path / "odd.flac"))
    memory, disk = TrainAudio(root, utts), TrainAudio(root, utts, in_memory=False)
    assert memory.lengths == disk.lengths
    for step in range(4):
        a, b = (crop_batch(x, 0, step, 4, 16000) for x in (memory, disk))
        assert torch.equal(a.waveforms, b.waveforms) and a.items == b.items
    # A data-parallel process reads only its rows; the others are silence of the same length.
    mine, whole = crop_batch(disk, 0, 0, 4, 16000, rows={1}), crop_batch(memory, 0, 0, 4, 16000)
    assert torch.equal(mine.waveforms[1], whole.waveforms[1]) and not mine.waveforms[0].any()
    assert torch.equal(mine.lengths, whole.lengths)
    # Weighted draws: only utterances with a chance of being drawn come.
    weighted = crop_batch(disk, 0, 1, 8, 16000, weights=np.array([0, 0, 0.5, 0, 0.5, 0]))
    assert set(weighted.items) == {2, 4}


def test_hubert_model_dir(hubert_model: Path) -> None:
    model = load_model_dir(hubert_model)
    assert model.config.kind == "hubert" and model.config.K == 100
    assert "label_embeddings" in model.tensors and "mask_embedding" not in model.tensors


def test_sinkhorn_balances_codewords() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(2000, 10, generator=gen) * 0.2
    scores[:, 0] += 0.5  # every frame prefers codeword 0
    q = sinkhorn(scores, eps=0.02, iters=3)
    assert torch.allclose(q.sum(1), torch.ones(2000), atol=1e-5)
    mass = q.sum(0) / 2000
    assert float(mass.max()) < 0.15 and float(mass.min()) > 0.05  # ~1/10 each
    assert float(torch.softmax(scores / 0.02, -1).sum(0)[0] / 2000) > 0.99
    prior = torch.tensor([0.5] + [0.5 / 9] * 9, dtype=torch.float64)  # a skewed target share
    mass = sinkhorn(scores, eps=0.02, iters=3, prior=prior).sum(0) / 2000
    assert 0.4 < float(mass[0]) < 0.6 and float(mass[1:].max()) < 0.1


@pytest.mark.parametrize("K2", [0, 16])
def test_spin_trains_and_exports(
    hubert_model: Path, tiny_corpus: Path, tmp_path: Path, K2: int
) -> None:
    root, utts = _train_utts(tiny_corpus)
    config = SpinConfig(
        K1=20, K2=K2, steps=3, batch_size=2, warmup_steps=1, log_every=1, views=1, perturb_jobs=1
    )
    base = load_tokenizer(hubert_model)
    assert isinstance(base, TorchTokenizer)
    model, step = train_spin(tmp_path / "run", base, utts[:8], root, config)
    assert step == 3
    log = read_log(tmp_path / "run")
    assert len(log) == 3 and all(np.isfinite(r["loss"]) for r in log)
    assert ("loss_k2" in log[0]) == bool(K2)
    # Frozen layers did not move; the top layer did.
    fresh = load_tokenizer(hubert_model)
    assert isinstance(fresh, TorchTokenizer)
    bottom = "encoder.transformer.layers.0.attention.q_proj.weight"
    top = "encoder.transformer.layers.3.attention.q_proj.weight"
    now, before = model.encoder.state_dict(), fresh.encoder.state_dict()
    assert torch.equal(now[bottom], before[bottom]) and not torch.equal(now[top], before[top])
    export_spin(model, tmp_path / "m", "s", config, {"command": "test"})
    if K2:  # without the frozen-layer cache: views cut and perturbed each step, in a worker
        live = replace(config, cache=False, workers=1, steps=2, valid_every=2, valid_batches=1)
        dev = load_corpus(tiny_corpus, "dev")
        _, step = train_spin(tmp_path / "live", base, utts[:8], root, live, valid=dev)
        assert step == 2 and not (tmp_path / "live" / "cache").exists()
        log = read_log(tmp_path / "live")
        assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)
        assert [r["step"] for r in log if "valid_agree" in r] == [2]
        balanced = replace(config, balance_engines=True, steps=1)
        assert train_spin(tmp_path / "balanced", base, utts[:8], root, balanced)[1] == 1
    tok = load_tokenizer(tmp_path / "m")
    assert (tok.kind, tok.K) == ("dcspin" if K2 else "spin", 20)
    assert getattr(tok, "K2", None) == (K2 or None)


def test_engine_weights_give_every_engine_the_same_share() -> None:
    utts = [Utterance(id=f"e{i}", audio="e.flac", engine="espeak") for i in range(6)]
    utts += [Utterance(id="f", audio="f.flac", engine="flite"), Utterance(id="n", audio="n.flac")]
    w = engine_weights(utts)
    assert w.sum() == pytest.approx(1.0) and w[:6].sum() == pytest.approx(1 / 3)
    assert w[6] == pytest.approx(1 / 3) and w[7] == pytest.approx(1 / 3)
    assert np.allclose(w[:6], w[0])  # one engine's utterances alike
    draws = np.random.default_rng(0).choice(len(utts), 30000, p=w)
    assert abs(np.mean(draws < 6) - 1 / 3) < 0.02
    # Every trainer draws by these with balance_engines, uniformly without.
    assert TrainConfig().draw_weights(utts) is None
    assert np.array_equal(TrainConfig(balance_engines=True).draw_weights(utts), w)


def test_spin_pseudo_labels_are_learnt(
    hubert_model: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """With a teacher (here the base's own units), the top layer learns to predict its units of
    the original audio from both views: the pseudo-label loss falls; the run remembers the
    teacher, and the head is not exported."""
    root, utts = _train_utts(tiny_corpus)
    base = load_tokenizer(hubert_model, "torch")
    assert isinstance(base, TorchTokenizer)
    config = SpinConfig(K1=8, K2=16, steps=40, batch_size=4, lr=2e-3, warmup_steps=1,
                        log_every=1, views=1, perturb_jobs=1, pseudo_weight=1.0)  # fmt: skip
    model, _ = train_spin(tmp_path / "run", base, utts[:8], root, config, pseudo=base)
    assert model.pseudo is not None and model.pseudo.out_features == base.K
    log = [r for r in read_log(tmp_path / "run") if "loss_pseudo" in r]
    assert len(log) == 40 and all(0 <= r["acc_pseudo"] <= 1 for r in log)
    first, last = (np.mean([r["loss_pseudo"] for r in part]) for part in (log[:5], log[-5:]))
    assert last < 0.7 * first, (first, last)
    with pytest.raises(CheckpointError):  # the same run folder without the teacher
        train_spin(tmp_path / "run", base, utts[:8], root, config)
    export_spin(model, tmp_path / "m", "s", config, {"command": "test"})
    assert not any("pseudo" in k for k in load_model_dir(tmp_path / "m").tensors)


def test_spin_phone_labels_are_learnt_and_marked_supervised(
    hubert_model: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """SUPERVISED variant: with ``phone_labels`` the label head predicts the alignments' phones
    (one class per ARPAbet-39 + SIL) and its loss falls; it excludes pseudo-labels; the run
    remembers it; the card of a model trained so says SUPERVISED."""
    root, utts = _train_utts(tiny_corpus)
    base = load_tokenizer(hubert_model, "torch")
    assert isinstance(base, TorchTokenizer)
    config = SpinConfig(K1=8, K2=16, steps=40, batch_size=4, lr=2e-3, warmup_steps=1,
                        log_every=1, views=1, perturb_jobs=1, unit_label_weight=1.0)  # fmt: skip
    with pytest.raises(InvalidInputError, match="one source of per-frame labels"):
        train_spin(tmp_path / "both", base, utts[:8], root, config, pseudo=base, phone_labels=True)
    with pytest.raises(InvalidInputError, match="unit_label_weight 1"):
        train_spin(tmp_path / "none", base, utts[:8], root, config)
    model, _ = train_spin(tmp_path / "run", base, utts[:8], root, config, phone_labels=True)
    assert model.pseudo is not None and model.pseudo.out_features == len(PHONES)
    assert model.unit_labels is not None and model.unit_labels.shape == (8, len(PHONES))
    log = [r for r in read_log(tmp_path / "run") if "loss_pseudo" in r]
    # a tiny base in 40 steps learns the phones' skewed frequencies (uniform labels: ln 40),
    # from its features and through its tokens
    for key in ("loss_pseudo", "loss_unit"):
        first, last = (np.mean([r[key] for r in part]) for part in (log[:5], log[-5:]))
        assert last < first - 0.1 and last < np.log(len(PHONES)) - 0.2, (key, first, last)
    with pytest.raises(CheckpointError):  # the same run folder without the phone labels
        unlabelled = replace(config, unit_label_weight=0.0)
        train_spin(tmp_path / "run", base, utts[:8], root, unlabelled)
    info = {"command": "test", "supervised": "phones of the alignments"}
    export_spin(model, tmp_path / "m", "s", config, info)
    assert "**SUPERVISED" in (tmp_path / "m" / "README.md").read_text()


def test_unit_label_loss_is_the_labels_cross_entropy_through_the_tokens() -> None:
    """Sharp scores on codeword k and counts giving codeword k label k: loss near 0; no counts:
    N ln L whatever the scores; counts giving the wrong labels: large."""
    y = torch.tensor([0, 1, 2, 1])
    scores = torch.eye(3)[y]  # cosine 1 to its own codeword, 0 to the others
    right = 1e5 * torch.eye(3)
    assert float(unit_label_loss(scores, y, right, 0.01)) < 1e-3
    flat = float(unit_label_loss(scores, y, torch.zeros(3, 3), 0.01))
    assert flat == pytest.approx(4 * np.log(3), rel=1e-5)
    assert float(unit_label_loss(scores, y, right.roll(1, dims=1), 0.01)) > 10 * flat


def test_kmeans_codebook_init_fits_the_frames(
    hubert_model: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """``codebook_init: kmeans`` puts the codewords where the frames are: their mean best
    cosine to a codeword beats random codewords'."""
    root, utts = _train_utts(tiny_corpus)
    base = load_tokenizer(hubert_model, "torch")
    assert isinstance(base, TorchTokenizer)
    config = SpinConfig(K1=8, K2=16, codebook_init="kmeans", init_utterances=6)
    torch.manual_seed(0)
    model = SpinModel(base.encoder, config)
    audio = TrainAudio(root, utts[:6])
    wave = torch.from_numpy(audio[0].astype(np.float32) / 32767.0)[None]
    frames = torch.tensor([n_frames(wave.shape[1])])
    with torch.no_grad():
        x = model.top(model.frozen_layers(wave, frames), frames)[0]
        before = [h.scores(x).max(-1).values.mean() for h in model.heads()]
        init_codebooks(model, audio, config)
        after = [h.scores(x) for h in model.heads()]
    assert all(a.max(-1).values.mean() > b + 0.05 for a, b in zip(after, before, strict=True))
    skewed = replace(config, sinkhorn_prior=1.0)  # Sinkhorn's shares: the k-means cluster sizes
    model = SpinModel(base.encoder, skewed)
    init_codebooks(model, audio, skewed)
    for head in model.heads():
        prior = head.get_buffer("prior")
        assert abs(float(prior.sum()) - 1) < 1e-9 and float(prior.max() / prior.min()) > 2
    assert "head.prior" in model.state_dict()  # checkpointed: a resumed run keeps its shares
    with pytest.raises(InvalidInputError, match="codebook_init: kmeans"):
        train_spin(tmp_path, base, utts[:6], root, replace(skewed, codebook_init="random"))


def test_encoder_tokenizers_batch_equals_single(
    hubert_model: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    from tokenizer.audio import decode_audio

    root, utts = _train_utts(tiny_corpus)
    km = tmp_path / "km"
    done = subprocess.run(
        [
            *CLI,
            "train",
            "kmeans",
            "--corpus",
            str(tiny_corpus),
            "--encoder",
            str(hubert_model),
            "--layer",
            "2",
            "--K",
            "8",
            "--out",
            str(km),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    audios = [decode_audio(u.audio_path(root)) for u in utts[:4]]
    audios.append(audios[0][:8000])  # very different lengths in one batch
    for path in (hubert_model, km):
        tok = load_tokenizer(path)
        assert isinstance(tok, TorchTokenizer)
        batched = tok.encode_batch(audios)
        for a, units in zip(audios, batched, strict=True):
            single = tok.tokenize(a)
            assert len(single) == (len(a) - 400) // 320 + 1
            np.testing.assert_array_equal(units, single)
    kmeans = load_model_dir(km)
    assert kmeans.config.kind == "kmeans" and kmeans.config.layer == 2
    # The k-means model keeps only the layers it needs.
    assert not any(k.startswith("encoder.encoder.transformer.layers.2.") for k in kmeans.tensors)


def test_spin_cli_checks_kind_and_k2(hubert_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *CLI,
            "train",
            "spin",
            "--corpus",
            str(tiny_corpus),
            "--base",
            str(MFCC),
            "--run",
            str(tmp_path / "r"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "expected a hubert model as --base" in done.stderr
    done = subprocess.run(
        [
            *CLI,
            "train",
            "spin",
            "--corpus",
            str(tiny_corpus),
            "--base",
            str(hubert_model),
            "--run",
            str(tmp_path / "r"),
            "--out",
            str(tmp_path / "o"),
            "--set",
            "K2=5",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "expected K2 > 0 for dcspin and K2 = 0 for spin" in done.stderr


def test_shipped_models_by_name_and_default() -> None:
    done = subprocess.run([*CLI, "models"], capture_output=True, text=True, check=True)
    models = [json.loads(line) for line in done.stdout.splitlines()]
    tokenizers = [m for m in models if m["kind"] != "vocoder"]
    vocoders = [m for m in models if m["kind"] == "vocoder"]
    assert sum(m["default"] for m in tokenizers) == 1  # one default of each kind
    assert sum(m["default"] for m in vocoders) == (1 if vocoders else 0)
    assert {"name", "kind", "K", "path", "default", "supervised"} <= set(models[0])
    default = next(m for m in tokenizers if m["default"])
    info = json.loads(
        subprocess.run([*CLI, "info"], capture_output=True, text=True, check=True).stdout
    )
    assert info["name"] == default["name"] and info["path"] == default["path"]
    for m in models:
        by_name = json.loads(
            subprocess.run(
                [*CLI, "info", "--model", m["name"]], capture_output=True, text=True, check=True
            ).stdout
        )
        assert by_name["fingerprint"] == load_model_dir(m["path"]).fingerprint
        assert by_name["kind"] == m["kind"] and by_name["K"] == m["K"]
        assert ("supervised" in by_name) == m["supervised"]
    bad = subprocess.run([*CLI, "info", "--model", "no-such-model"], capture_output=True, text=True)
    assert bad.returncode == 2 and "shipped model name" in bad.stderr
