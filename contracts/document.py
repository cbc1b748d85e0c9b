"""Reading contract documents: YAML or JSON text -> checked structure -> canonical JSON and hash.

Numbers are read as exact decimals (a YAML or JSON float never comes into being); the canonical
form is RFC 8785 JSON of the checked document with every number as a normalized decimal string,
so key order, whitespace and `0.50` versus `0.5` do not change a contract's hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, validate

from contracts.numbers import DocumentError, exact_decimal, shown
from contracts.schema import (
    MAX_CLAUSES,
    MAX_PAYMENTS,
    NAME,
    ContractSchema,
    DefinitionSchema,
    InputSchema,
    ParameterSchema,
    PaymentSchema,
)
from rules.canonical import decimal_text
from rules.errors import Problem, RuleError
from rules.values import Bands, Keyed, Points, RowSet, Value


class _ExactLoader(yaml.SafeLoader):
    """YAML read as written: decimals as Decimal, only `true`/`false` as booleans, only plain
    decimal integers as integers, dates and anything else as text, and no duplicate keys."""


def _yaml_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    return exact_decimal(str(loader.construct_scalar(node)))


def _yaml_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return int(str(loader.construct_scalar(node)).replace("_", ""))


def _yaml_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            line = key_node.start_mark.line + 1
            raise DocumentError(f"line {line}: the key {shown(key)} appears twice in one mapping")
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _yaml_decimal)
_ExactLoader.add_constructor("tag:yaml.org,2002:int", _yaml_int)
_ExactLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _yaml_mapping)
_ExactLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9_]*)$", "-+0123456789"),
    ("tag:yaml.org,2002:float", r"^[-+]?(?:0|[1-9][0-9_]*)\.[0-9_]+$", "-+0123456789"),
):
    _ExactLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
_ExactLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise DocumentError(f"the key {shown(key)} appears twice in one object")
        mapping[key] = value
    return mapping


def _json_constant(name: str) -> Any:
    raise DocumentError(f"{name} is not a number Settle can hold exactly")


MAX_NESTING = 64  # brackets inside one another: contracts need about 6
MAX_INDENT = 256  # columns of indentation of a YAML block line: contracts need about 16


def _check_nesting(text: str, name: str) -> None:
    """Refuse deep nesting before any parser sees it. The parsers recurse once per level, and the
    recursion limit is no guard: py_ecc, imported for signing, raises it to 100,000 for the whole
    process, past what the C stack holds."""
    depth = 0
    for offset, char in enumerate(text):  # quotes are not tracked: a YAML apostrophe could hide
        if char in "[{":  # brackets from the count, so brackets inside text count too
            depth += 1
            if depth > MAX_NESTING:
                line_number = text.count("\n", 0, offset) + 1
                message = f"line {line_number}: nested deeper than {MAX_NESTING} levels"
                raise RuleError([Problem(name, message)])
        elif char in "]}":
            depth -= 1
    for number, line in enumerate(text.splitlines(), start=1):
        indent = len(line) - len(line.lstrip(" "))
        if indent > MAX_INDENT and line.strip():
            raise RuleError([Problem(name, f"line {number}: indented {indent} columns; the limit "
                                     f"is {MAX_INDENT}")])  # fmt: skip


def read_json(text: str, name: str = "JSON") -> Any:
    """JSON read exactly: decimals as Decimal; exponents, NaN, duplicate keys and deep nesting
    refused (RuleError for nesting, ValueError or DocumentError for the rest)."""
    _check_nesting(text, name)
    return json.loads(
        text,
        parse_float=exact_decimal,
        parse_constant=_json_constant,
        object_pairs_hook=_json_object,
    )


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
    _check_nesting(text, name)
    try:
        if text.lstrip().startswith("{"):
            return read_json(text, name)
        return yaml.load(text, Loader=_ExactLoader)
    except DocumentError as error:
        raise RuleError([Problem(name, str(error))]) from None
    except (ValueError, yaml.YAMLError) as error:
        raise RuleError([Problem(name, f"not readable as YAML or JSON: {error}")]) from None


def read_file(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RuleError([Problem(str(path), f"cannot read the file: {error}")]) from None
    return read_text(text, name=str(path))


@dataclass(frozen=True, slots=True)
class Structure:
    """A document's checked structure: what loaded, every shape problem, and the names of the
    clauses set aside because their own shape is broken (the rest is still checked in full)."""

    document: dict[str, Any] | None
    problems: tuple[Problem, ...]
    set_aside: frozenset[str]


class _Shell(ContractSchema):
    """The contract schema with its clause sections left raw, to be checked clause by clause."""

    parameters = fields.Dict(
        keys=fields.String(), values=fields.Raw(), load_default=dict,
        validate=validate.Length(max=MAX_CLAUSES),
    )  # fmt: skip
    inputs = fields.Dict(
        keys=fields.String(), values=fields.Raw(), load_default=dict,
        validate=validate.Length(max=MAX_CLAUSES),
    )  # fmt: skip
    definitions = fields.List(
        fields.Raw(), required=True, validate=validate.Length(max=MAX_CLAUSES)
    )
    payments = fields.List(
        fields.Raw(), load_default=list, validate=validate.Length(max=MAX_PAYMENTS)
    )


_NAMED_SECTIONS: tuple[tuple[str, type[Schema]], ...] = (
    ("parameters", ParameterSchema),
    ("inputs", InputSchema),
)
_LISTED_SECTIONS: tuple[tuple[str, type[Schema]], ...] = (
    ("definitions", DefinitionSchema),
    ("payments", PaymentSchema),
)


def check_structure(raw: Any, *, name: str) -> Structure:
    """Check the document's shape clause by clause, so one broken clause hides no other."""
    if not isinstance(raw, Mapping):
        message = "a contract document is a mapping of sections (settle, id, title, parties, …)"
        return Structure(None, (Problem(name, message),), frozenset())
    label = _contract_label(raw, name)
    try:
        document: dict[str, Any] = _Shell().load(raw)
    except ValidationError as error:
        problems = [Problem(path, text) for path, text in _flatten(error.messages, raw, ())]
        return Structure(None, tuple(p.located(label) for p in problems), frozenset())
    found: list[Problem] = []
    set_aside: set[str] = set()
    for section, schema in _NAMED_SECTIONS:
        kept = {}
        for key, item in document[section].items():
            loaded = _load_clause(schema, item, (section, str(key)), found)
            if not NAME.regex.match(key):
                found.append(Problem(f"{section}.{key} (the name)", NAME.error))
                loaded = None
            if loaded is None:
                set_aside.add(str(key))
            else:
                kept[key] = loaded
        document[section] = kept
    for section, schema in _LISTED_SECTIONS:
        listed = []
        for index, item in enumerate(document[section]):
            step, _ = _step(document[section], index)
            loaded = _load_clause(schema, item, (section, step), found)
            if loaded is None:
                if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                    set_aside.add(item["name"])
            else:
                listed.append(loaded)
        document[section] = listed
    return Structure(document, tuple(p.located(label) for p in found), frozenset(set_aside))


def _load_clause(
    schema: type[Schema], item: Any, path: tuple[str, ...], found: list[Problem]
) -> dict[str, Any] | None:
    if not isinstance(item, Mapping):
        found.append(Problem(".".join(path), "must be a mapping of its keys"))
        return None
    try:
        loaded: dict[str, Any] = schema().load(item)
    except ValidationError as error:
        found.extend(Problem(p, text) for p, text in _flatten(error.messages, item, path))
        return None
    return loaded


def load_structure(raw: Any, *, name: str) -> dict[str, Any]:
    """The document checked against the contract schema; RuleError lists every shape problem."""
    structure = check_structure(raw, name=name)
    if structure.document is None or structure.problems:
        raise RuleError(structure.problems)
    return structure.document


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
