"""flite synthesis with phone timings from ``flite -psdur`` (one ``phone:end_seconds`` per
segment, festival "radio" phone names)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from tokenizer.audio import SAMPLE_RATE, to_mono_16k
from tokenizer.corpus.alignment import Segment, tidy_segments
from tokenizer.corpus.phones import radio_to_arpa
from tokenizer.corpus.voices import Voice


def _command(voice: Voice, text: str, wav: Path) -> list[str]:
    cmd = ["flite", "-voice", voice.name, "-psdur"]
    if voice.pitch is not None:
        cmd += ["--setf", f"int_f0_target_mean={voice.pitch}"]
    if voice.rate != 1.0:
        cmd += ["--setf", f"duration_stretch={1.0 / voice.rate:.4f}"]
    return [*cmd, "-t", text, "-o", str(wav)]


def synthesize(voice: Voice, texts: Sequence[str]) -> list[tuple[np.ndarray, list[Segment]]]:
    """Synthesize each text; returns 16 kHz float32 audio and ARPAbet segments per text."""
    out = []
    with tempfile.TemporaryDirectory(prefix="flite") as tmp:
        wav = Path(tmp) / "out.wav"
        for text in texts:
            printed = subprocess.run(
                _command(voice, text, wav), capture_output=True, text=True, check=True
            ).stdout
            x, sr = sf.read(wav, dtype="float32")
            audio = to_mono_16k(x, sr)
            raw, start = [], 0.0
            for phone, end in re.findall(r"(\S+):([0-9.]+)", printed):
                raw.append((radio_to_arpa(phone), start, float(end)))
                start = float(end)
            out.append((audio, tidy_segments(raw, len(audio) / SAMPLE_RATE)))
    return out
