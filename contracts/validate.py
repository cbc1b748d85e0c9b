"""Contract validation: a checked document becomes a typed, fully type-checked `ContractVersion`.

Problems are collected, not raised one by one: every bad parameter value, unknown name, type
error, cycle and forward reference is reported together, each with its clause path and position.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from marshmallow import ValidationError

from contracts.document import check_structure, json_value, read_file
from contracts.model import (
    Aggregate,
    Case,
    Clause,
    Contract,
    ContractVersion,
    Definition,
    Input,
    Parameter,
    ParameterValue,
    Party,
    Payment,
    Period,
    RoundingPolicy,
)
from contracts.numbers import date_value, shown
from contracts.schema import parse_decimal
from outcomes.catalog import (
    EVENT_FIELDS,
    MEASURES,
    MEASURES_WITH_FIELD,
    PERSON_SPANS,
    WEIGHT_BY_MEMBER_MONTHS,
)
from outcomes.filters import FilterError, check_filter
from rules.canonical import canonical_json, content_hash
from rules.check import FUNCTIONS, Scope, check, suggest
from rules.errors import Problem, RuleError
from rules.syntax import KEYWORDS, MAX_EXPRESSION_CHARS, names_used, parse
from rules.types import (
    BOOLEAN,
    COUNT,
    DATE,
    MONEY,
    NUMERIC,
    RATE,
    SCALARS,
    SCORE,
    BandsTable,
    KeyedTable,
    PointsTable,
    Rows,
    Scalar,
    Type,
    unify,
)
from rules.values import Band, Bands, Keyed, Points, RowSet, Value

REQUIRED_ROLES = ("payer", "provider")
MAX_CONTRACT_EXPRESSION_CHARS = 50_000  # bounds the cost of checking a whole contract
MAX_TABLE_ROWS = 10_000


def expression_sources(document: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every expression a checked document holds, with its clause path."""
    for name, spec in document["parameters"].items():
        if "default" in spec:
            yield f"parameters.{name}.default", spec["default"]
    for name, spec in document["inputs"].items():
        where = spec.get("aggregate", {}).get("where")
        if where is not None:
            yield f"inputs.{name}.aggregate.where", where
    for spec in document["definitions"]:
        path = f"definitions.{spec['name']}"
        for key in ("expr", "otherwise"):
            if key in spec:
                yield f"{path}.{key}", spec[key]
        for index, case in enumerate(spec.get("cases", ())):
            yield f"{path}.cases.{index}.when", case["when"]
            yield f"{path}.cases.{index}.then", case["then"]
    for spec in document["payments"]:
        for key in ("when", "amount"):
            if key in spec:
                yield f"payments.{spec['name']}.{key}", spec[key]


def load_contract_file(path: str | Path) -> ContractVersion:
    """Read, check and type-check a contract document; RuleError lists every problem."""
    return load_contract(read_file(path), name=str(path))


def load_contract(raw: Any, *, name: str = "contract") -> ContractVersion:
    version, problems = check_contract(raw, name=name)
    if problems or version is None:
        raise RuleError(problems)
    return version


def check_contract(
    raw: Any, *, name: str = "contract"
) -> tuple[ContractVersion | None, tuple[Problem, ...]]:
    """The contract version, or None and every problem found (each with its path)."""
    structure = check_structure(raw, name=name)
    document = structure.document
    if document is None:
        return None, structure.problems
    # An expression over the per-expression limit is refused at once, unparsed: count it at that.
    written = sum(
        min(len(source), MAX_EXPRESSION_CHARS) for _, source in expression_sources(document)
    )
    if written > MAX_CONTRACT_EXPRESSION_CHARS:
        problem = Problem(
            f"contract {document['id']}",
            f"its expressions total {written:,} characters; the limit is "
            f"{MAX_CONTRACT_EXPRESSION_CHARS:,} (the longest template has under 2,000): checking "
            "them would take too long",
        )
        return None, (*structure.problems, problem)
    builder = _Builder(document, structure.set_aside)
    contract = builder.build()
    label = f"contract {document['id']}"
    problems = structure.problems + tuple(p.located(label) for p in builder.problems)
    if problems:
        return None, problems
    canonical = canonical_json(_with_typed_values(document, contract))
    return ContractVersion(contract, content_hash(canonical), canonical), ()


def _with_typed_values(document: dict[str, Any], contract: Contract) -> dict[str, Any]:
    """The document with parameter values and input defaults written as their typed values, so
    that `"0.50"` and `0.5` (or `"0.0"` and `0`) are the same contract version."""
    parameters = {p.name: p for p in contract.parameters}
    inputs = {i.name: i for i in contract.inputs}
    typed = dict(document)
    typed["parameters"] = {
        name: {
            **spec,
            "values": [
                {**entry, "value": json_value(parameters[name].values[index].value)}
                for index, entry in enumerate(spec["values"])
            ],
        }
        for name, spec in document["parameters"].items()
    }
    typed["inputs"] = {
        name: _typed_input(spec, inputs[name]) for name, spec in document["inputs"].items()
    }
    typed["payments"] = [
        {("from" if key == "from_" else key): value for key, value in payment.items()}
        for payment in document["payments"]
    ]
    written: dict[str, Any] = _without_nulls(typed)
    return written


def _typed_input(spec: dict[str, Any], declared: Input) -> dict[str, Any]:
    typed_values = {"default": declared.default, "minimum": declared.minimum,
                    "maximum": declared.maximum}  # fmt: skip
    return {
        **spec,
        **{key: json_value(value) for key, value in typed_values.items() if key in spec},
    }


def _without_nulls(value: Any) -> Any:
    """The document as it would be written: a key left unset is absent, not null, so the
    canonical JSON reads back as the same contract."""
    if isinstance(value, dict):
        return {key: _without_nulls(inner) for key, inner in value.items() if inner is not None}
    if isinstance(value, list):
        return [_without_nulls(inner) for inner in value]
    return value


def scalar_value(kind: Scalar, raw: Any) -> Value:
    """A raw document value as a value of the declared scalar type; ValueError says why not."""
    if kind in NUMERIC:
        if kind == RATE and isinstance(raw, str) and raw.endswith("%"):
            return _percent(raw)
        try:
            number = parse_decimal(raw)
        except ValidationError as error:
            raise ValueError(" ".join(str(m) for m in error.messages)) from None
        if kind == COUNT and (number != number.to_integral_value() or number < 0):
            raise ValueError(f"a count is a whole number, zero or more, not {shown(raw)}")
        return number
    if kind == BOOLEAN:
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, not {shown(raw)}")
        return raw
    if kind == DATE:
        date = date_value(raw)
        if date is None:
            raise ValueError(f"expected a date YYYY-MM-DD, not {shown(raw)}")
        return date
    if not isinstance(raw, str):
        raise ValueError(f"expected text, not {shown(raw)}")
    return raw


def _percent(raw: str) -> Decimal:
    """A rate written as a percentage, "60%" or "2.5%", as the decimal it stands for."""
    try:
        number = parse_decimal(raw[:-1])
    except ValidationError as error:
        raise ValueError(" ".join(str(m) for m in error.messages)) from None
    return number.scaleb(-2)


def type_of(
    declared: str, table: Mapping[str, Any] | None = None, columns: Mapping[str, str] | None = None
) -> Type:
    if declared == "table":
        assert table is not None
        if table["kind"] == "points":
            return PointsTable(SCALARS[table["x"]], SCALARS[table["y"]])
        if table["kind"] == "bands":
            return BandsTable(SCALARS[table["bound"]])
        return KeyedTable(tuple((c, SCALARS[t]) for c, t in table["columns"].items()))
    if declared == "rows":
        assert columns is not None
        return Rows(tuple((c, SCALARS[t]) for c, t in columns.items()))
    return SCALARS[declared]


def table_value(kind: Type, raw: Any) -> Value:
    """A table parameter's value in the shape its type declares."""
    if isinstance(raw, list | Mapping) and len(raw) > MAX_TABLE_ROWS:
        raise ValueError(f"a table has at most {MAX_TABLE_ROWS:,} rows, not {len(raw):,}")
    if isinstance(kind, PointsTable):
        if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 2 for p in raw):
            raise ValueError("a points table is a list of [x, y] pairs")
        return Points(tuple((_number(kind.x, x), _number(kind.y, y)) for x, y in raw))
    if isinstance(kind, BandsTable):
        if not isinstance(raw, list) or not all(isinstance(b, Mapping) for b in raw):
            raise ValueError(
                "a bands table is a list of {from, to, rate} (the last 'to' may be left out)"
            )
        bands = []
        for position, band in enumerate(raw, start=1):
            unknown = set(band) - {"from", "to", "rate"}
            if unknown or "from" not in band or "rate" not in band:
                raise ValueError(f"band {position} needs 'from', 'rate' and optionally 'to'")
            upper = band.get("to")
            bands.append(
                Band(
                    _number(kind.bound, band["from"]),
                    None if upper is None else _number(kind.bound, upper),
                    _number(RATE, band["rate"]),
                )
            )
        return Bands(tuple(bands))
    assert isinstance(kind, KeyedTable)
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError("a keyed table maps each key to a row of columns")
    return Keyed(
        tuple((str(key), _cells(kind.columns, row, f"row '{key}'")) for key, row in raw.items())
    )


def _cells(
    columns: tuple[tuple[str, Scalar], ...], row: Any, label: str
) -> tuple[tuple[str, Value], ...]:
    """One row's cells, typed by its columns; the row must have exactly those columns."""
    if not isinstance(row, Mapping) or set(row) != {c for c, _ in columns}:
        wanted = ", ".join(c for c, _ in columns)
        raise ValueError(f"{label} must have exactly the columns {wanted}")
    cells = []
    for column, column_type in columns:
        try:
            cells.append((column, scalar_value(column_type, row[column])))
        except ValueError as error:
            raise ValueError(f"{label}, column '{column}': {error}") from None
    return tuple(cells)


def _number(kind: Scalar, raw: Any) -> Decimal:
    value = scalar_value(kind, raw)
    if not isinstance(value, Decimal):
        raise ValueError(f"table cells here are numbers ({kind}), not {shown(raw)}")
    return value


def rows_value(kind: Rows, raw: Any) -> Value:
    """Row-set input values: a list of objects with exactly the declared columns."""
    if not isinstance(raw, list):
        raise ValueError("rows are a list of objects, one per row")
    return RowSet(
        tuple(_cells(kind.columns, row, f"row {number}") for number, row in enumerate(raw, 1))
    )


def value_of(kind: Type, raw: Any) -> Value:
    if isinstance(kind, Scalar):
        return scalar_value(kind, raw)
    if isinstance(kind, Rows):
        return rows_value(kind, raw)
    return table_value(kind, raw)


class _Builder:
    def __init__(self, document: dict[str, Any], set_aside: frozenset[str] = frozenset()) -> None:
        self.document = document
        self.set_aside = set_aside  # names of clauses with a broken shape: known, not checked
        self.in_cycles: set[str] = set()  # reported as a cycle; their own clauses are not checked
        self.problems: list[Problem] = []
        self.types: dict[str, Type] = {}
        self.kinds: dict[str, str] = {}  # name -> "parameter" | "input" | "definition"

    def fail(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def _report_cycles(self, graph: Mapping[str, tuple[str, ...]], where: str, what: str) -> bool:
        """Report each cycle once, with its path; its members' clauses are not checked further."""
        cycles = _find_cycles(graph)
        self.in_cycles |= {name for cycle in cycles for name in cycle}
        for cycle in cycles:
            message = f"{what} refer to each other in a cycle: " + " -> ".join(cycle)
            self.problems.append(self._at_reference(where.format(cycle[0]), cycle[1], message))
        return bool(cycles)

    def _at_reference(self, clause: str, name: str, message: str) -> Problem:
        """The problem placed at the first use of `name` in the clause (or clauses) at `clause`,
        with its caret; at the clause itself when the use cannot be found."""
        for path, source in expression_sources(self.document):
            if path != clause and not path.startswith(clause + "."):
                continue
            try:
                uses = [n for n in names_used(parse(source)) if n.name == name]
            except RuleError:
                continue
            if uses:
                return Problem(path, message, source, uses[0].span)
        return Problem(clause, message)

    def _scope(
        self,
        types: Mapping[str, Type],
        optional: frozenset[str] = frozenset(),
        unavailable: Mapping[str, str] | None = None,
    ) -> Scope:
        unchecked = (self.set_aside | self.in_cycles) - set(types)
        return Scope(types, optional, unavailable or {}, unchecked)

    def build(self) -> Contract:
        document = self.document
        parties = tuple(
            Party(role, p["name"], p["account"]) for role, p in document["parties"].items()
        )
        for role in REQUIRED_ROLES:
            if role not in document["parties"]:
                self.fail(f"parties.{role}", f"the contract needs a '{role}' party")
        periods = tuple(Period(p["id"], p["start"], p["end"]) for p in document["periods"])
        self._check_unique([p.id for p in periods], "periods", "period id")
        rounding = document["rounding"]
        policy = RoundingPolicy(
            rounding["mode"],
            rounding["payments"]["places"],
            rounding["payments"]["mode"] or rounding["mode"],
        )
        self._claim_names()
        parameters = self._parameters()
        self._values_in_force(parameters, periods)
        inputs = self._inputs()
        definitions = self._definitions()
        payments = self._payments(set(document["parties"]))
        return Contract(
            document["id"],
            document["title"],
            document["description"],
            document["currency"],
            parties,
            periods,
            policy,
            parameters,
            inputs,
            definitions,
            payments,
        )

    def _check_unique(self, names: list[str], where: str, what: str) -> None:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                self.fail(where, f"the {what} '{name}' is used twice")
            seen.add(name)

    def _values_in_force(
        self, parameters: tuple[Parameter, ...], periods: tuple[Period, ...]
    ) -> None:
        """Every parameter without a default has a value in force at every period's start."""
        for parameter in parameters:
            if parameter.default is not None or not parameter.values:
                continue
            for period in periods:
                if parameter.in_force(period.start) is None:
                    first = min(v.effective for v in parameter.values)
                    self.fail(
                        f"parameters.{parameter.name}.values",
                        f"no value in force on {period.start.isoformat()} (period {period.id}); "
                        f"the first takes effect {first.isoformat()}",
                    )

    def _claim_names(self) -> None:
        sections = (
            ("parameters", list(self.document["parameters"])),
            ("inputs", list(self.document["inputs"])),
            ("definitions", [d["name"] for d in self.document["definitions"]]),
        )
        for section, names in sections:
            for name in names:
                where = f"{section}.{name}"
                if name in KEYWORDS or name in FUNCTIONS:
                    self.fail(
                        where,
                        f"'{name}' is a reserved word of the rule language; choose another name",
                    )
                elif name in self.kinds:
                    self.fail(where, f"'{name}' is already the name of a {self.kinds[name]}")
                else:
                    self.kinds[name] = section[:-1]

    def _clause(
        self, where: str, source: str, scope: Scope, expected: Type | None
    ) -> Clause | None:
        try:
            expr = parse(source)
        except RuleError as error:
            self.problems.extend(p.located(where) for p in error.problems)
            return None
        found, problems = check(source, expr, scope)
        self.problems.extend(p.located(where) for p in problems)
        if found is not None and expected is not None and unify(expected, found) != expected:
            self.problems.append(
                Problem(where, f"is {found}, but must be {expected}", source, expr.span)
            )
            return None
        return Clause(where, source, expr) if not problems else None

    def _parameters(self) -> tuple[Parameter, ...]:
        declared = self.document["parameters"]
        for name, spec in declared.items():
            self.types[name] = type_of(spec["type"], spec.get("table"))
        order = self._parameter_order(declared)
        built: dict[str, Parameter] = {}
        for name in order:
            spec = declared[name]
            kind = self.types[name]
            values = tuple(
                self._parameter_value(name, index, kind, spec, entry)
                for index, entry in enumerate(spec["values"])
            )
            default = None
            if "default" in spec and name not in self.in_cycles:  # the cycle is the problem
                others = {n: self.types[n] for n in declared if n != name}
                default = self._clause(
                    f"parameters.{name}.default", spec["default"], self._scope(others), kind
                )
            built[name] = Parameter(
                name,
                kind,
                spec["description"],
                tuple(v for v in values if v is not None),
                default,
                spec["reference"],
                tuple(spec.get("one_of", ())),
            )
        return tuple(built[name] for name in order)

    def _parameter_order(self, declared: Mapping[str, Any]) -> list[str]:
        """Parameters with defaults after the parameters their defaults name; cycles reported."""
        graph = {
            name: self._references(spec.get("default"), declared) for name, spec in declared.items()
        }
        if self._report_cycles(graph, "parameters.{}.default", "parameter defaults"):
            return list(declared)
        return list(graphlib.TopologicalSorter(graph).static_order())

    @staticmethod
    def _references(source: str | None, names: Mapping[str, Any]) -> tuple[str, ...]:
        if source is None:
            return ()
        try:
            expr = parse(source)
        except RuleError:
            return ()
        return tuple(dict.fromkeys(n.name for n in names_used(expr) if n.name in names))

    def _parameter_value(
        self, name: str, index: int, kind: Type, spec: Mapping[str, Any], entry: Mapping[str, Any]
    ) -> ParameterValue | None:
        where = f"parameters.{name}.values.{index}.value"
        try:
            value = value_of(kind, entry["value"])
        except ValueError as error:
            self.fail(where, str(error))
            return None
        one_of = spec.get("one_of")
        if one_of is not None and value not in one_of:
            self.fail(where, f"{shown(value)} is not one of {', '.join(map(repr, one_of))}")
        return ParameterValue(value, entry["effective"], entry["reference"])

    def _inputs(self) -> tuple[Input, ...]:
        built = []
        for name, spec in self.document["inputs"].items():
            kind = type_of(spec["type"], columns=spec.get("columns"))
            self.types[name] = kind
            default = None
            if "default" in spec:
                try:
                    default = value_of(kind, spec["default"])
                except ValueError as error:
                    self.fail(f"inputs.{name}.default", str(error))
            aggregate = None
            if "aggregate" in spec:
                aggregate = self._aggregate(name, kind, spec["aggregate"])
            low, high = (self._bound(name, kind, spec, key) for key in ("minimum", "maximum"))
            built.append(
                Input(name, kind, spec["description"], spec["optional"], default, aggregate,
                      low, high)
            )  # fmt: skip
        return tuple(built)

    def _bound(self, name: str, kind: Type, spec: Mapping[str, Any], key: str) -> Decimal | None:
        if key not in spec:
            return None
        if kind not in NUMERIC:
            self.fail(f"inputs.{name}.{key}", f"only a number has a {key}, not {kind}")
            return None
        try:
            bound = scalar_value(kind, spec[key])
        except ValueError as error:
            self.fail(f"inputs.{name}.{key}", str(error))
            return None
        assert isinstance(bound, Decimal)
        return bound

    def _aggregate(self, name: str, kind: Type, spec: Mapping[str, Any]) -> Aggregate | None:
        where = f"inputs.{name}.aggregate"
        events = spec["events"]
        fields = EVENT_FIELDS.get(events)
        if fields is None:
            self.fail(
                f"{where}.events",
                f"unknown event type '{events}'{suggest(events, EVENT_FIELDS)}; the types are: "
                + ", ".join(sorted(EVENT_FIELDS)),
            )
            return None
        measure = spec["measure"]
        if measure not in MEASURES:
            self.fail(
                f"{where}.measure",
                f"unknown measure '{measure}'; the measures are: " + ", ".join(sorted(MEASURES)),
            )
            return None
        if measure == "member_months" and events != "eligibility":
            self.fail(f"{where}.measure", "member_months counts months of eligibility spans")
            return None
        field = spec.get("field")
        measured = self._measured_type(where, measure, field, fields, spec.get("weight_by"))
        within = spec.get("within")
        if within is not None:
            self._check_within(where, events, measure, field, fields)
        grouped_fields = EVENT_FIELDS["episode"] if within else fields
        for column in spec["group_by"]:
            if column not in grouped_fields:
                self.fail(f"{where}.group_by", f"'{within or events}' has no field '{column}'")
        weight_by = spec.get("weight_by")
        if weight_by == WEIGHT_BY_MEMBER_MONTHS and events not in PERSON_SPANS:
            self.fail(f"{where}.weight_by", "member_months weights events that last a span and "
                      f"name a person: {', '.join(PERSON_SPANS)}")  # fmt: skip
        if spec.get("population") == "attributed" and "patient_id" not in fields:
            self.fail(f"{where}.population", f"'{events}' events name no person to attribute")
        where_clause = None
        if "where" in spec:
            where_clause = self._clause(
                f"{where}.where",
                spec["where"],
                self._scope({**self._parameter_types(), **fields}),
                BOOLEAN,
            )
            if where_clause is not None:
                try:
                    check_filter(where_clause.expr, fields)
                except FilterError as error:
                    self.fail(f"{where}.where", str(error))
        cap = spec.get("per_person_cap")
        if cap is not None:
            self._check_cap(f"{where}.per_person_cap", cap)
            if measure != "sum" or spec["group_by"] or within:
                self.fail(f"{where}.per_person_cap", "a per-person cap truncates an ungrouped "
                          "sum of money")  # fmt: skip
        episode_cap = spec.get("per_episode_cap")
        if episode_cap is not None:
            self._check_cap(f"{where}.per_episode_cap", episode_cap)
            if within != "episode":
                self.fail(f"{where}.per_episode_cap", "a per-episode cap needs 'within: episode'")
        if spec.get("episode_rule") is not None and within != "episode":
            self.fail(f"{where}.episode_rule", "an episode rule chooses episodes: it needs "
                      "'within: episode'")  # fmt: skip
        self._aggregate_result_type(where, kind, measured, spec, grouped_fields)
        return Aggregate(
            events,
            measure,
            field,
            where_clause,
            tuple(spec["group_by"]),
            spec.get("value_column"),
            weight_by,
            cap,
            spec.get("population"),
            within,
            episode_cap,
            spec.get("episode_rule"),
        )

    def _check_within(
        self, where: str, events: str, measure: str, field: str | None, fields: Mapping[str, Scalar]
    ) -> None:
        sums_money = measure == "sum" and fields.get(field or "") == MONEY
        if events != "claim_line" or not sums_money:
            self.fail(f"{where}.within", "within: episode sums a money field of claim lines "
                      "(events: claim_line, measure: sum)")  # fmt: skip

    def _check_cap(self, where: str, cap: str) -> None:
        if self.types.get(cap) != MONEY or self.kinds.get(cap) != "parameter":
            self.fail(where, f"'{cap}' must be a money parameter")

    def _parameter_types(self) -> dict[str, Type]:
        return {n: t for n, t in self.types.items() if self.kinds.get(n) == "parameter"}

    def _measured_type(
        self,
        where: str,
        measure: str,
        field: str | None,
        fields: Mapping[str, Scalar],
        weight_by: str | None,
    ) -> Type | None:
        if measure in MEASURES_WITH_FIELD or measure == "count_distinct":
            if field is None or field not in fields:
                self.fail(
                    f"{where}.field",
                    f"'{measure}' needs a 'field' of the event (one of {', '.join(fields)})",
                )
                return None
            if measure == "count_distinct":
                return COUNT
            if fields[field] not in NUMERIC:
                self.fail(
                    f"{where}.field", f"cannot take '{measure}' of '{field}', a {fields[field]}"
                )
                return None
            weight_ok = weight_by == WEIGHT_BY_MEMBER_MONTHS or (
                weight_by is not None and fields.get(weight_by) == COUNT
            )
            if measure == "weighted_average" and not weight_ok:
                self.fail(f"{where}.weight_by", "'weighted_average' needs 'weight_by', a count "
                          "field or member_months")  # fmt: skip
            return fields[field]
        return COUNT

    def _aggregate_result_type(
        self,
        where: str,
        kind: Type,
        measured: Type | None,
        spec: Mapping[str, Any],
        fields: Mapping[str, Scalar],
    ) -> None:
        if measured is None:
            return
        group_by = spec["group_by"]
        if not group_by:
            if kind != measured and not (kind == SCORE and measured == SCORE):
                self.fail(where, f"the input is {kind}, but '{spec['measure']}' gives {measured}")
            return
        value_column = spec.get("value_column")
        if not isinstance(kind, Rows) or value_column is None:
            self.fail(
                where,
                "an aggregate with group_by fills a rows input; name the "
                "measured column with 'value_column'",
            )
            return
        expected = {**{g: fields[g] for g in group_by if g in fields}, value_column: measured}
        if dict(kind.columns) != expected:
            self.fail(
                where,
                "the rows' columns must be the group_by fields and the value "
                "column: " + ", ".join(f"{c}: {t}" for c, t in expected.items()),
            )

    def _definitions(self) -> tuple[Definition, ...]:
        specs = self.document["definitions"]
        names = [spec["name"] for spec in specs]
        graph = {spec["name"]: self._definition_references(spec, names) for spec in specs}
        self._report_cycles(graph, "definitions.{}", "definitions")
        optional = frozenset(self._declared_inputs())
        built = []
        for position, spec in enumerate(specs):
            name = spec["name"]
            later = {
                n: f"'{n}' is defined after this definition (definitions.{n}); a "
                "definition may only use names defined before it"
                for n in names[position + 1 :]
            }
            later[name] = f"'{name}' cannot refer to itself"
            scope = self._scope(dict(self.types), optional, later)
            kind = SCALARS[spec["type"]]
            if name not in self.in_cycles:  # a cycle is reported once, with its path
                built.append(self._definition(spec, scope, kind))
            self.types[name] = kind
        return tuple(d for d in built if d is not None)

    def _declared_inputs(self) -> list[str]:
        return [name for name, spec in self.document["inputs"].items() if spec["optional"]]

    def _definition_references(self, spec: Mapping[str, Any], names: list[str]) -> tuple[str, ...]:
        sources = [spec.get("expr"), spec.get("otherwise")]
        sources += [part for case in spec.get("cases", ()) for part in (case["when"], case["then"])]
        found: dict[str, None] = {}
        for source in sources:
            for name in self._references(source, dict.fromkeys(names)):
                found[name] = None
        return tuple(found)

    def _definition(self, spec: Mapping[str, Any], scope: Scope, kind: Scalar) -> Definition | None:
        where = f"definitions.{spec['name']}"
        expr = otherwise = None
        cases: list[Case] = []
        if "expr" in spec:
            expr = self._clause(f"{where}.expr", spec["expr"], scope, kind)
        else:
            for index, case in enumerate(spec["cases"]):
                when = self._clause(f"{where}.cases.{index}.when", case["when"], scope, BOOLEAN)
                then = self._clause(f"{where}.cases.{index}.then", case["then"], scope, kind)
                if when is not None and then is not None:
                    cases.append(Case(when, then))
            otherwise = self._clause(f"{where}.otherwise", spec["otherwise"], scope, kind)
        return Definition(
            spec["name"],
            kind,
            spec["description"],
            spec["reference"],
            expr,
            tuple(cases),
            otherwise,
        )

    def _payments(self, roles: set[str]) -> tuple[Payment, ...]:
        scope = self._scope(dict(self.types), frozenset(self._declared_inputs()))
        self._check_unique(
            [p["name"] for p in self.document["payments"]], "payments", "payment name"
        )
        built = []
        for spec in self.document["payments"]:
            where = f"payments.{spec['name']}"
            for key, role in (("from", spec["from_"]), ("to", spec["to"])):
                if role not in roles:
                    self.fail(
                        f"{where}.{key}",
                        f"unknown party '{role}'; the parties are: " + ", ".join(sorted(roles)),
                    )
            if spec["from_"] == spec["to"]:
                self.fail(f"{where}.to", "a payment goes from one party to another")
            when = None
            if "when" in spec:
                when = self._clause(f"{where}.when", spec["when"], scope, BOOLEAN)
            amount = self._clause(f"{where}.amount", spec["amount"], scope, MONEY)
            if amount is not None:
                built.append(
                    Payment(spec["name"], when, spec["from_"], spec["to"], amount, spec["memo"])
                )
        return tuple(built)


def _find_cycles(graph: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Every distinct cycle met by an iterative depth-first search, each as a path [a, b, …, a]."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for root in graph:
        if state.get(root):
            continue
        path: list[str] = [root]
        iterators = [iter(graph[root])]
        state[root] = 1
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iterators.pop()
            elif nxt in graph and state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    cycles.append(cycle)
            elif nxt in graph and not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iterators.append(iter(graph[nxt]))
    return cycles
