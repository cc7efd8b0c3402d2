"""festival synthesis with phone timings from ``utt.save.segs`` (``end 100 phone`` lines).

One festival process synthesizes a whole batch of texts for one voice: its start-up costs
more than a sentence does.
"""

from __future__ import annotations

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

_SCHEME = """
(define (synth_seg text wavfile segfile)
  (set! utt1 (eval (list 'Utterance 'Text text)))
  (utt.synth utt1)
  (utt.save.wave utt1 wavfile 'riff)
  (utt.save.segs utt1 segfile))
"""


def _script(voice: Voice, texts: Sequence[str], tmp: Path) -> str:
    lines = [_SCHEME, f"({voice.name})"]
    if voice.rate != 1.0:
        lines.append(f"(Parameter.set 'Duration_Stretch {1.0 / voice.rate:.4f})")
    for i, text in enumerate(texts):
        clean = text.replace("\\", " ").replace('"', " ")
        lines.append(f'(synth_seg "{clean}" "{tmp}/{i}.wav" "{tmp}/{i}.seg")')
    return "\n".join(lines) + "\n"


def _read_segs(path: Path) -> list[tuple[str, float, float]]:
    raw, start = [], 0.0
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] != "#":
            end = float(fields[0])
            raw.append((radio_to_arpa(fields[2]), start, end))
            start = end
    return raw


def synthesize(voice: Voice, texts: Sequence[str]) -> list[tuple[np.ndarray, list[Segment]]]:
    """Synthesize each text; returns 16 kHz float32 audio and ARPAbet segments per text."""
    with tempfile.TemporaryDirectory(prefix="festival") as name:
        tmp = Path(name)
        script = tmp / "batch.scm"
        script.write_text(_script(voice, texts, tmp))
        subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True)
        out = []
        for i in range(len(texts)):
            x, sr = sf.read(tmp / f"{i}.wav", dtype="float32")
            audio = to_mono_16k(x, sr)
            segs = tidy_segments(_read_segs(tmp / f"{i}.seg"), len(audio) / SAMPLE_RATE)
            out.append((audio, segs))
    return out
