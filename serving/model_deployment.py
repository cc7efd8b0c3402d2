"""The model deployment: one ONNX Runtime tokenizer per replica. Windows from every unary
request and every stream go through one ``@serve.batch`` method, so a model call carries
windows of many clients; each window is a stateless call, which is why streamed units equal
offline units whatever else shares the batch."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve

from tokenizer.model_dir import load_model_dir
from tokenizer.registry import resolve
from tokenizer.runtime import OnnxTokenizer
from tokenizer.windows import join_units


@serve.deployment(
    max_ongoing_requests=4096, graceful_shutdown_timeout_s=5.0, graceful_shutdown_wait_loop_s=0.5
)
class TokenizerModel:
    def __init__(
        self, model: str, threads: int, max_batch: int, batch_wait_ms: float, spinning: bool
    ) -> None:
        path = resolve(model)
        self.tok = OnnxTokenizer(load_model_dir(path), threads=threads, spinning=spinning)
        if self.tok.window is None:
            raise ValueError(f"expected a model with a streaming window, found none in {path}")
        self.window = self.tok.window
        self.encode_window.set_max_batch_size(max_batch)  # type: ignore[attr-defined]
        self.encode_window.set_batch_wait_timeout_s(batch_wait_ms / 1000)  # type: ignore[attr-defined]

    def info(self) -> dict[str, Any]:
        return {
            "name": self.tok.name,
            "kind": self.tok.kind,
            "K": self.tok.K,
            "K2": self.tok.K2 or 0,
            "frame_rate": self.tok.frame_rate,
            "window": self.window.to_dict(),
            "fingerprint": self.tok.fingerprint,
        }

    @serve.batch  # sizes set from the config in __init__
    async def encode_window(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Units of window-sized audio, many windows per ONNX Runtime call."""
        return self.tok.encode_windows(audios)

    async def encode_windows(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        return list(await asyncio.gather(*(self.encode_window(a) for a in audios)))

    async def tokenize(self, audio: np.ndarray, full_utterance: bool) -> np.ndarray:
        if len(audio) < 400:  # shorter than one frame: no units
            return np.zeros(0, np.int32)
        if full_utterance:  # one long call: off the event loop that batches everyone's windows
            return (await asyncio.to_thread(self.tok.encode_batch, [audio]))[0]
        windows = self.window.plan(len(audio))
        units = await self.encode_windows([audio[w.start : w.end] for w in windows])
        return join_units(windows, units)
