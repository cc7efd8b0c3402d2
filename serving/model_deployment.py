"""The model deployment: one ONNX Runtime tokenizer per replica. Windows from every unary
request and every stream go through one ``@serve.batch`` method, so a model call carries
windows of many clients; each window is a stateless call, which is why streamed units equal
offline units whatever else shares the batch. The windows are cut and joined by the same
functions as offline tokenization (``tokenizer.windows``). A model with incremental steps
tokenizes unary requests by the steps a stream of the same audio runs (``tokenizer.steps``),
the steps of concurrent requests sharing calls; its streams run in the ingress."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import numpy as np
from ray import serve

from serving.coalesce import local_steps, run_steps
from tokenizer.kinds import load_served
from tokenizer.steps import StepSession
from tokenizer.windows import cut, join_units


@serve.deployment(
    max_ongoing_requests=4096, graceful_shutdown_timeout_s=5.0, graceful_shutdown_wait_loop_s=0.5
)
class TokenizerModel:
    def __init__(
        self, model: str, threads: int, max_batch: int, batch_wait_ms: float, spinning: bool
    ) -> None:
        self.tok = load_served(model, threads=threads, spinning=spinning)
        assert self.tok.window is not None  # load_served checks
        self.window = self.tok.window
        self.encode_window.set_max_batch_size(max_batch)  # type: ignore[attr-defined]
        self.encode_window.set_batch_wait_timeout_s(batch_wait_ms / 1000)  # type: ignore[attr-defined]
        self.steps = local_steps(self.tok, max_batch) if self.tok.steps is not None else None

    def info(self) -> dict[str, Any]:
        return {
            "name": self.tok.name,
            "kind": self.tok.kind,
            "K": self.tok.K,
            "K2": self.tok.K2 or 0,
            "frame_rate": self.tok.frame_rate,
            "window": self.window.to_dict(),
            "steps": None if self.tok.steps is None else asdict(self.tok.steps),
            "fingerprint": self.tok.fingerprint,
            "path": str(self.tok.path),
        }

    @serve.batch  # sizes set from the config in __init__
    async def encode_window(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """Units of window-sized audio, many windows per ONNX Runtime call."""
        return self.tok.encode_windows(audios)

    async def encode_windows(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        return list(await asyncio.gather(*(self.encode_window(a) for a in audios)))

    async def tokenize(self, audio: np.ndarray, full_utterance: bool) -> np.ndarray:
        if full_utterance:  # one long call: off the event loop that batches everyone's windows
            return await asyncio.to_thread(self.tok.tokenize, audio, True)
        if self.steps is not None:
            assert self.tok.steps is not None
            session = StepSession(self.tok.steps, self.tok.initial_state())
            session.push(audio)
            session.finish()
            await run_steps(session, self.steps)
            return session.take().units
        plan, pieces = cut(audio, self.window)
        return join_units(plan, await self.encode_windows(pieces))
