"""ABX discriminability of frame representations, ZeroSpeech style (triphone, within context).

An item is a triphone occurrence: the frames whose centres fall inside ``[onset, offset)`` of
three consecutive aligned phones (none of them SIL), labelled by its central phone, its context
``(previous, next)`` and its speaker, as in the ZeroSpeech 2017 / 2021 (libri-light) item
files (libri-light's loader also leaves out the last of those frames). A triple ``(A, B, X)``
has A and X of one triphone and B differing only in the central phone; it is an error when X
is farther from A than from B (a tie counts 0.5).

- *within speaker*: A, B, X by one speaker (X is another occurrence than A);
- *across speaker*: A, B by one speaker, X by another.

Distances are DTW over the angular frame distance ``arccos(cos(x, y)) / pi`` (features are
L2-normalised), the cost divided by the length of the optimal path, as libri-light's ``dtw.pyx``
computes it (same step pattern, same tie-break). Unit sequences are compared as one-hot
vectors, whose angular distance is 0 (same unit) or 0.5 (different units).

The error is averaged as libri-light ``eval_ABX`` averages it: over contexts (and X's speakers)
for each (central phone of A, central phone of B, speaker), then over speakers, then over the
ordered phone pairs. Groups are capped as there: at most ``max_size_group`` items of one
(context, phone, speaker), at most ``max_x_across`` X speakers, drawn with ``seed``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lm_probe.cache import OFF, ArrayCache, audio_sha256
from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import Utterance
from tokenizer.corpus.phones import SIL
from tokenizer.features import extract
from tokenizer.kinds import load_tokenizer
from tokenizer.kmeans import FeatureKmeansTokenizer
from tokenizer.protocol import Tokenizer
from tokenizer.windows import Windowed


class Item(NamedTuple):
    """One triphone occurrence (times in seconds from the start of its utterance)."""

    utt: str
    speaker: str
    phone: str
    """The central phone."""
    context: str
    """``previous+next`` phone."""
    onset: float
    offset: float


@dataclass(frozen=True, kw_only=True)
class AbxConfig:
    max_size_group: int = 10
    """Items drawn from one (context, central phone, speaker) group (libri-light's default)."""
    max_x_across: int = 5
    """Other speakers whose items serve as X for one (context, phone, speaker) group."""
    seed: int = 0
    batch_floats: int = 1 << 21
    """Size of one vectorised DTW call: pairs x frames x max(dim, frames) at most."""


def triphone_items(utts: Iterable[Utterance]) -> list[Item]:
    """Every triphone of every aligned utterance, SIL-free."""
    out = []
    for u in utts:
        segs = u.alignment or []
        for prev, mid, nxt in zip(segs, segs[1:], segs[2:], strict=False):
            if SIL not in (prev.phone, mid.phone, nxt.phone):
                context = f"{prev.phone}+{nxt.phone}"
                out.append(Item(u.id, u.speaker or "", mid.phone, context, prev.start, nxt.end))
    return out


def item_frames(features: np.ndarray, item: Item, frame_rate: float) -> np.ndarray:
    """The frames whose centres ``(i + 0.5) / frame_rate`` lie in ``[onset, offset)``; the
    nearest frame when no centre does (an item shorter than a frame)."""
    first = int(np.ceil(item.onset * frame_rate - 0.5))
    end = int(np.ceil(item.offset * frame_rate - 0.5))
    first, end = max(first, 0), min(end, len(features))
    if end <= first:
        first = min(max(int((item.onset + item.offset) / 2 * frame_rate), 0), len(features) - 1)
        end = first + 1
    return features[first:end]


def frame_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Angular distances ``[..., Nx, Ny]`` between frames of ``x [..., Nx, D]`` and
    ``y [..., Ny, D]`` (L2-normalised features), or of unit ids ``[..., Nx]``, ``[..., Ny]``
    as one-hot vectors."""
    if np.issubdtype(x.dtype, np.integer):
        return np.where(x[..., :, None] == y[..., None, :], 0.0, 0.5).astype(np.float32)
    cos = np.clip(np.matmul(x, np.swapaxes(y, -1, -2)), -1.0, 1.0)
    return (np.arccos(cos) / np.pi).astype(np.float32)


def dtw(dist: np.ndarray, nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Path-length-normalised DTW cost of a batch ``dist [P, N, M]`` of frame distances, each
    valid on ``[:nx[p], :ny[p]]``. Steps (1, 0), (0, 1), (1, 1); the path is the one
    libri-light's backtrack finds (ties: diagonal, then along y, then along x), its cost summed
    in float32 as there."""
    p, n, m = dist.shape
    d = np.ascontiguousarray(np.moveaxis(dist, 0, -1), dtype=np.float32)  # [N, M, P]
    cost = np.full((n + 1, m + 1, p), np.inf, dtype=np.float32)
    steps = np.zeros((n + 1, m + 1, p), dtype=np.int32)
    cost[0, 0] = 0.0
    for k in range(2, n + m + 1):  # the anti-diagonal i + j = k of 1-based cells
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        diag, left, up = cost[i - 1, j - 1], cost[i, j - 1], cost[i - 1, j]
        take_diag = (diag <= left) & (diag <= up)
        take_left = ~take_diag & (left <= up)
        cost[i, j] = d[i - 1, j - 1] + np.where(take_diag, diag, np.where(take_left, left, up))
        steps[i, j] = 1 + np.where(
            take_diag, steps[i - 1, j - 1], np.where(take_left, steps[i, j - 1], steps[i - 1, j])
        )
    cols = np.arange(p)
    return cost[nx, ny, cols].astype(np.float64) / steps[nx, ny, cols]


def pair_distances(
    segments: Sequence[np.ndarray], pairs: np.ndarray, batch_floats: int = 1 << 21
) -> np.ndarray:
    """DTW distance of each item pair ``pairs [P, 2]`` (indices into ``segments``, each a
    ``[frames, D]`` float array, L2-normalised, or ``[frames]`` unit ids). Pairs run in
    batches of similar lengths, padded to the longest of the batch: ``batch_floats`` bounds
    pairs x frames x max(dim, frames) of a batch."""
    lengths = np.array([len(s) for s in segments])
    dim = int(np.prod(segments[0].shape[1:])) if segments else 1
    out = np.empty(len(pairs))
    la, lb = lengths[pairs[:, 0]], lengths[pairs[:, 1]]
    order = np.lexsort((np.minimum(la, lb), np.maximum(la, lb)))[::-1]  # longest first
    start = 0
    while start < len(order):
        width = int(max(la[order[start]], lb[order[start]]))
        idx = order[start : start + max(1, batch_floats // (width * max(dim, width)))]
        wa, wb = int(la[idx].max()), int(lb[idx].max())
        xa, xb = _padded(segments, pairs[idx, 0], wa), _padded(segments, pairs[idx, 1], wb)
        out[idx] = dtw(frame_distances(xa, xb), la[idx], lb[idx])
        start += len(idx)
    return out


def _padded(segments: Sequence[np.ndarray], which: np.ndarray, width: int) -> np.ndarray:
    first = segments[int(which[0])]
    out = np.zeros((len(which), width, *first.shape[1:]), dtype=first.dtype)
    for row, i in enumerate(which):
        out[row, : len(segments[int(i)])] = segments[int(i)]
    return out


class Cell(NamedTuple):
    """One cell of libri-light's score board: the items (indices) that serve as A, B and X for
    one context, one pair of central phones, one speaker of A and B (and one speaker of X)."""

    key: tuple[str, str, str]
    """(central phone of A and X, of B, speaker of A and B): what the inner average keeps."""
    a: np.ndarray
    b: np.ndarray
    x: np.ndarray
    same: bool
    """X is drawn from A's own group (within speaker): A = X is no triple."""


def abx_cells(items: Sequence[Item], config: AbxConfig) -> dict[str, list[Cell]]:
    """The within- and across-speaker cells of ``items`` (groups drawn with the seed)."""
    rng = np.random.default_rng(config.seed)
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        groups[(it.context, it.speaker, it.phone)].append(i)
    drawn = {}
    for key in sorted(groups):
        g = np.array(groups[key])
        if len(g) > config.max_size_group:
            g = np.sort(rng.choice(g, config.max_size_group, replace=False))
        drawn[key] = g
    by_cs: dict[tuple[str, str], list[str]] = defaultdict(list)
    speakers_of: dict[tuple[str, str], list[str]] = defaultdict(list)
    for context, speaker, phone in drawn:
        by_cs[(context, speaker)].append(phone)
        speakers_of[(context, phone)].append(speaker)
    within: list[Cell] = []
    across: list[Cell] = []
    for (context, speaker), phones in by_cs.items():
        for pa in phones:
            ga = drawn[(context, speaker, pa)]
            others = [s for s in speakers_of[(context, pa)] if s != speaker]
            if len(others) > config.max_x_across:
                others = sorted(rng.choice(others, config.max_x_across, replace=False).tolist())
            for pb in phones:
                if pb == pa:
                    continue
                gb = drawn[(context, speaker, pb)]
                if len(ga) > 1:
                    within.append(Cell((pa, pb, speaker), ga, gb, ga, True))
                for sx in others:
                    across.append(Cell((pa, pb, speaker), ga, gb, drawn[(context, sx, pa)], False))
    return {"within": within, "across": across}


def _pair_keys(cell: Cell, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys ``first * n + second`` of the DTW pairs of a cell, ``[nA, nX]`` and ``[nB, nX]``.
    DTW's path length breaks cost ties asymmetrically, so pairs keep libri-light's order: X
    first, except between A and X of one group (computed once, lower index first)."""
    a, b, x = cell.a[:, None], cell.b[:, None], cell.x[None, :]
    ax = np.minimum(a, x) * n + np.maximum(a, x) if cell.same else x * n + a
    return ax, x * n + b


def _cell_error(cell: Cell, keys: np.ndarray, values: np.ndarray, n: int) -> tuple[float, int]:
    """(error, triples) of one cell: over X, A (not X itself), B."""
    ax, bx = _pair_keys(cell, n)
    # A = X has no distance (its key is absent): any value serves, the triple is masked below
    dax = values[np.minimum(np.searchsorted(keys, ax), len(keys) - 1)]
    dbx = values[np.searchsorted(keys, bx)]
    wrong = (dax[:, None, :] > dbx[None, :, :]) + 0.5 * (dax[:, None, :] == dbx[None, :, :])
    valid = np.ones_like(wrong, dtype=bool)
    if cell.same:
        valid &= (cell.a[:, None] != cell.x[None, :])[:, None, :]
    count = int(valid.sum())
    return float(wrong[valid].sum() / count), count


def _average(cells: Iterable[tuple[tuple[str, str, str], float]]) -> float:
    """Mean over cells for each (phone A, phone B, speaker), then over speakers for each phone
    pair, then over phone pairs (libri-light's reduction)."""
    by_speaker: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for key, err in cells:
        by_speaker[key].append(err)
    by_pair: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (pa, pb, _), errs in by_speaker.items():
        by_pair[(pa, pb)].append(float(np.mean(errs)))
    return float(np.mean([np.mean(v) for v in by_pair.values()])) if by_pair else float("nan")


def abx_error(
    items: Sequence[Item],
    features: Mapping[str, np.ndarray],
    frame_rate: float,
    config: AbxConfig | None = None,
) -> dict[str, float | int]:
    """Within- and across-speaker ABX error (0..1) of ``items`` over per-utterance frames
    ``features[utt]``: ``[frames, D]`` floats (compared by angle) or ``[frames]`` unit ids
    (compared as one-hot vectors). Also the number of triples and of phone pairs each counts."""
    config = config or AbxConfig()
    segments = [_normalised(item_frames(features[it.utt], it, frame_rate)) for it in items]
    cells = abx_cells(items, config)
    n = max(len(items), 1)
    wanted = [k.ravel() for ts in cells.values() for t in ts for k in _pair_keys(t, n)]
    keys = np.unique(np.concatenate(wanted)) if wanted else np.zeros(0, dtype=np.int64)
    keys = keys[keys // n != keys % n]  # an item and itself (A = X)
    values = pair_distances(segments, np.stack([keys // n, keys % n], 1), config.batch_floats)
    out: dict[str, float | int] = {"items": len(items)}
    for mode, ts in cells.items():
        scored = [(t.key, *_cell_error(t, keys, values, n)) for t in ts]
        out[mode] = _average((key, err) for key, err, _ in scored)
        out[f"{mode}_triples"] = sum(c for _, _, c in scored)
        out[f"{mode}_phone_pairs"] = len({key[:2] for key, _, _ in scored})
    return out


def _normalised(frames: np.ndarray) -> np.ndarray:
    if np.issubdtype(frames.dtype, np.integer):
        return frames
    x = frames.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# The probe's rows: ABX of a tokenizer's units and of the frames they are made from.

Features = Callable[[np.ndarray], np.ndarray]
"""16 kHz audio -> ``[frames, D]`` continuous frames at the tokenizer's frame rate."""


def dense_features(tok: Tokenizer | None) -> tuple[str, Features] | None:
    """What the units are made from, with a label: the standardised acoustic features of a
    feature k-means model, or the encoder layer of an encoder model (run in torch: None where
    torch is not installed); None for precomputed units."""
    if isinstance(tok, FeatureKmeansTokenizer):
        km = tok
        return (
            f"{km.features.type} (standardised)",
            lambda a: (extract(a, km.features) - km.mean) / km.std,
        )
    path = getattr(tok, "path", None)
    if not isinstance(tok, Windowed) or path is None:
        return None
    try:
        from tokenizer.torch_tokenizer import TorchTokenizer
    except ImportError:
        return None
    enc = tok if isinstance(tok, TorchTokenizer) else load_tokenizer(path, "torch")
    assert isinstance(enc, TorchTokenizer)
    label = "final layer" if enc.layer is None else f"layer {enc.layer}"
    return label, lambda a: enc.layer_features(a, enc.layer)


def probe_abx(
    tok: Tokenizer | None,
    units: Mapping[str, np.ndarray],
    root: Path,
    utts: Sequence[Utterance],
    frame_rate: float,
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
    cache: ArrayCache = OFF,
) -> tuple[dict[str, Any], list[str]]:
    """ABX of ``units`` (and of the tokenizer's dense features, where it has them) on the
    triphones of ``utts`` (the ``parallel`` split); the numbers, and notes for the report.
    ``on_progress(1)`` after each utterance's dense features (cached per fingerprint and audio
    sha256)."""
    items = triphone_items(utts)
    config = AbxConfig(seed=seed)
    out: dict[str, Any] = {
        "utterances": len(utts),
        "units": abx_error(items, units, frame_rate, config),
        "features": None,
    }
    dense = dense_features(tok)
    if dense is None:
        return out, ["ABX (features): skipped, no dense features (precomputed units or no torch)"]
    label, fn = dense
    assert tok is not None
    key = ("abx features", tok.fingerprint, type(tok).__name__, label)
    feats = {}
    for u in utts:
        audio = decode_audio(u.audio_path(root))
        feats[u.id] = cache.get((*key, audio_sha256(audio)), partial(fn, audio))
        if on_progress:
            on_progress(1)
    out["features"] = {"source": label, **abx_error(items, feats, frame_rate, config)}
    return out, []
