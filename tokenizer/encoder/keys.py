"""Checkpoint key tables: rename a foreign state dict into the encoder's names, loudly.

A table is a list of ``(regex, target)`` rules. Every source key must fully match one rule (the
first that matches wins); ``target`` is a ``re`` expansion template, or ``None`` for keys that
are dropped on purpose (training-only parameters). A key no rule knows is an error, and so is a
renamed key the model does not have or a model parameter nothing filled: the importers never
load partially.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from tokenizer.errors import InvalidInputError

KeyRule = tuple[str, str | None]
"""``(regex over a source key, target template or None to drop the key)``."""

_SHOWN = 20
"""Keys listed in an error message before it says how many more there are."""


class CheckpointKeyError(InvalidInputError):
    """A checkpoint holds keys an importer does not know, or lacks keys the model needs."""


def rename_keys(
    state: Mapping[str, Tensor], table: Sequence[KeyRule], source: str
) -> dict[str, Tensor]:
    """``state`` under the encoder's names; raises on keys no rule of ``table`` matches."""
    renamed: dict[str, Tensor] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        known, target = _match(key, table)
        if not known:
            unexpected.append(key)
        elif target is not None:
            if target in renamed:
                raise CheckpointKeyError(
                    f"expected one {source} key per encoder parameter, found two for {target}"
                )
            renamed[target] = value
    if unexpected:
        raise CheckpointKeyError(
            f"expected only {source} keys the import table knows, found unexpected "
            f"{_listing(unexpected)}"
        )
    return renamed


def load_exact(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load ``state`` into ``model``; every parameter exactly once, shapes equal, or raise."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    leftover = sorted(set(state) - set(expected))
    if missing or leftover:
        raise CheckpointKeyError(
            f"expected the {source} checkpoint to fill every encoder parameter exactly, found "
            f"missing {_listing(missing)} and leftover {_listing(leftover)}"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} (model {tuple(v.shape)})"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointKeyError(
            f"expected {source} tensors shaped as the config says, found {_listing(wrong)}"
        )
    model.load_state_dict(dict(state), strict=True)


def _match(key: str, table: Sequence[KeyRule]) -> tuple[bool, str | None]:
    """Whether a rule knows ``key``, and its target name (None: dropped)."""
    for pattern, target in table:
        m = re.fullmatch(pattern, key)
        if m:
            return True, None if target is None else m.expand(target)
    return False, None


def _listing(keys: Sequence[str]) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:_SHOWN])
    more = len(keys) - _SHOWN
    return f"{shown} (and {more} more)" if more > 0 else shown
