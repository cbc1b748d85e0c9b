"""An evaluation printed as a worked calculation a finance analyst can follow and check by hand.

Pure text from an `Evaluation`: every parameter with where it comes from, every input, every
definition with its clause, the values substituted into it and the result, then the payments.
"""

from __future__ import annotations

from decimal import Decimal

from contracts.evaluation import Evaluation, Quantity
from rules.canonical import decimal_text, money_text
from rules.syntax import to_source
from rules.types import MONEY, RATE, Type
from rules.values import Bands, Keyed, Points, RowSet, Value

SHOWN_DECIMALS = 10
SHOWN_ROWS = 12


def explain(evaluation: Evaluation) -> str:
    """The whole evaluation as text, in the order it was computed."""
    contract = evaluation.version.contract
    period = evaluation.period
    lines = [
        contract.title,
        f"contract {contract.id}  version {evaluation.version.content_hash[:16]}…  "
        f"period {period.id} ({period.start.isoformat()} to {period.end.isoformat()})",
        "  ".join(f"{p.role}: {p.name} [{p.account}]" for p in contract.parties),
        "",
        f"PARAMETERS (values in force on {period.start.isoformat()})",
    ]
    for resolved in evaluation.parameters:
        parameter = resolved.parameter
        shown = show(resolved.value, parameter.type, contract.currency)
        if resolved.source == "override":
            origin = "given for this evaluation (overrides the contract)"
        elif resolved.source == "default":
            assert parameter.default is not None
            origin = f"default {parameter.default.source}"
        else:
            origin = f"effective {resolved.effective}"
        lines.append(f"  {parameter.name} = {shown}   {origin}")
        cited = "" if resolved.source == "override" else _cite(resolved.reference)
        lines.append(f"      {parameter.description}{cited}")
    lines += ["", "INPUTS"]
    input_types = {i.name: i.type for i in contract.inputs}
    for name, value, source in evaluation.inputs:
        shown = (
            "(not given)" if value is None else show(value, input_types[name], contract.currency)
        )
        lines.append(f"  {name} = {shown}   {source}")
    lines += ["", "CALCULATION"]
    types: dict[str, Type] = {p.name: p.type for p in contract.parameters}
    types |= {i.name: i.type for i in contract.inputs}
    types |= {d.name: d.type for d in contract.definitions}
    for number, quantity in enumerate(evaluation.quantities, start=1):
        lines += _quantity_lines(number, quantity, types, contract.currency)
    lines += ["", "PAYMENTS"]
    policy = contract.rounding
    for payment in evaluation.payments:
        lines.append(
            f"  {payment.name}: {payment.payer_account} -> {payment.payee_account}  "
            f"{show(payment.amount, MONEY, payment.currency)}"
        )
        lines.append(
            f"      {payment.memo}; unrounded {_grouped(payment.unrounded)}, rounded to "
            f"{policy.payment_places} places {policy.payment_mode}"
        )
    for name, why in evaluation.skipped_payments:
        lines.append(f"  {name}: not made ({why})")
    if not evaluation.payments and not evaluation.skipped_payments:
        lines.append("  (the contract defines no payments)")
    lines += ["", f"trace sha256 {evaluation.trace_hash()}"]
    return "\n".join(lines) + "\n"


def _quantity_lines(
    number: int, quantity: Quantity, types: dict[str, Type], currency: str
) -> list[str]:
    definition = quantity.definition
    lines = [
        f"  {number}. {definition.name} ({definition.type}): {definition.description}"
        + _cite(definition.reference)
    ]
    if definition.expr is None:
        if quantity.case is not None:
            case = definition.cases[quantity.case]
            lines.append(f"       case {quantity.case + 1} applies: when {case.when.source}")
        else:
            lines.append("       no case applies: otherwise")
    # Plain digits inside an expression: a thousands comma would read as another argument.
    shown = {name: _plain(value) for name, value in quantity.used}
    indent = " " * (len(definition.name) + 8)
    lines.append(f"       {definition.name} = {quantity.clause.source}")
    substituted = to_source(quantity.clause.expr, shown)
    if substituted != quantity.clause.source and shown:
        lines.append(f"{indent}= {substituted}")
    for expression, per_row in quantity.rows:
        listed = ", ".join(show(v, None, currency) for v in per_row[:SHOWN_ROWS])
        more = f", … ({len(per_row)} rows)" if len(per_row) > SHOWN_ROWS else ""
        lines.append(f"{indent}  {expression} per row: {listed}{more}")
    lines.append(f"{indent}= {show(quantity.value, definition.type, currency)}")
    return lines


def _cite(reference: str) -> str:
    return f"  [{reference}]" if reference else ""


def _plain(value: Value) -> str:
    """A value inside a substituted expression: no grouping commas, long decimals cut."""
    if isinstance(value, Decimal):
        return _grouped(value).replace(",", "")
    return show(value, None, "")


def show(value: Value, kind: Type | None, currency: str) -> str:
    """A value for reading: grouped digits, long decimals cut with '…', rates also in percent."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, Decimal):
        if kind == MONEY:
            return f"{_grouped(Decimal(money_text(value)), keep_zeros=True)} {currency}"
        text = _grouped(value)
        if kind == RATE:
            return f"{text} ({_grouped(value * 100, 4)}%)"
        return text
    if isinstance(value, Points):
        return f"(table of {len(value.points)} points)"
    if isinstance(value, Bands):
        return f"(table of {len(value.bands)} bands)"
    if isinstance(value, Keyed):
        return f"(table of {len(value.rows)} rows: {', '.join(value.keys())})"
    if isinstance(value, RowSet):
        return f"({len(value)} rows)"
    return value.isoformat()


def _grouped(value: Decimal, decimals: int = SHOWN_DECIMALS, *, keep_zeros: bool = False) -> str:
    """Digits grouped by thousands; past `decimals` places cut, and marked with '…'."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -decimals:
        return format(value.quantize(Decimal(1).scaleb(-decimals)), ",f") + "…"
    if keep_zeros:
        return format(value, ",f")
    return format(Decimal(decimal_text(value)), ",f")
