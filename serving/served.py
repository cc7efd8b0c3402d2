"""What the servicer serves: each model and vocoder deployment with what it said about itself,
and how a model's streams are run."""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.coalesce import Coalescer, run_steps
from tokenizer.steps import Final, StepJob, StepResult, StepSession, StepSpec
from tokenizer.streaming import StreamSession
from tokenizer.windows import WindowSpec

Session = StreamSession | StepSession


class Model:
    """A served model: its deployment handle, what it told us about itself, and how its
    streams run: by windows sent to the deployment (``windows``), or, for a model with
    incremental steps, by steps run in this process (``steps``, with each stream's first
    state ``initial``)."""

    def __init__(
        self,
        handle: Any,
        info: dict[str, Any],
        windows: Coalescer[np.ndarray, np.ndarray],
        steps: Coalescer[StepJob, StepResult] | None = None,
        initial: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.handle, self.info, self.windows = handle, info, windows
        self.window = WindowSpec(**info["window"])
        self.steps, self.initial = steps, initial
        self.step_spec = StepSpec(**info["steps"]) if info.get("steps") else None

    def session(self, max_samples: int) -> Session:
        """A new stream's session."""
        if self.steps is not None:
            assert self.step_spec is not None and self.initial is not None
            return StepSession(self.step_spec, self.initial, max_samples)
        return StreamSession(self.window, max_samples)

    async def advance(self, session: Session, chunk: np.ndarray | None) -> Final | None:
        """Push ``chunk`` (None: the stream ended) and run what it made ready; the units it made
        final (None if it completed nothing and the stream goes on)."""
        if isinstance(session, StepSession):
            assert self.steps is not None
            if chunk is None:
                session.finish()
            else:
                session.push(chunk)
            await run_steps(session, self.steps)
            done = session.take()
            return done if len(done.units) or chunk is None else None
        jobs = session.push(chunk) if chunk is not None else session.finish()
        if not jobs and chunk is not None:
            return None
        return session.emit(jobs, await self.windows.encode([j.audio for j in jobs]))


class ServedVocoder:
    """A served vocoder: its deployment handle and its name, fingerprint, K and speakers."""

    def __init__(self, handle: Any, info: dict[str, Any]) -> None:
        self.handle, self.info = handle, info
