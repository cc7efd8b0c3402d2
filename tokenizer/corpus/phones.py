"""The phone set of speechtok's alignments: ARPAbet-39 plus ``SIL``, and maps into it.

Engines and aligners label phones differently; everything is mapped here so that probes pool
labels across engines. Tables cover espeak-ng's English mnemonics, the festival/flite "radio"
set, and Montreal Forced Aligner's ARPAbet (stress digits, ``sil``/``sp``/``spn``).
"""

from __future__ import annotations

import re

SIL = "SIL"
ARPABET39 = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W "
    "Y Z ZH"
).split(" ")
PHONES = (*ARPABET39, SIL)
"""ARPAbet-39 + SIL: every label a synthesized corpus may contain."""

ESPEAK_TO_ARPA = {
    "0": "AA", "3": "ER", "3:": "ER", "@": "AH", "@-": "AH", "@2": "AH", "@5": "AH", "@L": "L",
    "A:": "AA", "A@": "AA", "D": "DH", "E": "EH", "I": "IH", "I#": "IH", "I2": "IH", "IR": "IH",
    "N": "NG", "O": "AO", "O2": "AO", "O:": "AO", "O@": "AO", "OI": "OY", "S": "SH", "T": "TH",
    "U": "UH", "U@": "UH", "V": "AH", "VR": "AH", "Z": "ZH", "a": "AE", "a#": "AH", "aI": "AY",
    "aI2": "AY", "aI3": "AY", "aI@": "AY", "aU": "AW", "aa": "AE", "e@": "EH", "eI": "EY",
    "i": "IY", "i:": "IY", "i@": "IY", "i@3": "IY", "o@": "AO", "oU": "OW", "u:": "UW", "r-": "R",
    "n-": "N", "t#": "T", "t2": "T", "t[": "T", "tS": "CH", "dZ": "JH", "w#": "W", "h": "HH",
    "j": "Y", "e": "EH", "o": "OW", "u": "UW", "x": "K", "A~": "AA", "?": "T", "l/": "L",
    "l/2": "L", "aI@3": "AY", "U@r": "UH",
    "_": SIL, "_:": SIL, "_!": SIL, "_;": SIL, "_^_": SIL,
}  # fmt: skip
"""espeak-ng English phoneme mnemonics (en-us, en, en-gb-*, en-029, en-us-nyc)."""

RADIO_TO_ARPA = {"ax": "AH", "axr": "ER", "pau": SIL, "h#": SIL, "brth": SIL}
"""festival/flite radio phones that are not lower-case ARPAbet."""

_SINGLE_LETTER_CONSONANTS = frozenset(p for p in ARPABET39 if len(p) == 1)
MFA_SILENCES = frozenset({"", "sil", "sp", "spn", "<eps>", "sil_s", "pau", "h#"})


def espeak_to_arpa(label: str) -> str:
    """Map one espeak-ng mnemonic; single consonant letters (b d f ...) are ARPAbet already."""
    if label in ESPEAK_TO_ARPA:
        return ESPEAK_TO_ARPA[label]
    if label.upper() in _SINGLE_LETTER_CONSONANTS and label.islower():
        return label.upper()
    return "UNK:" + label


def radio_to_arpa(label: str) -> str:
    """Map one festival/flite radio phone (lower-case ARPAbet with a few extras)."""
    return RADIO_TO_ARPA.get(label, label.upper())


def normalize_phone(label: str) -> str:
    """Map a forced aligner's label (e.g. MFA's ``AH0``, ``sil``, ``spn``) into the phone set;
    labels outside ARPAbet are returned upper-cased and unchanged, so probes still count them."""
    if label.strip().lower() in MFA_SILENCES:
        return SIL
    return re.sub(r"[012]$", "", label.strip()).upper()
