"""Reading outcome events from FHIR R4: a Bundle in a `.json` file, or NDJSON (`.fhir.ndjson`, one
resource a line, as from a FHIR Bulk Data export). MeasureReport gives quality_result rows and
Encounter gives admission rows, as raw text like every reader; typing them is `outcomes.parse`.

Nothing here guesses: numbers stay the decimals written in the file (never floats), and a
resource of another type, or one that is not valid FHIR, is a problem at its entry or line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.measurereport import MeasureReport, MeasureReportGroupPopulation
from fhir.resources.R4B.reference import Reference
from pydantic import ValidationError

from outcomes.events import EventType
from outcomes.parse import row_problem
from rules.errors import Problem, RuleError

# fhir.resources ships R4B (4.3.0) and R5, no longer R4 (4.0.1). R4B is R4 with additions
# elsewhere: R4 MeasureReport and Encounter documents validate against it as they are.
MAX_BUNDLE_BYTES = 200 * 1024 * 1024  # a Bundle is read whole; bigger exports come as NDJSON
MAX_LINE_BYTES = 1_000_000  # one resource in NDJSON
MAX_PROBLEMS = 100  # per file: past this, reading stops and these are reported
MAX_MESSAGE = 200  # characters of a validation message
US_NPI = "http://hl7.org/fhir/sid/us-npi"
MEASURE_POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"

Row = dict[str, str | None]


class _Unusable(Exception):
    """A valid resource that still cannot be one event (its reason is the message)."""


def _quality_result(report: MeasureReport) -> Row:
    if report.status != "complete":
        # A pending or erroneous report must not reach a settlement.
        raise _Unusable(f"its status is {report.status}; Settle loads complete MeasureReports")
    groups = report.group or []
    if len(groups) > 1:
        raise _Unusable(f"it has {len(groups)} groups; Settle reads one result per MeasureReport")
    group = groups[0] if groups else None
    score = group.measureScore if group else None
    counts = {_population_code(p): p.count for p in (group.population or [])} if group else {}
    row: Row = {
        "measure_id": _last_segment(report.measure),
        "provider_id": _provider_id(report),
        "period_start": _date_text(report.period.start),
        "period_end": _date_text(report.period.end),
        "score": _number_text(score.value if score else None),
        "numerator": _number_text(counts.get("numerator")),
        "denominator": _number_text(counts.get("denominator")),
        # Kept as extra columns: what cutting the URL drops, and what a score is measured in.
        "measure_canonical": report.measure,
    }
    if score and (score.unit or score.code):
        row["score_unit"] = score.unit or score.code
    return row


def _admission(encounter: Encounter) -> Row:
    identifiers = encounter.identifier or []
    provider = encounter.serviceProvider
    npi = provider.identifier if provider else None
    period = encounter.period
    return {
        "encounter_id": encounter.id or (identifiers[0].value if identifiers else None),
        "patient_id": _reference_id(encounter.subject),
        "facility_npi": npi.value if npi and npi.system == US_NPI else None,
        "admit_date": _date_text(period.start if period else None),
        "discharge_date": _date_text(period.end if period else None),
        "status": encounter.status,
        "encounter_class": encounter.class_fhir.code if encounter.class_fhir else None,
    }


# Which resource gives which event type, and how one becomes a row.
_SOURCES: Mapping[str, tuple[type[DomainResource], Callable[[Any], Row]]] = {
    "quality_result": (MeasureReport, _quality_result),
    "admission": (Encounter, _admission),
}


def read_fhir_bundle(
    path: Path, event_type: EventType, mapping: Mapping[str, str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows from a Bundle's entries, numbered from 1 (entry n is Bundle.entry[n-1])."""
    where = str(path)
    model = _source(where, event_type, mapping)[0]
    size = path.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise _fault(
            where, f"the Bundle is {size:,} bytes, over {MAX_BUNDLE_BYTES:,}: export it as NDJSON"
        )
    try:
        document = json.loads(path.read_bytes().decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as error:
        raise _fault(where, f"not a JSON document: {error}") from None
    kind = document.get("resourceType") if isinstance(document, dict) else None
    if kind != "Bundle":
        raise _fault(
            where,
            f"a .json outcome file is one FHIR Bundle; this is {kind or 'not a FHIR resource'} "
            f"(one {model.get_resource_type()} a line goes in a .fhir.ndjson file)",
        )
    try:
        Bundle.model_validate({k: v for k, v in document.items() if k != "entry"})
    except ValidationError as error:
        raise _fault(where, f"not a valid FHIR Bundle: {_validation_message(error)}") from None
    entries = document.get("entry") or []
    if not isinstance(entries, list):
        raise _fault(where, "Bundle.entry is not a list")
    resources = (
        (number, entry.get("resource") if isinstance(entry, dict) else None)
        for number, entry in enumerate(entries, start=1)
    )
    yield from _rows(where, event_type, resources, lambda n: f"Bundle.entry[{n - 1}]")


def read_fhir_ndjson(
    path: Path, event_type: EventType, mapping: Mapping[str, str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows from FHIR NDJSON, streaming, numbered by line; blank lines are skipped."""
    where = str(path)
    _source(where, event_type, mapping)

    def resources() -> Iterator[tuple[int, object]]:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if len(line) > MAX_LINE_BYTES:
                    raise _fault(where, f"the line is longer than {MAX_LINE_BYTES:,} bytes", number)
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line.decode("utf-8"), parse_float=Decimal)
                except (UnicodeDecodeError, ValueError) as error:
                    raise _fault(where, f"the line is not JSON: {error}", number) from None

    yield from _rows(where, event_type, resources(), lambda n: "the line")


def _source(
    where: str, event_type: EventType, mapping: Mapping[str, str]
) -> tuple[type[DomainResource], Callable[[Any], Row]]:
    if mapping:
        raise _fault(where, "a column mapping does not apply to FHIR, whose fields are fixed")
    if event_type.name not in _SOURCES:
        readable = ", ".join(
            f"{name} ({model.get_resource_type()})" for name, (model, _) in _SOURCES.items()
        )
        raise _fault(where, f"FHIR files give {readable}; not {event_type.name}")
    return _SOURCES[event_type.name]


def _rows(
    where: str,
    event_type: EventType,
    resources: Iterator[tuple[int, object]],
    position: Callable[[int], str],
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each resource as a row. A resource that cannot be one is a problem; the problems are
    raised together once the file is read (or MAX_PROBLEMS are found), so the batch fails whole."""
    problems: list[Problem] = []
    for number, resource in resources:
        try:
            row = _row_of(resource, event_type)
        except _Unusable as error:
            problems.append(row_problem(where, number, None, None, f"{position(number)} {error}"))
            if len(problems) == MAX_PROBLEMS:
                problems.append(Problem(where, f"stopped reading after {MAX_PROBLEMS} problems"))
                break
            continue
        yield number, row
    if problems:
        raise RuleError(problems)


def _row_of(resource: object, event_type: EventType) -> Row:
    model, to_row = _SOURCES[event_type.name]
    expected = model.get_resource_type()
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if kind != expected:
        found = f"a {kind}" if kind else "not a FHIR resource"
        raise _Unusable(f"is {found}; {event_type.name} is read from {expected} resources")
    try:
        parsed = model.model_validate(resource)
    except ValidationError as error:
        message = f"is not valid FHIR {expected}: {_validation_message(error)}"
        raise _Unusable(message) from None
    try:
        return to_row(parsed)
    except _Unusable as error:
        raise _Unusable(
            f"({expected} {parsed.id or 'without id'}) cannot be loaded: {error}"
        ) from None


def _fault(where: str, reason: str, number: int = 0) -> RuleError:
    """A problem with the file (at a line, if given), which stops the batch."""
    return RuleError([row_problem(where, number, None, None, reason)])


def _validation_message(error: ValidationError) -> str:
    parts = (
        f"{'.'.join(str(step) for step in e['loc']) or 'resource'}: {e['msg']}"
        for e in error.errors()
    )
    message = "; ".join(parts)
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _provider_id(report: MeasureReport) -> str | None:
    if report.reporter is not None:
        return _reference_id(report.reporter)
    subject = report.subject
    if subject is not None and _reference_type(subject) == "Patient":
        raise _Unusable("it has no reporter, and its subject is a Patient, not a provider")
    return _reference_id(subject)


def _reference_type(reference: Reference) -> str | None:
    parts = (reference.reference or "").split("/_history/")[0].split("/")
    return reference.type or (parts[-2] if len(parts) >= 2 else None)


def _reference_id(reference: Reference | None) -> str | None:
    """`Patient/p1` (or `https://server/fhir/Patient/p1/_history/2`) gives `p1`; a reference
    with no literal target gives its identifier's value."""
    if reference is None:
        return None
    literal = reference.reference
    if literal and not literal.startswith("#"):  # `#x` names a contained resource, no real id
        return _last_segment(literal.split("/_history/")[0])
    return reference.identifier.value if reference.identifier else None


def _last_segment(url: str | None) -> str | None:
    """A measure's id from its canonical URL: `http://…/Measure/CMS122v11|11.0` gives
    `CMS122v11`; a URL without a path (`urn:…`) is its own id."""
    if not url:
        return None
    return url.split("|")[0].rstrip("/").rsplit("/", 1)[-1]


def _date_text(value: dt.date | str | None) -> str | None:
    """The date part of a FHIR date or dateTime, as written: `2024-03-02T23:30:00-05:00` is
    2024-03-02 where it happened, so it is not moved to UTC. A partial date (`2024-03`) stays as
    it is, and parse refuses it as not a date."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _number_text(value: Decimal | int | None) -> str | None:
    return None if value is None else str(value)


def _population_code(population: MeasureReportGroupPopulation) -> str | None:
    codings = population.code.coding if population.code else None
    return next(
        (c.code for c in codings or [] if c.system in (MEASURE_POPULATION, None)),
        None,
    )
