"""Clause-by-clause difference between two contract versions, for reviewing an amendment.

Pure: compares the canonical documents. List items are matched by their name (definitions,
payments), id (periods) or effective date (parameter values), so a moved clause is one change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts.model import ContractVersion

_ITEM_KEYS = ("name", "id", "effective")


@dataclass(frozen=True, slots=True)
class Change:
    """One changed leaf: its clause (`definitions.savings`), the path inside, before, after."""

    clause: str
    path: str
    before: Any
    after: Any

    @property
    def kind(self) -> str:
        if self.before is _MISSING:
            return "added"
        if self.after is _MISSING:
            return "removed"
        return "changed"


_MISSING: Any = object()


def diff(old: ContractVersion, new: ContractVersion) -> tuple[Change, ...]:
    """Every difference between two versions, in document order, grouped by clause."""
    before = _leaves(json.loads(old.canonical_json))
    after = _leaves(json.loads(new.canonical_json))
    changes = []
    for path in list(before) + [p for p in after if p not in before]:
        left, right = before.get(path, _MISSING), after.get(path, _MISSING)
        if left != right:
            clause, _, rest = _split_clause(path)
            changes.append(Change(clause, rest, left, right))
    order = _order_changes(json.loads(old.canonical_json), json.loads(new.canonical_json))
    return tuple(changes) + order


def _order_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Change, ...]:
    found = []
    for section in ("definitions", "payments", "periods"):
        names_before = [_item_key(item) for item in old.get(section, [])]
        names_after = [_item_key(item) for item in new.get(section, [])]
        common_before = [n for n in names_before if n in names_after]
        common_after = [n for n in names_after if n in names_before]
        if common_before != common_after:
            found.append(Change(section, "(order)", common_before, common_after))
    return tuple(found)


def _item_key(item: Any) -> str:
    if isinstance(item, Mapping):
        for key in _ITEM_KEYS:
            if isinstance(item.get(key), str):
                return str(item[key])
    return json.dumps(item, sort_keys=True)


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        found: dict[str, Any] = {}
        for key, inner in value.items():
            found |= _leaves(inner, f"{path}.{key}" if path else str(key))
        return found
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        found = {}
        for position, item in enumerate(value):
            key = _item_key(item) if any(k in item for k in _ITEM_KEYS) else str(position)
            found |= _leaves(item, f"{path}[{key}]")
        return found
    return {path: value}


def _split_clause(path: str) -> tuple[str, str, str]:
    """`parameters.track.values[2018-01-01].value` -> ("parameters.track", ".", "values[…]…")."""
    for section in ("definitions", "payments", "periods"):
        if path.startswith(f"{section}["):
            bracket = path.index("]")
            return f"{section}.{path[len(section) + 1 : bracket]}", ".", path[bracket + 2 :]
    head, _, rest = path.partition(".")
    if head in ("parameters", "inputs", "parties"):
        name, _, inner = rest.partition(".")
        return f"{head}.{name}", ".", inner
    return head, ".", rest


def format_diff(old: ContractVersion, new: ContractVersion) -> str:
    """The changes as text: one heading per clause, `+`, `-` or `~` per changed part."""
    changes = diff(old, new)
    lines = [
        f"contract {old.contract.id} {old.content_hash[:12]}… -> "
        f"{new.contract.id} {new.content_hash[:12]}…"
    ]
    if not changes:
        return lines[0] + "\nno changes: the two documents are the same version\n"
    current = None
    for change in changes:
        if change.clause != current:
            current = change.clause
            lines.append(current)
        where = change.path or "(whole)"
        if change.kind == "added":
            lines.append(f"  + {where}: {_show(change.after)}")
        elif change.kind == "removed":
            lines.append(f"  - {where}: {_show(change.before)}")
        else:
            lines.append(f"  ~ {where}: {_show(change.before)} -> {_show(change.after)}")
    return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
