"""English sentences for synthesis: WordNet usage examples (Debian ``wordnet-base``).

Only examples made of letters and simple punctuation are kept, so every engine's
letter-to-sound rules read them the same way; the result is sorted and deduplicated, so a
seeded shuffle of it is reproducible.
"""

from __future__ import annotations

import re
from pathlib import Path

from tokenizer.errors import CorpusError

WORDNET_DIR = Path("/usr/share/wordnet")
_CLEAN = re.compile(r"[A-Za-z ,.'?!-]+")


def wordnet_sentences(
    min_words: int = 5, max_words: int = 20, wordnet_dir: Path = WORDNET_DIR
) -> list[str]:
    """All clean WordNet usage examples with ``min_words..max_words`` words, sorted."""
    files = sorted(wordnet_dir.glob("data.*"))
    if not files:
        raise CorpusError(
            f"expected WordNet data files in {wordnet_dir} (Debian package wordnet-base), "
            "found none"
        )
    found: set[str] = set()
    for path in files:
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            for example in re.findall(r'"([^"]+)"', line.split("|", 1)[1]):
                sentence = _tidy(example)
                if sentence and min_words <= len(sentence.split()) <= max_words:
                    found.add(sentence)
    return sorted(found)


def _tidy(example: str) -> str | None:
    ex = example.strip().strip(";").strip()
    if not ex or not _CLEAN.fullmatch(ex):
        return None
    ex = ex[0].upper() + ex[1:]
    return ex if ex[-1] in ".?!" else ex + "."
