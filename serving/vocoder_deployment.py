"""The vocoder deployment: one ONNX Runtime unit HiFi-GAN per replica, for ``Synthesize``."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from vocoder.runtime import Vocoder


@serve.deployment(
    max_ongoing_requests=64, graceful_shutdown_timeout_s=5.0, graceful_shutdown_wait_loop_s=0.5
)
class VocoderModel:
    def __init__(self, path: str, threads: int) -> None:
        self.vocoder = Vocoder(path, threads=threads)

    def info(self) -> dict[str, Any]:
        v = self.vocoder
        return {
            "name": v.name,
            "fingerprint": v.fingerprint,
            "K": v.K,
            "speakers": v.speakers,
            "sample_rate": v.sample_rate,
        }

    def synthesize(
        self, units: list[int], speaker: int, durations: list[int] | None, dedup: bool
    ) -> np.ndarray:
        """Audio of a request the ingress already checked (``check_request``)."""
        return self.vocoder.synthesize(
            np.asarray(units, dtype=np.int64), speaker, durations, deduplicated=dedup
        )
