"""Speaker invariance of units.

- Perturbation consistency: frame agreement between the units of an utterance and of a
  speaker-perturbed copy (Praat "Change gender" + random EQ, the family Spin trains on; seeded
  per utterance so every tokenizer hears the same copies).
- Cross-voice distance on the ``parallel`` split: normalised edit distance between unit
  sequences of two voices reading one sentence, on deduplicated units and on one unit per
  aligned phone (the majority unit inside each phone segment), since deduplicated units jitter
  so much that the plain distance saturates.
- Speaker-ID probe: logistic regression on unit histograms, trained on some parallel sentences
  and tested on others; low accuracy means the units say little about the voice.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from tokenizer.corpus.alignment import Segment
from tokenizer.corpus.manifest import Utterance
from tokenizer.dedup import dedup
from tokenizer.perturb import perturb_speaker
from tokenizer.seeding import rng_for


def perturbed_copy(utt_id: str, audio: np.ndarray, seed: int = 0) -> np.ndarray:
    """The seeded speaker-perturbed copy of one utterance (same for every tokenizer)."""
    return perturb_speaker(audio, rng_for(utt_id, seed))[0]


def frame_agreement(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(equal frames, compared frames) over the common length."""
    n = min(len(a), len(b))
    return int(np.sum(a[:n] == b[:n])), n


def edit_distance(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    """Levenshtein distance, one numpy row per symbol of ``a``."""
    a, b = np.asarray(a), np.asarray(b)
    row = np.arange(len(b) + 1)
    offsets = np.arange(len(b) + 1)
    for x in a:
        cand = np.empty_like(row)
        cand[0] = row[0] + 1
        cand[1:] = np.minimum(row[1:] + 1, row[:-1] + (b != x))
        # insertions: new[j] = min_k<=j cand[k] + (j - k)
        row = np.minimum.accumulate(cand - offsets) + offsets
    return int(row[-1])


def normalised_distance(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> float:
    longest = max(len(a), len(b))
    return edit_distance(a, b) / longest if longest else 0.0


def phone_units(units: np.ndarray, segments: Sequence[Segment], frame_rate: float) -> np.ndarray:
    """The majority unit inside each phone segment (segments without a frame centre skipped)."""
    out = []
    centres = (np.arange(len(units)) + 0.5) / frame_rate
    for seg in segments:
        inside = units[(centres >= seg.start) & (centres < seg.end)]
        if len(inside):
            out.append(np.bincount(inside).argmax())
    return np.asarray(out, dtype=np.int64)


def cross_voice(
    units: dict[str, np.ndarray], utts: Sequence[Utterance], frame_rate: float
) -> dict[str, float]:
    """Mean pairwise normalised edit distance between voices reading the same sentence:
    ``edit_distance`` (deduplicated units), ``phone_edit_distance`` (a unit per phone) and
    ``phone_label_edit_distance`` (the phone labels themselves, the floor to compare with)."""
    by_sentence: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        by_sentence[u.sentence_key].append(u)
    dd, ph, lab = [], [], []
    codes: dict[str, int] = {}
    for group in by_sentence.values():
        for a, b in itertools.combinations(group, 2):
            dd.append(normalised_distance(dedup(units[a.id])[0], dedup(units[b.id])[0]))
            if a.alignment and b.alignment:
                ph.append(
                    normalised_distance(
                        phone_units(units[a.id], a.alignment, frame_rate),
                        phone_units(units[b.id], b.alignment, frame_rate),
                    )
                )
                la, lb = (
                    [codes.setdefault(s.phone, len(codes)) for s in x.alignment or []]
                    for x in (a, b)
                )
                lab.append(normalised_distance(la, lb))
    nan = float("nan")
    return {
        "edit_distance": float(np.mean(dd)) if dd else nan,
        "phone_edit_distance": float(np.mean(ph)) if ph else nan,
        "phone_label_edit_distance": float(np.mean(lab)) if lab else nan,
        "pairs": float(len(dd)),
    }


def speaker_id_accuracy(
    units: dict[str, np.ndarray], utts: Sequence[Utterance], K: int, seed: int = 0
) -> dict[str, float]:
    """Train on half the sentences (every voice reads each), test on the other half."""
    from sklearn.linear_model import LogisticRegression

    sentences = sorted({u.sentence_key for u in utts})
    rng = np.random.default_rng(seed)
    train_set = set(rng.permutation(sentences)[: len(sentences) // 2].tolist())
    speakers = sorted({u.speaker or "" for u in utts})
    if len(speakers) < 2 or len(train_set) == 0 or len(train_set) == len(sentences):
        return {"speaker_id_acc": float("nan"), "chance": float("nan")}

    def hist(u: Utterance) -> np.ndarray:
        return np.bincount(units[u.id], minlength=K)[:K] / max(1, len(units[u.id]))

    split = [u.sentence_key in train_set for u in utts]
    x = np.stack([hist(u) for u in utts])
    y = np.array([speakers.index(u.speaker or "") for u in utts])
    tr, te = np.array(split), ~np.array(split)
    clf = LogisticRegression(max_iter=2000, C=10.0).fit(x[tr], y[tr])
    return {"speaker_id_acc": float(clf.score(x[te], y[te])), "chance": 1.0 / len(speakers)}
