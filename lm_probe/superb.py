"""SUPERB-style probes of a frozen encoder: a learned softmax-weighted sum of all its layers and
light heads trained on the corpus (Yang et al. 2021, "SUPERB"; s3prl's ``Featurizer``).

- **Phone recognition**: CTC over ARPAbet-39 + blank with a linear head (SUPERB's PR head);
  targets are the aligned phones with SIL dropped (SUPERB's LibriSpeech phones are g2p output,
  silence-free). Phone error rate = edit distance / reference phones, greedy decoding.
- **ASR**: character CTC (a-z, apostrophe, space + blank) on the corpus text with a 1-layer
  BiLSTM head; WER (and CER) with greedy decoding, no language model.
- **Speaker identification**: mean pooling over an utterance's frames, then a linear classifier
  over the voices. The ``parallel`` split is split by sentence (each voice's sentences ranked
  by one seeded order, alternately to train and test), so every voice is on both sides and,
  there, test sentences are the same for every voice; without a ``parallel`` split the heads'
  training utterances are split the same way.

Layers: layer 0 is the transformer's input (the projected conv features plus the positional
conv: Hugging Face's ``hidden_states[0]``), then every transformer layer, the last through the
final LayerNorm of pre-LN models (the model's output). Each layer is normalised per frame (layer
norm without affine, s3prl's ``normalize``) so that the weights compare layers, not their
scales. The weights start equal (zero logits, softmax). Every head is also trained on the last
layer alone, so the weighted sum's gain shows.

The encoder runs once per utterance; all its layers are kept in memory as float16
(``layers x frames x dim x 2`` bytes per utterance: 0.4 MB for 3 s of a 4 x 256 tiny model,
10 MB for 10 s of HuBERT Base). Heads train on those cached frames for a fixed number of Adam
steps in a seeded batch order, under ``torch.manual_seed(seed)`` (the caller's RNG state is
restored), in one torch thread: one seed -> the same numbers, whatever the machine's cores.
"""

from __future__ import annotations

import contextlib
import re
import string
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lm_probe.cache import OFF, ArrayCache, audio_sha256
from lm_probe.speaker import edit_distance
from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import Utterance
from tokenizer.corpus.phones import ARPABET39
from tokenizer.encoder.model import Encoder
from tokenizer.kinds import load_tokenizer
from tokenizer.protocol import Tokenizer
from tokenizer.windows import Windowed

CHARS = " '" + string.ascii_lowercase
"""ASR targets: index + 1 (0 is the CTC blank)."""
PHONES = tuple(ARPABET39)
"""Phone targets: index + 1 (0 is the CTC blank); SIL is not a target."""


@dataclass(frozen=True, kw_only=True)
class SuperbConfig:
    utterances: int = 300
    """Utterances the phone and ASR heads train on: a seeded draw from the training split
    (augmented copies left out)."""
    steps: int = 600
    """Adam steps per CTC head (phones, ASR), ``batch_size`` utterances each."""
    batch_size: int = 8
    lr: float = 1e-2
    """Adam learning rate of the linear heads (phones, speaker) and their layer weights
    (SUPERB's phone recognition rate)."""
    asr_lr: float = 2e-3
    """Adam learning rate of the ASR head (BiLSTM) and its layer weights."""
    asr_hidden: int = 128
    """Units per direction of the ASR head's BiLSTM."""
    speaker_steps: int = 300
    """Full-batch Adam steps of the speaker classifier."""
    seed: int = 0


Progress = Callable[[int], None]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside (restored after): the small heads gain nothing from
    more, threads that spin-wait on a busy machine slow them many times over, and the numbers
    then do not depend on the machine's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# Targets and data splits.


def phone_targets(u: Utterance) -> list[int]:
    """The utterance's aligned ARPAbet-39 phones as CTC labels 1..39 (SIL, and any label outside
    ARPAbet-39 that a user's alignment holds, dropped)."""
    return [PHONES.index(s.phone) + 1 for s in u.alignment or [] if s.phone in PHONES]


def normalise_text(text: str) -> str:
    """Lower case; hyphens and other separators become spaces; only a-z, apostrophe and single
    spaces are kept."""
    text = re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " "))
    return " ".join(text.split())


def char_targets(text: str) -> list[int]:
    return [CHARS.index(c) + 1 for c in normalise_text(text)]


def training_draw(utts: Sequence[Utterance], n: int, seed: int) -> list[Utterance]:
    """``n`` utterances drawn with ``seed`` (sorted by id first; augmented copies left out)."""
    pool = sorted((u for u in utts if "augment" not in u.extra), key=lambda u: u.id)
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[i] for i in sorted(order[:n])]


def speaker_split(utts: Sequence[Utterance], seed: int) -> tuple[list[Utterance], list[Utterance]]:
    """(train, test) holding every voice with two sentences or more: each voice's sentences in
    one seeded order over all sentences, alternately to train and test."""
    sentences = sorted({u.sentence_key for u in utts})
    rank = {s: i for i, s in enumerate(np.random.default_rng(seed).permutation(sentences))}
    by_voice: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        by_voice[u.speaker or ""].append(u)
    train, test = [], []
    for _, us in sorted(by_voice.items()):
        keys = sorted({u.sentence_key for u in us}, key=rank.__getitem__)
        if len(keys) >= 2:
            held = set(keys[1::2])
            train += [u for u in us if u.sentence_key not in held]
            test += [u for u in us if u.sentence_key in held]
    return train, test


# Frozen features.


def frozen_encoder(tok: Tokenizer | None) -> Encoder | None:
    """The torch encoder of an encoder model (loaded from its directory when the tokenizer runs
    in ONNX Runtime); None for acoustic-feature k-means and precomputed units."""
    path = getattr(tok, "path", None)
    if not isinstance(tok, Windowed) or path is None:
        return None
    from tokenizer.torch_tokenizer import TorchTokenizer

    enc = tok if isinstance(tok, TorchTokenizer) else load_tokenizer(path, "torch")
    assert isinstance(enc, TorchTokenizer)
    return enc.encoder.eval()


@one_thread()
@torch.inference_mode()
def layer_stack(encoder: Encoder, audio: np.ndarray) -> Tensor:
    """Every layer of one utterance, ``[layers + 1, frames, dim]`` float16, each frame layer-
    normalised: layer 0 the transformer's input, the last through the final norm."""
    x, frames = encoder.embed(torch.from_numpy(np.asarray(audio, dtype=np.float32))[None])
    layers = [x, *encoder.run_layers(x, frames, 0, encoder.config.num_layers)]
    layers[-1] = encoder.final_norm(layers[-1])
    stack = torch.cat(layers)
    return F.layer_norm(stack, stack.shape[-1:]).to(torch.float16)


def pad(stacks: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """``[B, layers, frames, dim]`` float32 zero-padded in time, and frames ``[B]``."""
    lengths = torch.tensor([s.shape[1] for s in stacks])
    x = torch.zeros(len(stacks), stacks[0].shape[0], int(lengths.max()), stacks[0].shape[2])
    for i, s in enumerate(stacks):
        x[i, :, : s.shape[1]] = s.float()
    return x, lengths


# Models.


class LayerMix(nn.Module):
    """``softmax(logits)``-weighted sum over the layer axis (dim 1), the logits starting at 0
    (equal weights); with ``layer`` set, that one layer and nothing learned."""

    def __init__(self, n_layers: int, layer: int | None = None) -> None:
        super().__init__()
        self.n_layers, self.layer = n_layers, layer
        self.logits = nn.Parameter(torch.zeros(n_layers), requires_grad=layer is None)

    def weights(self) -> Tensor:
        if self.layer is not None:
            return F.one_hot(torch.tensor(self.layer), self.n_layers).float()
        return self.logits.softmax(0)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, layers, ...]`` -> ``[B, ...]``."""
        if self.layer is not None:
            return x[:, self.layer]
        w = self.weights().view(1, -1, *([1] * (x.ndim - 2)))
        return (x * w).sum(1)


def reverse_valid(x: Tensor, lengths: Tensor) -> Tensor:
    """Each sequence of ``x [B, F, ...]`` reversed in its first ``lengths`` frames, padding
    left where it is (its own inverse)."""
    position = torch.arange(x.shape[1])[None, :]
    back = lengths[:, None] - 1 - position
    index = torch.where(back >= 0, back, position)
    return x.gather(1, index.view(*index.shape, *[1] * (x.ndim - 2)).expand_as(x))


class CtcHead(nn.Module):
    """Frames ``[B, F, D]`` -> logits ``[B, F, vocab]``: a linear layer, after a 1-layer BiLSTM
    of ``hidden`` units per direction when ``hidden`` > 0. The backward LSTM runs forward over
    each utterance reversed in place, so padding never reaches valid frames (as packing would
    do, at a fraction of packing's cost on CPU)."""

    def __init__(self, dim: int, vocab: int, hidden: int = 0) -> None:
        super().__init__()
        self.hidden = hidden
        if hidden:
            self.forward_lstm = nn.LSTM(dim, hidden, batch_first=True)
            self.backward_lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.out = nn.Linear(2 * hidden if hidden else dim, vocab)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if self.hidden:
            back, _ = self.backward_lstm(reverse_valid(x, lengths))
            x = torch.cat([self.forward_lstm(x)[0], reverse_valid(back, lengths)], -1)
        return self.out(x)


@dataclass
class Probe:
    """A trained layer mix and head."""

    mix: LayerMix
    head: nn.Module

    def layer_weights(self) -> list[float]:
        return [round(float(w), 4) for w in self.mix.weights().detach()]


@one_thread()
def _fit(probe: Probe, loss: Callable[[int], Tensor], steps: int, lr: float) -> None:
    params = [p for p in (*probe.mix.parameters(), *probe.head.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    for step in range(steps):
        opt.zero_grad()
        loss(step).backward()
        opt.step()


def train_ctc(
    stacks: Sequence[Tensor],
    targets: Sequence[Sequence[int]],
    vocab: int,
    layer: int | None,
    config: SuperbConfig,
    hidden: int = 0,
) -> Probe:
    """A layer mix (or ``layer`` alone) and a CTC head over ``vocab`` labels (0 = blank) on
    per-utterance layer stacks ``[layers, frames, dim]``: linear at ``config.lr``, or with a
    BiLSTM of ``hidden`` units at ``config.asr_lr``."""
    n_layers, _, dim = stacks[0].shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        probe = Probe(LayerMix(n_layers, layer), CtcHead(dim, vocab, hidden))
    rng = np.random.default_rng(config.seed)
    order = np.concatenate(
        [
            rng.permutation(len(stacks))
            for _ in range(config.steps * config.batch_size // len(stacks) + 1)
        ]
    )

    def loss(step: int) -> Tensor:
        idx = order[step * config.batch_size : (step + 1) * config.batch_size]
        x, lengths = pad([stacks[i] for i in idx])
        logp = probe.head(probe.mix(x), lengths).log_softmax(-1)
        ys = [torch.tensor(targets[i], dtype=torch.long) for i in idx]
        return F.ctc_loss(
            logp.transpose(0, 1),
            torch.cat(ys),
            lengths,
            torch.tensor([len(y) for y in ys]),
            zero_infinity=True,
        )

    probe.head.train()
    _fit(probe, loss, config.steps, config.asr_lr if hidden else config.lr)
    probe.head.eval()
    return probe


@one_thread()
@torch.inference_mode()
def ctc_decode(probe: Probe, stacks: Sequence[Tensor], batch: int = 16) -> list[list[int]]:
    """Greedy CTC decoding: the best label per frame, repeats merged, blanks dropped."""
    out = []
    for start in range(0, len(stacks), batch):
        x, lengths = pad(stacks[start : start + batch])
        best = probe.head(probe.mix(x), lengths).argmax(-1)
        for row, n in zip(best, lengths, strict=True):
            ids = torch.unique_consecutive(row[: int(n)]).tolist()
            out.append([i for i in ids if i != 0])
    return out


def error_rate(hyps: Sequence[Sequence[Any]], refs: Sequence[Sequence[Any]]) -> float:
    """Total edit distance over total reference length (PER, WER, CER)."""
    codes: dict[Any, int] = {}
    errors = length = 0
    for h, r in zip(hyps, refs, strict=True):
        hc = [codes.setdefault(t, len(codes)) for t in h]
        rc = [codes.setdefault(t, len(codes)) for t in r]
        errors += edit_distance(hc, rc)
        length += len(r)
    return errors / max(length, 1)


def train_speaker(
    pooled: Tensor, labels: Tensor, classes: int, layer: int | None, config: SuperbConfig
) -> Probe:
    """A layer mix and a linear classifier on utterance means ``pooled [N, layers, dim]``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        probe = Probe(LayerMix(pooled.shape[1], layer), nn.Linear(pooled.shape[2], classes))
    _fit(
        probe,
        lambda _: F.cross_entropy(probe.head(probe.mix(pooled)), labels),
        config.speaker_steps,
        config.lr,
    )
    return probe


@torch.inference_mode()
def speaker_accuracy(probe: Probe, pooled: Tensor, labels: Tensor) -> float:
    return float((probe.head(probe.mix(pooled)).argmax(-1) == labels).float().mean())


# The probe.


def _ctc_task(
    name: str,
    draw: Sequence[Utterance],
    tests: Sequence[Utterance],
    stacks: dict[str, Tensor],
    config: SuperbConfig,
) -> dict[str, Any]:
    """Both variants (weighted sum, last layer) of one CTC task (``phones`` or ``asr``):
    error rates on ``tests`` and the learned weights."""
    asr = name == "asr"
    targets: Callable[[Utterance], list[int]] = (
        (lambda u: char_targets(u.text or "")) if asr else phone_targets
    )
    train_x, test_x = [stacks[u.id] for u in draw], [stacks[u.id] for u in tests]
    refs = [targets(u) for u in tests]
    out: dict[str, Any] = {}
    for variant, layer in (("weighted", None), ("last", train_x[0].shape[0] - 1)):
        probe = train_ctc(
            train_x,
            [targets(u) for u in draw],
            len(CHARS if asr else PHONES) + 1,
            layer,
            config,
            config.asr_hidden if asr else 0,
        )
        hyps = ctc_decode(probe, test_x)
        row: dict[str, Any] = {"layer_weights": probe.layer_weights()}
        if asr:
            words = [["".join(CHARS[i - 1] for i in s).split() for s in x] for x in (hyps, refs)]
            row["wer"], row["cer"] = error_rate(*words), error_rate(hyps, refs)
        else:
            row["per"] = error_rate(hyps, refs)
        out[variant] = row
    return out


def _speaker_task(
    train: Sequence[tuple[str, Tensor]], test: Sequence[tuple[str, Tensor]], config: SuperbConfig
) -> dict[str, Any]:
    """Both variants of speaker ID on (voice, utterance-mean ``[layers, dim]``) pairs."""
    voices = sorted({v for v, _ in train})
    x_tr, x_te = (torch.stack([p for _, p in part]) for part in (train, test))
    y_tr, y_te = (torch.tensor([voices.index(v) for v, _ in part]) for part in (train, test))
    out: dict[str, Any] = {"voices": len(voices), "chance": 1.0 / len(voices)}
    for variant, layer in (("weighted", None), ("last", x_tr.shape[1] - 1)):
        probe = train_speaker(x_tr, y_tr, len(voices), layer, config)
        out[variant] = {
            "accuracy": speaker_accuracy(probe, x_te, y_te),
            "layer_weights": probe.layer_weights(),
        }
    return out


def probe_superb(
    tok: Tokenizer | None,
    root: Path,
    train_pool: Sequence[Utterance],
    test: Sequence[Utterance],
    parallel: Sequence[Utterance],
    config: SuperbConfig,
    on_progress: Progress | None = None,
    cache: ArrayCache = OFF,
) -> tuple[dict[str, Any] | None, list[str]]:
    """SUPERB rows of one tokenizer: heads trained on a draw from ``train_pool``, phones and
    ASR scored on ``test``, speaker ID on ``parallel`` (or on the draw when there is none);
    notes for the report. ``on_progress(1)`` after each utterance's features (layer stacks are
    cached per fingerprint and audio sha256). None for tokenizers without an encoder."""
    encoder = frozen_encoder(tok)
    if encoder is None:
        name = getattr(tok, "name", "precomputed units")
        return None, [f"SUPERB: skipped for {name}, not an encoder model"]
    assert tok is not None
    key = ("layer stacks", tok.fingerprint)

    def stack_of(audio: np.ndarray) -> Tensor:
        found = cache.get((*key, audio_sha256(audio)), lambda: layer_stack(encoder, audio).numpy())
        return torch.from_numpy(found)

    with one_thread():
        return _probe(stack_of, root, train_pool, test, parallel, config, on_progress)


def _features(
    stack_of: Callable[[np.ndarray], Tensor],
    root: Path,
    framed: Sequence[Utterance],
    pooled: Sequence[Utterance],
    on_progress: Progress | None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Layer stacks of the ``framed`` utterances (the CTC heads'), and utterance means
    ``[layers, dim]`` of the ``pooled`` ones (the speaker head's): the encoder runs once per
    utterance, and only the stacks the CTC heads need stay in memory."""
    stacks: dict[str, Tensor] = {}
    means: dict[str, Tensor] = {}
    keep = {u.id for u in framed}
    for u in (*framed, *pooled):
        if u.id in means:
            continue
        stack = stack_of(decode_audio(u.audio_path(root)))
        means[u.id] = stack.float().mean(1)
        if u.id in keep:
            stacks[u.id] = stack
        if on_progress:
            on_progress(1)
    return stacks, means


def _probe(
    stack_of: Callable[[np.ndarray], Tensor],
    root: Path,
    train_pool: Sequence[Utterance],
    test: Sequence[Utterance],
    parallel: Sequence[Utterance],
    config: SuperbConfig,
    on_progress: Progress | None,
) -> tuple[dict[str, Any] | None, list[str]]:
    labelled = [u for u in train_pool if u.text and u.alignment]
    draw = training_draw(labelled, config.utterances, config.seed)
    tests = [u for u in test if u.text and u.alignment]
    if not draw or not tests:
        found = f"{len(draw)} training and {len(tests)} test utterances"
        return None, [f"SUPERB: skipped, expected utterances with text and alignment, {found}"]
    start = time.perf_counter()
    from_parallel = len({u.speaker for u in parallel}) >= 2
    spk_train, spk_test = speaker_split(parallel if from_parallel else draw, config.seed)
    framed, pooled_utts = [*draw, *tests], [*spk_train, *spk_test]
    stacks, pooled = _features(stack_of, root, framed, pooled_utts, on_progress)
    out: dict[str, Any] = {
        "layers": stacks[draw[0].id].shape[0],
        "train_utterances": len(draw),
        "test_utterances": len(tests),
        "steps": config.steps,
        "phones": _ctc_task("phones", draw, tests, stacks, config),
        "asr": _ctc_task("asr", draw, tests, stacks, config),
        "speaker": None,
    }
    notes = []
    if spk_train:
        out["speaker"] = {
            "data": "parallel" if from_parallel else "train",
            "train_utterances": len(spk_train),
            "test_utterances": len(spk_test),
            **_speaker_task(
                [(u.speaker or "", pooled[u.id]) for u in spk_train],
                [(u.speaker or "", pooled[u.id]) for u in spk_test],
                config,
            ),
        }
    else:
        notes.append("SUPERB speaker ID: skipped, no voice with two sentences")
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out, notes
