"""What a vocoder keeps of the units: resynthesize test utterances from their units, then

- **frame agreement**: re-tokenize the output and compare unit for unit (the output has exactly
  320 samples per input unit, so frames line up by construction: alignment by duration), with
  the agreement two independent sequences with these unit frequencies would reach (chance);
- **unit edit rate** of the deduplicated path: deduplicated units spoken with *predicted*
  durations, re-tokenized and deduplicated, edit distance / length against the input;
- **MCD**: mel-cepstral distortion (dB; cepstra c1..c12 of log-amplitude mel spectra, speech
  frames, frame by frame, no DTW) against the original; the cepstra are speechtok's MFCC, not
  SPTK's mel-cepstrum, so compare MCDs measured here with each other, not with papers;
- **F0 correlation**: Pearson correlation of Praat F0 over frames voiced in both.

Speakers the vocoder does not know (the test split's held-out voices) are spoken as speaker 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lm_probe.speaker import edit_distance
from tokenizer.audio import SAMPLE_RATE, decode_audio
from tokenizer.corpus.manifest import Utterance
from tokenizer.dedup import dedup
from tokenizer.features import FeatureConfig, extract
from tokenizer.protocol import Tokenizer

MFCC = FeatureConfig(type="mfcc", deltas=False)
MCD_SCALE = 10 / math.log(10) * math.sqrt(2)


def mcd(reference: np.ndarray, other: np.ndarray) -> tuple[float, int]:
    """Sum of per-frame MCD (dB) over the reference's speech frames (mean band energy within
    60 dB of its loudest frame; digital silence would dominate otherwise), and their count.
    Cepstra of log *amplitude* mel spectra (half the log-power MFCC), c1..c12, frame by frame."""
    a, b = extract(reference, MFCC), extract(other, MFCC)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    level = a[:, 0] / math.sqrt(MFCC.n_mels)  # c0 of an orthonormal DCT: mean log power
    speech = level > level.max() - math.log(1e6)
    diff = (a[speech, 1:] - b[speech, 1:]) / 2
    d = MCD_SCALE * np.sqrt(np.sum(diff**2, axis=1))
    return float(d.sum()), int(speech.sum())


def f0(audio: np.ndarray) -> np.ndarray:
    import parselmouth

    pitch = parselmouth.Sound(audio.astype(np.float64), SAMPLE_RATE).to_pitch(time_step=0.01)
    return np.asarray(pitch.selected_array["frequency"])


def resynthesis(
    tok: Tokenizer,
    vocoder: Any,
    root: Path,
    utts: Sequence[Utterance],
    full_utterance: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    same = frames = edits = dedup_len = mcd_frames = 0
    mcd_sum = 0.0
    f0_ref: list[np.ndarray] = []
    f0_out: list[np.ndarray] = []
    counts_in, counts_out = np.zeros(tok.K), np.zeros(tok.K)
    for u in utts:
        audio = decode_audio(u.audio_path(root))
        units = tok.tokenize(audio, full_utterance=full_utterance)
        speaker = u.speaker if u.speaker in vocoder.speakers else None
        out = vocoder.synthesize(units, speaker)
        again = tok.tokenize(out, full_utterance=full_utterance)
        n = min(len(units), len(again))
        same += int(np.sum(units[:n] == again[:n]))
        frames += len(units)
        counts_in += np.bincount(units, minlength=tok.K)
        counts_out += np.bincount(again, minlength=tok.K)
        short, _ = dedup(units)
        spoken = vocoder.synthesize(short, speaker, deduplicated=True)
        back, _ = dedup(tok.tokenize(spoken, full_utterance=full_utterance))
        edits += edit_distance(short, back)
        dedup_len += len(short)
        s, m = mcd(audio, out)
        mcd_sum, mcd_frames = mcd_sum + s, mcd_frames + m
        a, b = f0(audio), f0(out)
        k = min(len(a), len(b))
        voiced = (a[:k] > 0) & (b[:k] > 0)
        f0_ref.append(a[:k][voiced])
        f0_out.append(b[:k][voiced])
        if progress:
            progress(1)
    ref, hyp = np.concatenate(f0_ref), np.concatenate(f0_out)
    return {
        "vocoder": vocoder.name,
        "utterances": len(utts),
        "frame_agreement": same / frames if frames else None,
        "chance": float(np.sum(counts_in / counts_in.sum() * counts_out / counts_out.sum())),
        "dedup_unit_edit_rate": edits / dedup_len if dedup_len else None,
        "mcd_db": mcd_sum / mcd_frames if mcd_frames else None,
        "f0_correlation": float(np.corrcoef(ref, hyp)[0, 1]) if len(ref) > 2 else None,
        "voiced_frames": len(ref),
    }
