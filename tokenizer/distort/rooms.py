"""Reverberation by generated rooms: pyroomacoustics image-source shoebox rooms of a chosen
reverberation time (RT60), a random size and random source and microphone positions.

An impulse response starts at its direct-path peak (the samples before it, the flight time from
source to microphone, are cut), so reverberated audio keeps the length and the alignment of the
dry audio: phone boundaries and unit frames stay where they were.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from tokenizer.audio import SAMPLE_RATE
from tokenizer.errors import InvalidInputError

MAX_ORDER = 40
"""Cap on the image-source order (long rooms cost time, not realism, past it)."""


def room_response(rt60_s: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """The impulse response (16 kHz float32, unit peak first) of a random shoebox room whose
    reverberation time is drawn uniformly from ``rt60_s`` seconds (``(t, t)`` for exactly t;
    rooms that cannot be that dry take the driest absorption they allow)."""
    import pyroomacoustics as pra

    if not 0 < rt60_s[0] <= rt60_s[1] <= 5:
        raise InvalidInputError(f"expected an RT60 range within (0, 5] seconds, found {rt60_s}")
    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    rt60 = float(rng.uniform(*rt60_s))
    try:
        absorption, order = pra.inverse_sabine(rt60, dims)
    except ValueError:
        absorption, order = 0.99, 1
    room = pra.ShoeBox(
        dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(order, MAX_ORDER)
    )
    source, mic = (rng.uniform(0.5, dims - 0.5) for _ in range(2))
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    peak = int(np.argmax(np.abs(rir)))
    return (rir[peak:] / np.abs(rir[peak])).astype(np.float32)


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``audio`` convolved with ``rir`` (which starts at its direct path), cut to the input's
    length: same length, same alignment."""
    return fftconvolve(audio, rir)[: len(audio)].astype(np.float32)
