"""ONNX Runtime backend: a model directory's exported graphs in an inference session.

The serving path's tokenizer: numpy + onnxruntime only (importing this module does not import
torch). Providers are explicit: CUDA EP when onnxruntime-gpu sees a GPU (inputs and outputs then
go through IO binding), CPU EP otherwise.
"""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

from tokenizer.errors import AudioError
from tokenizer.model_dir import MODEL_GRAPH, STEP_GRAPH, WINDOW_GRAPH, ModelDir, ModelError
from tokenizer.quantize import INT8_FLAGS, int8_instructions
from tokenizer.steps import State, StepJob, StepResult, stack, unstack
from tokenizer.windows import Windowed

log = logging.getLogger(__name__)


def default_providers() -> list[str]:
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxTokenizer(Windowed):
    """Same units as the ``TorchTokenizer`` of the same directory, from ONNX Runtime."""

    def __init__(
        self,
        model: ModelDir,
        providers: list[str] | None = None,
        threads: int | None = None,
        spinning: bool = True,
    ) -> None:
        """``spinning=False`` lets ONNX Runtime's idle threads sleep instead of busy-waiting for
        the next call: slower to wake, but they leave the cores to other processes (a server
        sharing its cores with its ingress)."""
        c = model.config
        if not c.exported:
            raise ModelError(
                f"expected an exported model ({MODEL_GRAPH}) in {model.path}, "
                f"found none: run speechtok export {model.path}"
            )
        self.name, self.kind, self.K, self.K2 = c.name, c.kind, c.K, c.K2
        self.frame_rate: float = c.frame_rate or 0.0
        self.fingerprint = model.fingerprint
        self.path = model.path
        self.window = c.window
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.providers = providers or default_providers()
        on_cpu = self.providers[0] == "CPUExecutionProvider"
        if c.precision == "int8" and on_cpu and not int8_instructions():
            log.warning(
                "%s has int8 graphs, but this CPU has none of %s: they likely run slower "
                "than the float32 model here",
                self.name,
                ", ".join(INT8_FLAGS),
            )
        self.session = ort.InferenceSession(
            str(model.path / MODEL_GRAPH), options, providers=self.providers
        )
        self.window_session = (
            ort.InferenceSession(str(model.path / WINDOW_GRAPH), options, providers=self.providers)
            if WINDOW_GRAPH in c.graphs
            else None
        )
        self.steps = c.steps if STEP_GRAPH in c.graphs else None
        self.step_session = (
            ort.InferenceSession(str(model.path / STEP_GRAPH), options, providers=self.providers)
            if self.steps is not None
            else None
        )
        # the state tensors: every input after audio, start, begin and end, with their shapes
        self._states = (
            {i.name: tuple(i.shape[1:]) for i in self.step_session.get_inputs()[4:]}
            if self.step_session is not None
            else {}
        )
        self.cuda = self.session.get_providers()[0] == "CUDAExecutionProvider"

    def encode_batch(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Full-utterance units of several utterances in one padded call."""
        return self._run(self.session, audios, None)

    def encode_windows(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        if self.window_session is None or self.window is None:
            return self.encode_batch(audios)
        return self._run(self.window_session, audios, self.window.window_samples)

    def initial_state(self) -> State:
        assert self.step_session is not None
        return {name: np.zeros(shape, np.float32) for name, shape in self._states.items()}

    def run_steps(self, jobs: list[StepJob]) -> list[StepResult]:
        assert self.step_session is not None
        if not jobs:
            return []
        out = self.step_session.run(["units", *(f"next_{n}" for n in self._states)], stack(jobs))
        return unstack(out[0], dict(zip(self._states, out[1:], strict=True)))

    def scores(self, audio: np.ndarray) -> np.ndarray:
        """Full-utterance quantizer scores ``[F, K]`` (cosine similarities or negative squared
        distances) of one utterance."""
        waves, lengths = _pad([audio], None)
        out = self.session.run(["scores", "frames"], {"waveforms": waves, "lengths": lengths})
        return np.asarray(out[0][0, : int(out[1][0])])

    def _run(
        self, session: ort.InferenceSession, audios: list[np.ndarray], width: int | None
    ) -> list[np.ndarray]:
        if not audios:
            return []
        waves, lengths = _pad(audios, width)
        feeds = {"waveforms": waves, "lengths": lengths}
        if self.cuda:
            binding = session.io_binding()
            for name, value in feeds.items():
                binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda"))
            binding.bind_output("units", "cpu")
            binding.bind_output("frames", "cpu")
            session.run_with_iobinding(binding)
            units, frames = (v.numpy() for v in binding.get_outputs())
        else:
            units, frames = session.run(["units", "frames"], feeds)
        return [units[i, : int(frames[i])].astype(np.int32) for i in range(len(audios))]


def _pad(audios: list[np.ndarray], width: int | None) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(a) for a in audios], dtype=np.int64)
    if width is not None and int(lengths.max()) > width:
        raise AudioError(f"expected windows of at most {width} samples, found {int(lengths.max())}")
    waves = np.zeros((len(audios), width or int(lengths.max())), dtype=np.float32)
    for i, a in enumerate(audios):
        if a.ndim != 1:
            raise AudioError(f"expected mono audio of shape [samples], found {list(a.shape)}")
        waves[i, : len(a)] = a
    return waves, lengths
