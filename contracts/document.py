"""Reading contract documents: YAML or JSON text -> checked structure -> canonical JSON and hash.

Numbers are read as exact decimals (a YAML or JSON float never comes into being); the canonical
form is RFC 8785 JSON of the checked document with every number as a normalized decimal string,
so key order, whitespace and `0.50` versus `0.5` do not change a contract's hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import rfc8785
import yaml
from marshmallow import ValidationError

from contracts.schema import ContractSchema
from rules.errors import Problem, RuleError
from rules.values import Bands, Keyed, Points, RowSet, Value


class _ExactLoader(yaml.SafeLoader):
    """YAML that reads decimals as Decimal and leaves dates as the text written."""


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    return Decimal(str(loader.construct_scalar(node)).replace("_", ""))


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _decimal)
_ExactLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


MAX_DOCUMENT_CHARS = 2_000_000


def read_text(text: str, *, name: str) -> Any:
    """The raw document in `text` (JSON when it starts with '{', else YAML)."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise RuleError(
            [
                Problem(
                    name,
                    f"the document is {len(text):,} characters long; the "
                    f"limit is {MAX_DOCUMENT_CHARS:,}",
                )
            ]
        )
    try:
        if text.lstrip().startswith("{"):
            return json.loads(text, parse_float=Decimal)
        return yaml.load(text, Loader=_ExactLoader)
    except (ValueError, yaml.YAMLError) as error:
        raise RuleError([Problem(name, f"not readable as YAML or JSON: {error}")]) from None


def read_file(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RuleError([Problem(str(path), f"cannot read the file: {error}")]) from None
    return read_text(text, name=str(path))


def load_structure(raw: Any, *, name: str) -> dict[str, Any]:
    """The document checked against the contract schema; every shape problem with its path."""
    if not isinstance(raw, Mapping):
        raise RuleError(
            [
                Problem(
                    name,
                    "a contract document is a mapping of sections (settle, id, title, parties, …)",
                )
            ]
        )
    try:
        loaded: dict[str, Any] = ContractSchema().load(raw)
    except ValidationError as error:
        problems = [Problem(path, message) for path, message in _flatten(error.messages, raw, ())]
        raise RuleError(p.located(_contract_label(raw, name)) for p in problems) from None
    return loaded


def _contract_label(raw: Mapping[str, Any], name: str) -> str:
    contract_id = raw.get("id")
    return f"contract {contract_id}" if isinstance(contract_id, str) else name


def _flatten(messages: Any, raw: Any, path: tuple[str, ...]) -> list[tuple[str, str]]:
    if isinstance(messages, list):
        return [(".".join(path), str(m)) for m in messages]
    found: list[tuple[str, str]] = []
    for key, inner in messages.items():
        step, child = _step(raw, key)
        if key == "value" and isinstance(raw, Mapping) and "value" not in raw:
            found += _flatten(inner, raw, path)  # marshmallow's layer for a dict's values
        elif key == "key":
            found += _flatten(inner, raw, (*path[:-1], f"{path[-1]} (the name)"))
        else:
            found += _flatten(inner, child, (*path, step))
    return found


def _step(raw: Any, key: Any) -> tuple[str, Any]:
    if isinstance(raw, list) and isinstance(key, int) and key < len(raw):
        item = raw[key]
        named = item.get("name") if isinstance(item, Mapping) else None
        return (str(named) if isinstance(named, str) else str(key)), item
    if isinstance(raw, Mapping):
        return str(key), raw.get(key)
    return str(key), None


def canonical_form(value: Any) -> Any:
    """The JSON value of a checked document: decimals as normalized strings, dates as ISO text."""
    if isinstance(value, Mapping):
        return {str(k): canonical_form(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical_form(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, int):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"no canonical JSON for {type(value).__name__}")


def decimal_text(value: Decimal) -> str:
    """A decimal as plain digits without exponent or trailing zeros: Decimal('1.50') -> '1.5'."""
    # Textual, not value.normalize(): normalize() rounds to the ambient context's precision.
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "0") else text


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value whose numbers are all decimal strings or integers."""
    return bytes(rfc8785.dumps(canonical_form(value)))


def content_hash(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


def json_value(value: Value | None) -> Any:
    """A value as JSON: decimals as exact strings, dates as ISO text, tables by shape."""
    if value is None:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, Points):
        return [[decimal_text(x), decimal_text(y)] for x, y in value.points]
    if isinstance(value, Bands):
        return [
            {
                "from": decimal_text(b.lower),
                "to": None if b.upper is None else decimal_text(b.upper),
                "rate": decimal_text(b.rate),
            }
            for b in value.bands
        ]
    if isinstance(value, Keyed):
        return {key: {c: json_value(v) for c, v in row} for key, row in value.rows}
    if isinstance(value, RowSet):
        return [{c: json_value(v) for c, v in row} for row in value.rows]
    return value.isoformat()
