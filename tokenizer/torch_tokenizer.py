"""The torch tokenizer: an encoder tokenizer's model directory run in torch (training, export,
parity checks, and models not yet exported).

One class serves every encoder kind (``hubert``, ``spin``, ``dcspin``, ``kmeans`` on a layer):
audio -> encoder layer -> the kind's quantizer (``tokenizer.quantizer``) -> units.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from tokenizer.encoder.model import Encoder
from tokenizer.errors import AudioError
from tokenizer.model_dir import ModelDir, ModelError
from tokenizer.quantizer import Quantizer, quantizer_for
from tokenizer.step_graph import StepGraph
from tokenizer.steps import State, StepJob, StepResult, stack, unstack
from tokenizer.windows import Windowed

ENCODER_PREFIX = "encoder."
"""Encoder tensors are stored under this prefix; the rest belong to the quantizer."""


class TorchTokenizer(Windowed):
    """Audio -> encoder layer -> quantizer -> unit ids. Deterministic; batching does not change
    the units (valid lengths flow through the encoder)."""

    def __init__(self, model: ModelDir) -> None:
        c = model.config
        if c.encoder is None:
            raise ModelError(
                f"expected an encoder model in {model.path}, found {c.kind} on acoustic features"
            )
        self.name, self.kind, self.K2 = c.name, c.kind, c.K2
        self.layer = c.layer
        self.frame_rate: float = c.frame_rate or 0.0
        self.window = c.window
        self.steps = c.steps
        self.fingerprint = model.fingerprint
        self.path = model.path
        self.encoder = Encoder(c.encoder).eval()
        stored = {k: v for k, v in model.tensors.items() if k.startswith(ENCODER_PREFIX)}
        self.weights_dtype = next(iter(stored.values())).dtype.type if stored else np.float16
        """How the encoder weights are stored (float16, or float32 for imported checkpoints)."""
        state = {
            k[len(ENCODER_PREFIX) :]: torch.from_numpy(v.astype(np.float32))
            for k, v in stored.items()
        }
        try:
            self.encoder.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ModelError(
                f"expected encoder weights matching the config in {model.path}: {e}"
            ) from e
        self.K: int = c.K
        self._quantizer = quantizer_for(c.kind, model.tensors).eval() if c.K else None

    @property
    def quantizer(self) -> Quantizer:
        """The quantizer; an encoder imported without a head has none (K = 0)."""
        if self._quantizer is None:
            raise ModelError(
                f"expected a model with units, found {self.name} ({self.path}): an encoder "
                f"without a quantizer (K = 0); give it one with `speechtok train kmeans "
                f"--encoder {self.path}` or `speechtok import ... --kmeans`"
            )
        return self._quantizer

    def scores(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Quantizer scores ``[B, F, K]`` and valid frames ``[B]``."""
        x, frames = self.encoder(waveforms, lengths, layer=self.layer)
        return self.quantizer.scores(x), frames

    @cached_property
    def step_module(self) -> StepGraph:
        """The incremental step in torch (models with ``steps``)."""
        assert self.steps is not None
        return StepGraph(self.encoder, self.quantizer, self.layer, self.steps).eval()

    def initial_state(self) -> State:
        return self.step_module.initial_state()

    @torch.inference_mode()
    def run_steps(self, jobs: list[StepJob]) -> list[StepResult]:
        if not jobs:
            return []
        feeds = stack(jobs)
        out = self.step_module(*(torch.from_numpy(v) for v in feeds.values()))
        names = self.step_module.state_shapes()
        return unstack(out[0].numpy(), {n: v.numpy() for n, v in zip(names, out[1:], strict=True)})

    @torch.inference_mode()
    def layer_features(self, audio: np.ndarray, layer: int | None) -> np.ndarray:
        """Encoder output ``[F, D]`` of one utterance at ``layer`` (None: the final output)."""
        x, _ = self.encoder(
            torch.from_numpy(np.asarray(audio, dtype=np.float32))[None], layer=layer
        )
        return x[0].numpy()

    @torch.inference_mode()
    def encode_batch(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Full-utterance units of several utterances in one padded forward pass (the same as
        one at a time)."""
        if not audios:
            return []
        lengths = torch.tensor([len(a) for a in audios])
        waves = torch.zeros(len(audios), int(lengths.max()))
        for i, a in enumerate(audios):
            if a.ndim != 1:
                raise AudioError(f"expected mono audio of shape [samples], found {list(a.shape)}")
            waves[i, : len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
        scores, frames = self.scores(waves, lengths)
        ids = scores.argmax(-1)
        return [ids[i, : int(frames[i])].numpy().astype(np.int32) for i in range(len(audios))]
