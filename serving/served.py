"""What the servicer serves: each model and vocoder deployment with what it said about itself."""

from __future__ import annotations

from typing import Any

from serving.coalesce import WindowCoalescer
from tokenizer.windows import WindowSpec


class Model:
    """A served model: its deployment handle, what it told us about itself, and the coalescer
    its stream windows go through."""

    def __init__(self, handle: Any, info: dict[str, Any], windows: WindowCoalescer) -> None:
        self.handle, self.info, self.windows = handle, info, windows
        self.window = WindowSpec(**info["window"])


class ServedVocoder:
    """A served vocoder: its deployment handle and its name, fingerprint, K and speakers."""

    def __init__(self, handle: Any, info: dict[str, Any]) -> None:
        self.handle, self.info = handle, info
