"""Music noise: seeded random pieces written as MIDI (a chord progression in a random key, an
accompaniment, a melody and sometimes drums, on random General MIDI instruments) and rendered
by FluidSynth with a free GM soundfont (Debian's fluid-soundfont-gm).

The same seed gives the same piece, sample for sample; training and the probe draw their pieces
from different seed streams, so the probe's music is never heard in training.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tokenizer.audio import SAMPLE_RATE
from tokenizer.errors import InvalidInputError

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
SOUNDFONT_ENV = "SPEECHTOK_SOUNDFONT"

PROGRAMS = (*range(0, 8), *range(16, 20), *range(24, 30), *range(40, 50), *range(56, 67),
            *range(68, 76), *range(80, 88), *range(88, 96))  # fmt: skip
"""GM programs pieces draw from: pianos, organs, guitars, strings, brass, reeds, pipes, synths."""

MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
TICKS = 480  # per beat


def soundfont() -> Path:
    """The General MIDI soundfont: $SPEECHTOK_SOUNDFONT, else Debian's."""
    for path in (os.environ.get(SOUNDFONT_ENV), *SOUNDFONTS):
        if path and Path(path).is_file():
            return Path(path)
    raise InvalidInputError(
        f"expected a General MIDI soundfont (${SOUNDFONT_ENV} or one of {list(SOUNDFONTS)}), "
        "found none: apt install fluid-soundfont-gm"
    )


def midi_piece(rng: np.random.Generator, seconds: float) -> Any:
    """A random piece of at least ``seconds`` as a ``mido.MidiFile``."""
    import mido

    bpm = float(rng.uniform(70, 160))
    beats = int(np.ceil(seconds * bpm / 60.0 / 4.0)) * 4 + 4
    scale = MAJOR if rng.random() < 0.5 else MINOR
    root = int(rng.integers(48, 60))
    degrees = rng.choice([0, 3, 4, 5, 1, 2], size=beats // 4)
    degrees[0] = 0
    events: list[tuple[int, int, int, int, int]] = []  # (tick, order, channel, note, velocity)

    def note(channel: int, pitch: int, start: float, length: float, velocity: int) -> None:
        on, off = int(start * TICKS), int((start + length) * TICKS)
        events.append((on, 1, channel, pitch, velocity))
        events.append((off, 0, channel, pitch, 0))

    arpeggio = rng.random() < 0.5
    for bar, d in enumerate(degrees):
        chord = [root + scale[(d + k) % 7] + 12 * ((d + k) // 7) for k in (0, 2, 4)]
        for beat in range(4):
            t = bar * 4 + beat
            if arpeggio:
                for half in range(2):
                    note(0, chord[(2 * beat + half) % 3], t + half / 2, 0.5, 70)
            else:
                for p in chord:
                    note(0, p, t, 1.0, 60)
        at = bar * 4.0
        while at < bar * 4 + 4:  # melody: scale notes near the chord, an octave up
            length = float(rng.choice([0.25, 0.5, 0.5, 1.0, 1.5]))
            if rng.random() < 0.85:
                step = int(rng.integers(-3, 4))
                pitch = root + 12 + scale[(d + step) % 7] + 12 * ((d + step) // 7)
                note(1, pitch, at, length, int(rng.integers(70, 110)))
            at += length
    if rng.random() < 0.5:
        for t in range(beats):
            note(9, 36 if t % 2 == 0 else 38, t, 0.25, 90)
            note(9, 42, t + 0.5, 0.25, 60)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    for channel in (0, 1):
        program = int(rng.choice(PROGRAMS))
        track.append(mido.Message("program_change", channel=channel, program=program))
    now = 0
    for tick, _, channel, pitch, velocity in sorted(events):
        kind = "note_on" if velocity else "note_off"
        track.append(mido.Message(kind, channel=channel, note=pitch, velocity=velocity,
                                  time=tick - now))  # fmt: skip
        now = tick
    piece = mido.MidiFile(ticks_per_beat=TICKS)
    piece.tracks.append(track)
    return piece


def render(piece: Any, seconds: float) -> np.ndarray:
    """``piece`` (a ``mido.MidiFile``) rendered by FluidSynth at 16 kHz, mono, cut to
    ``seconds``, unit RMS."""
    import soundfile as sf

    if shutil.which("fluidsynth") is None:
        raise InvalidInputError("expected the fluidsynth program for music noise, found none: "
                                "apt install fluidsynth")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "piece.mid", Path(tmp) / "piece.wav"
        piece.save(str(mid))
        subprocess.run(
            ["fluidsynth", "-n", "-i", "-q", "-g", "0.5", "-r", str(SAMPLE_RATE), "-T", "wav",
             "-F", str(wav), str(soundfont()), str(mid)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        audio, rate = sf.read(wav, dtype="float64", always_2d=True)
    if rate != SAMPLE_RATE:
        raise InvalidInputError(f"expected FluidSynth to render at {SAMPLE_RATE} Hz, found {rate}")
    x = audio.mean(axis=1)[: int(seconds * SAMPLE_RATE)]
    rms = float(np.sqrt(np.mean(x**2)))
    if rms == 0.0:
        raise InvalidInputError("expected FluidSynth to render sound, found silence")
    return (x / rms).astype(np.float32)


def music_bank(seeds: list[int], pieces: int, seconds: float) -> list[np.ndarray]:
    """``pieces`` rendered pieces of ``seconds`` each, piece i from the generator of
    ``seeds + [i]``."""
    return [
        render(midi_piece(np.random.default_rng([*seeds, i]), seconds), seconds)
        for i in range(pieces)
    ]
