"""Corpus manifests: one :class:`Utterance` per line of ``manifest.jsonl``, and readers for
users' own manifests (jsonl, or fairseq-style tsv) with optional alignments.

A synthesized corpus directory holds ``manifest.jsonl``, ``corpus.json`` (how it was built and
its voices) and ``audio/<split>/<id>.flac``. Audio paths in a manifest are relative to the
manifest's directory unless absolute.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizer.corpus.alignment import Segment, read_frame_tsv, read_textgrid
from tokenizer.errors import CorpusError

MANIFEST = "manifest.jsonl"
CORPUS_INFO = "corpus.json"
SPLITS = ("train", "dev", "test", "unseen", "parallel")


@dataclass(kw_only=True)
class Utterance:
    id: str
    audio: str
    """Audio path, relative to the manifest's directory unless absolute."""
    duration: float | None = None
    """Seconds of audio (None where a user's manifest does not say)."""
    speaker: str | None = None
    split: str | None = None
    text: str | None = None
    sentence: str | None = None
    """Sentence id: utterances of one sentence share it (the ``parallel`` split)."""
    engine: str | None = None
    alignment: list[Segment] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields of a user's manifest that speechtok does not interpret, kept as they are."""

    @property
    def sentence_key(self) -> str:
        """What groups readings of one sentence: the sentence id, else the text, else the id."""
        return self.sentence or self.text or self.id

    def audio_path(self, root: str | Path) -> Path:
        p = Path(self.audio)
        return p if p.is_absolute() else Path(root) / p

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "id": self.id,
            "audio": self.audio,
            "speaker": self.speaker,
            "engine": self.engine,
            "split": self.split,
            "sentence": self.sentence,
            "text": self.text,
            "duration": self.duration,
        }
        d = {k: v for k, v in d.items() if v is not None}
        if self.alignment is not None:
            d["alignment"] = [[p, round(s, 5), round(e, 5)] for p, s, e in self.alignment]
        return json.dumps({**d, **self.extra}, ensure_ascii=False)


_KNOWN = {"id", "audio", "path", "speaker", "split", "text", "sentence", "engine", "duration"}


def utterance_from_dict(d: Mapping[str, Any], where: str) -> Utterance:
    """Build an :class:`Utterance` from one manifest record (``audio`` or ``path`` required), or
    from a Lhotse recording (``sources``) or cut (``recording``) record."""
    if "sources" in d or "recording" in d:
        return _from_lhotse(d, where)
    audio = d.get("audio", d.get("path"))
    if not isinstance(audio, str) or not audio:
        raise CorpusError(f"expected an 'audio' (or 'path') string at {where}, found {audio!r}")
    ali = d.get("alignment")
    try:
        alignment = (
            None if ali is None else [Segment(str(p), float(s), float(e)) for p, s, e in ali]
        )
    except (TypeError, ValueError) as e:
        raise CorpusError(
            f"expected 'alignment' as [[phone, start_s, end_s], ...] at {where}, found {ali!r:.80}"
        ) from e
    return Utterance(
        id=str(d.get("id") or Path(audio).stem),
        audio=audio,
        duration=None if d.get("duration") is None else float(d["duration"]),
        speaker=d.get("speaker"),
        split=d.get("split"),
        text=d.get("text"),
        sentence=d.get("sentence"),
        engine=d.get("engine"),
        alignment=alignment,
        extra={k: v for k, v in d.items() if k not in _KNOWN | {"alignment"}},
    )


def _from_lhotse(d: Mapping[str, Any], where: str) -> Utterance:
    """A Lhotse ``Recording`` or ``MonoCut`` covering its whole recording, one file source."""
    recording = d.get("recording", d)
    sources = recording.get("sources") or [{}]
    if len(sources) != 1 or sources[0].get("type") != "file":
        raise CorpusError(
            f"expected a Lhotse recording with one file source at {where}, found {sources!r:.120}"
        )
    duration = float(recording.get("duration", 0.0))
    if "recording" in d and (
        float(d.get("start", 0.0)) > 1e-3 or float(d.get("duration", duration)) < duration - 1e-3
    ):
        raise CorpusError(
            f"expected Lhotse cuts covering whole recordings at {where}, found cut {d.get('id')!r} "
            f"at {d.get('start')} s for {d.get('duration')} s of {duration} s (use a recording "
            f"manifest, or trim the audio into files)"
        )
    supervision = (d.get("supervisions") or [{}])[0]
    return Utterance(
        id=str(d.get("id") or recording.get("id")),
        audio=str(sources[0]["source"]),
        duration=duration or None,
        speaker=supervision.get("speaker"),
        text=supervision.get("text"),
    )


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> None:
    """Write a manifest atomically (a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(u.to_json() + "\n" for u in utterances), encoding="utf-8")
    tmp.replace(path)


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a ``.jsonl`` manifest (one JSON object per line: speechtok's own records, or Lhotse
    recordings / cuts, also gzipped as ``.jsonl.gz``) or a fairseq ``.tsv`` manifest (first
    line the audio root, then ``relative_path<TAB>n_samples`` lines)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"expected a manifest file, found nothing at {path}")
    if path.suffix == ".tsv":
        return _read_fairseq_tsv(path)
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")
    out, seen = [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"expected a JSON object on line {n} of {path}, found {e}") from e
        if not isinstance(record, dict):
            raise CorpusError(f"expected a JSON object on line {n} of {path}, found {line:.60}")
        utt = utterance_from_dict(record, f"{path}:{n}")
        if utt.id in seen:
            raise CorpusError(f"expected unique ids in {path}, found {utt.id!r} twice")
        seen.add(utt.id)
        out.append(utt)
    return out


def _read_fairseq_tsv(path: Path) -> list[Utterance]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise CorpusError(f"expected a root directory on the first line of {path}, found nothing")
    root = Path(lines[0].strip())
    if not root.is_absolute():
        root = path.parent / root
    out = []
    for n, line in enumerate(lines[1:], 2):
        rel = line.split("\t")[0]
        out.append(Utterance(id=Path(rel).with_suffix("").as_posix(), audio=str(root / rel)))
        if len(line.split("\t")) > 1 and line.split("\t")[1].strip().isdigit():
            out[-1].extra["n_samples"] = int(line.split("\t")[1])
        elif "\t" in line:
            raise CorpusError(
                f"expected 'path<TAB>n_samples' on line {n} of {path}, found {line!r}"
            )
    return out


def attach_textgrids(utterances: list[Utterance], folder: str | Path, tier: str = "phones") -> None:
    """Set each utterance's alignment from ``folder/<id>.TextGrid`` (or ``<audio stem>``)."""
    folder = Path(folder)
    for u in utterances:
        candidates = [folder / f"{u.id}.TextGrid", folder / f"{Path(u.audio).stem}.TextGrid"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise CorpusError(f"expected a TextGrid for {u.id!r} at {candidates[0]}, found none")
        u.alignment = read_textgrid(found, tier)


def attach_frame_labels(
    utterances: list[Utterance], tsv: str | Path, frame_shift: float = 0.02
) -> None:
    """Set each utterance's alignment from a frame-level phone TSV (``id<TAB>labels``)."""
    table = read_frame_tsv(tsv, frame_shift)
    missing = [u.id for u in utterances if u.id not in table]
    if missing:
        raise CorpusError(
            f"expected frame labels for every utterance in {tsv}, found none for "
            f"{len(missing)} (first: {missing[0]!r})"
        )
    for u in utterances:
        u.alignment = table[u.id]


def load_corpus(source: str | Path, split: str | None = None) -> tuple[Path, list[Utterance]]:
    """The root and utterances of a corpus directory (``DIR/manifest.jsonl``) or of a manifest
    file (any format ``read_manifest`` reads; its folder is the root): all, or one split's (a
    manifest whose records carry no split is taken whole)."""
    source = Path(source)
    root, utts = (
        (source.parent, read_manifest(source))
        if source.is_file()
        else (source, read_manifest(source / MANIFEST))
    )
    if split is None or (source.is_file() and all(u.split is None for u in utts)):
        return root, utts
    return root, [u for u in utts if u.split == split]


def synth_command(folder: str | Path) -> str | None:
    """The ``speechtok corpus synth`` arguments that built a synthesized corpus (for model
    cards), or None for other corpora."""
    path = Path(folder) / CORPUS_INFO
    if not path.is_file():
        return None
    c = json.loads(path.read_text())["config"]
    return (
        f"speechtok corpus synth --sentences {c['sentences']} "
        f"--parallel-sentences {c['parallel_sentences']} --seed {c['seed']}"
        f" --holdout-engine {c.get('holdout_engine') or 'none'}"
        + ("" if c.get("extra_voices") else " --core-voices")
        + (f" --augment {c['augment']}" if c.get("augment") else "")
    )
