"""The structure of a contract document (YAML or JSON), checked by marshmallow.

This checks shape only: required keys, kinds of values, names. Expressions, types and parameter
values are checked by `contracts.validate`, which reports the same kind of path.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from contracts.numbers import DocumentError, date_value, exact_decimal, shown
from rules.syntax import MAX_LITERAL_DIGITS

FORMAT = "settle.contract/v1"
MAX_VALUE_DIGITS = MAX_LITERAL_DIGITS  # the same bound as a number written in an expression
NAME = validate.Regexp(
    r"^[a-z][a-z0-9_]{0,62}$",
    error="must be a lower-case name: letters, digits and _, starting with a letter",
)
IDENTIFIER = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$", error="must be letters, digits, '.', '_', ':' or '-'"
)
MODES = ("half_even", "half_up", "half_down", "down", "up", "floor", "ceiling")
TYPE_NAMES = ("money", "rate", "count", "score", "date", "boolean", "text", "table", "rows")
MAX_CLAUSES = 1000  # parameters, inputs or definitions in one document: bounds validation cost
MAX_PAYMENTS = 100
MAX_CASES = 50
NUMERIC_TYPE_NAMES = ("money", "rate", "count", "score")
SCALAR_TYPE_NAMES = ("money", "rate", "count", "score", "date", "boolean", "text")


def parse_decimal(value: Any) -> Decimal:
    """A document's number: a decimal string or an integer (or a YAML decimal), never a float."""
    if isinstance(value, bool | float):
        raise ValidationError(
            'write decimal numbers as strings, such as "0.5" (a float cannot hold money exactly)'
        )
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = exact_decimal(value)
        except DocumentError:
            raise ValidationError(
                f"not a decimal number written out in full: {shown(value)}"
            ) from None
    else:
        raise ValidationError(f"not a decimal number: {shown(value)}")
    if not number.is_finite():
        raise ValidationError(f"not a finite number: {shown(value)}")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent > 0:  # Decimal("1E+400"), from a caller's own JSON parse: 401 digits written
        raise ValidationError(f"write the number out in full, without an exponent: {shown(value)}")
    written_digits = len(number.as_tuple().digits) + max(exponent, 0)
    if written_digits > MAX_VALUE_DIGITS or exponent < -MAX_VALUE_DIGITS:
        # A Decimal such as 1E+400 (from a caller's own JSON parse) would be 401 digits written.
        raise ValidationError(f"more than {MAX_VALUE_DIGITS} digits: {shown(value)}")
    return number


class IsoDate(fields.Field):  # type: ignore[type-arg]
    """A calendar date written YYYY-MM-DD."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        date = date_value(value)
        if date is not None:
            return date
        raise ValidationError(f"not a date (YYYY-MM-DD): {shown(value)}")


class AnyValue(fields.Field):  # type: ignore[type-arg]
    """A parameter or default value; its type is checked against the declaration later."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, float):
            raise ValidationError(
                'write decimal numbers as strings, such as "0.5" (a float '
                "cannot hold money exactly)"
            )
        return value


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class PartySchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    account = fields.String(required=True, validate=IDENTIFIER)


class PeriodSchema(_Strict):
    id = fields.String(required=True, validate=IDENTIFIER)
    start = IsoDate(required=True)
    end = IsoDate(required=True)

    @validates_schema
    def _ends_after_start(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["end"] < data["start"]:
            raise ValidationError("the period ends before it starts", "end")


class PaymentRoundingSchema(_Strict):
    places = fields.Integer(required=True, strict=True, validate=validate.Range(0, 12))
    mode = fields.String(load_default=None, allow_none=False, validate=validate.OneOf(MODES))


class RoundingSchema(_Strict):
    mode = fields.String(required=True, validate=validate.OneOf(MODES))
    payments = fields.Nested(PaymentRoundingSchema, required=True)


class TableShapeSchema(_Strict):
    kind = fields.String(required=True, validate=validate.OneOf(("points", "bands", "keyed")))
    x = fields.String(validate=validate.OneOf(NUMERIC_TYPE_NAMES))
    y = fields.String(validate=validate.OneOf(NUMERIC_TYPE_NAMES))
    bound = fields.String(validate=validate.OneOf(NUMERIC_TYPE_NAMES))
    columns = fields.Dict(
        keys=fields.String(validate=NAME),
        values=fields.String(validate=validate.OneOf(SCALAR_TYPE_NAMES)),
    )

    @validates_schema
    def _shape_has_its_keys(self, data: dict[str, Any], **kwargs: Any) -> None:
        needed = {"points": ("x", "y"), "bands": ("bound",), "keyed": ("columns",)}[data["kind"]]
        for key in needed:
            if key not in data:
                raise ValidationError(f"a {data['kind']} table needs '{key}'", key)
        for key in set(data) - {"kind", *needed}:
            raise ValidationError(f"a {data['kind']} table has no '{key}'", key)


class ParameterValueSchema(_Strict):
    value = AnyValue(required=True, allow_none=False)
    effective = IsoDate(required=True)
    reference = fields.String(required=True, validate=validate.Length(min=1, max=500))


class ParameterSchema(_Strict):
    type = fields.String(required=True, validate=validate.OneOf(TYPE_NAMES[:-1]))
    description = fields.String(required=True, validate=validate.Length(min=1, max=500))
    table = fields.Nested(TableShapeSchema)
    one_of = fields.List(fields.String(), validate=validate.Length(min=1))
    values = fields.List(fields.Nested(ParameterValueSchema), load_default=list)
    default = fields.String(validate=validate.Length(min=1))
    reference = fields.String(load_default="", validate=validate.Length(max=500))

    @validates_schema
    def _has_a_value_or_a_default(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("values") and "default" not in data:
            raise ValidationError(
                "give 'values' (with effective dates) or a 'default' expression", "values"
            )
        if data["type"] == "table" and "table" not in data:
            raise ValidationError("a table parameter needs its 'table' shape", "table")
        if data["type"] != "table" and "table" in data:
            raise ValidationError("only a table parameter has a 'table' shape", "table")
        if data["type"] != "text" and "one_of" in data:
            raise ValidationError("'one_of' lists the allowed texts of a text parameter", "one_of")


class AggregateSchema(_Strict):
    events = fields.String(required=True)
    measure = fields.String(required=True)
    field = fields.String()
    where = fields.String()
    group_by = fields.List(fields.String(), load_default=list)
    value_column = fields.String(validate=NAME)
    weight_by = fields.String()
    per_person_cap = fields.String(validate=NAME)
    population = fields.String(validate=validate.OneOf(("attributed", "all")))
    within = fields.String(validate=validate.OneOf(("episode",)))
    per_episode_cap = fields.String(validate=NAME)
    episode_rule = fields.String(validate=validate.Length(min=1, max=200))


class InputSchema(_Strict):
    type = fields.String(
        required=True, validate=validate.OneOf(tuple(t for t in TYPE_NAMES if t != "table"))
    )
    description = fields.String(required=True, validate=validate.Length(min=1, max=500))
    columns = fields.Dict(
        keys=fields.String(validate=NAME),
        values=fields.String(validate=validate.OneOf(SCALAR_TYPE_NAMES)),
    )
    optional = fields.Boolean(load_default=False, truthy={True}, falsy={False})
    default = AnyValue()
    minimum = AnyValue()
    maximum = AnyValue()
    aggregate = fields.Nested(AggregateSchema)

    @validates_schema
    def _rows_have_columns(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["type"] == "rows" and not data.get("columns"):
            raise ValidationError("a rows input needs its 'columns'", "columns")
        if data["type"] != "rows" and "columns" in data:
            raise ValidationError("only a rows input has 'columns'", "columns")
        if data.get("optional") and "default" in data:
            raise ValidationError("an input is optional or has a default, not both", "default")


class CaseSchema(_Strict):
    when = fields.String(required=True, validate=validate.Length(min=1))
    then = fields.String(required=True, validate=validate.Length(min=1))


class DefinitionSchema(_Strict):
    name = fields.String(required=True, validate=NAME)
    type = fields.String(required=True, validate=validate.OneOf(SCALAR_TYPE_NAMES))
    description = fields.String(required=True, validate=validate.Length(min=1, max=500))
    reference = fields.String(load_default="")
    expr = fields.String(validate=validate.Length(min=1))
    cases = fields.List(fields.Nested(CaseSchema), validate=validate.Length(min=1, max=MAX_CASES))
    otherwise = fields.String(validate=validate.Length(min=1))

    @validates_schema
    def _expr_or_cases(self, data: dict[str, Any], **kwargs: Any) -> None:
        has_expr, has_cases = "expr" in data, "cases" in data
        if has_expr == has_cases:
            raise ValidationError("give either 'expr' or 'cases' with 'otherwise'", "expr")
        if has_cases and "otherwise" not in data:
            raise ValidationError("cases need an 'otherwise'", "otherwise")
        if has_expr and "otherwise" in data:
            raise ValidationError("'otherwise' goes with 'cases'", "otherwise")


class PaymentSchema(_Strict):
    name = fields.String(required=True, validate=NAME)
    when = fields.String(validate=validate.Length(min=1))
    from_ = fields.String(required=True, data_key="from", validate=NAME)
    to = fields.String(required=True, validate=NAME)
    amount = fields.String(required=True, validate=validate.Length(min=1))
    memo = fields.String(required=True, validate=validate.Length(min=1, max=500))


class ContractSchema(_Strict):
    settle = fields.String(
        required=True, validate=validate.Equal(FORMAT, error=f"this reader understands '{FORMAT}'")
    )
    id = fields.String(required=True, validate=IDENTIFIER)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="")
    currency = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Z]{3}$", error="must be an ISO 4217 code such as USD"),
    )
    parties = fields.Dict(
        keys=fields.String(validate=NAME),
        values=fields.Nested(PartySchema),
        required=True,
        validate=validate.Length(min=2),
    )
    periods = fields.List(
        fields.Nested(PeriodSchema), required=True, validate=validate.Length(min=1)
    )
    rounding = fields.Nested(RoundingSchema, required=True)
    parameters = fields.Dict(
        validate=validate.Length(max=MAX_CLAUSES),
        keys=fields.String(validate=NAME),
        values=fields.Nested(ParameterSchema),
        load_default=dict,
    )
    inputs = fields.Dict(
        validate=validate.Length(max=MAX_CLAUSES),
        keys=fields.String(validate=NAME),
        values=fields.Nested(InputSchema),
        load_default=dict,
    )
    definitions = fields.List(
        fields.Nested(DefinitionSchema), required=True, validate=validate.Length(max=MAX_CLAUSES)
    )
    payments = fields.List(
        fields.Nested(PaymentSchema), load_default=list, validate=validate.Length(max=MAX_PAYMENTS)
    )
