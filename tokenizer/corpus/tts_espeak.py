"""espeak-ng synthesis with phone timings from libespeak-ng's phoneme events (ctypes).

The command-line wrappers expose no events, so this talks to the C library directly: a
synchronous synth callback collects audio and ``espeakEVENT_PHONEME`` events, whose ``sample``
field is the absolute sample index (at the engine rate, 22050 Hz) where a phone starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Sequence

import numpy as np

from tokenizer.audio import SAMPLE_RATE, to_mono_16k
from tokenizer.corpus.alignment import Segment, tidy_segments
from tokenizer.corpus.phones import espeak_to_arpa
from tokenizer.corpus.voices import Voice

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_EV_LIST_TERMINATED, _EV_PHONEME, _EV_SAMPLERATE = 0, 7, 8
_PARAM_RATE, _PARAM_PITCH = 1, 3
_DEFAULT_WPM = 175
_MARKERS = (";", "||", "|")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Espeak:
    """One libespeak-ng instance per process (the library keeps global state)."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.lib = ctypes.CDLL(path)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]  # fmt: skip
        self.rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 200, None, _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT
        )
        if self.rate <= 0:
            raise RuntimeError(f"expected libespeak-ng to initialise, found error {self.rate}")
        self.lock = threading.Lock()
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[str, int]] = []
        self.event_rate = self.rate
        self.callback = _Callback(self._on_audio)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self.callback)

    def _on_audio(self, wav: ctypes.Array, n: int, events: ctypes.Array) -> int:
        if n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EV_PHONEME:
                self.events.append((ev.id.string.decode("utf-8", "replace"), ev.sample))
            elif ev.type == _EV_SAMPLERATE:
                self.event_rate = ev.id.number
            i += 1
        return 0

    def synth(self, text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[str, int]]]:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"expected an installed espeak-ng voice, found {voice.name!r}")
            self.lib.espeak_SetParameter(_PARAM_RATE, round(_DEFAULT_WPM * voice.rate), 0)
            if voice.pitch is not None:
                self.lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
            self.chunks, self.events = [], []
            data = text.encode("utf-8") + b"\0"
            err = self.lib.espeak_Synth(data, len(data), 0, 0, 0, 0, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with error {err} on {text!r}")
            self.lib.espeak_Synchronize()
            if self.event_rate != self.rate:  # only MBROLA voices switch rates; none are used
                raise RuntimeError(
                    f"expected {self.rate} Hz from espeak-ng, found {self.event_rate}"
                )
            pcm = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
            return pcm.astype(np.float32) / 32768.0, list(self.events)


@functools.cache
def _engine() -> _Espeak:
    return _Espeak()


def synthesize(voice: Voice, texts: Sequence[str]) -> list[tuple[np.ndarray, list[Segment]]]:
    """Synthesize each text; returns 16 kHz float32 audio and ARPAbet segments per text."""
    eng = _engine()
    out = []
    for text in texts:
        x, events = eng.synth(text, voice)
        n = len(x)
        raw = [("_", 0, events[0][1])] if events and events[0][1] > 0 else []
        for k, (phone, start) in enumerate(events):
            end = events[k + 1][1] if k + 1 < len(events) else n
            raw.append((phone.strip() or "_", start, end))
        labelled = [
            (p if p in _MARKERS else espeak_to_arpa(p), s / eng.rate, e / eng.rate)
            for p, s, e in raw
        ]
        audio = to_mono_16k(x, eng.rate)
        out.append((audio, tidy_segments(labelled, len(audio) / SAMPLE_RATE, markers=_MARKERS)))
    return out
