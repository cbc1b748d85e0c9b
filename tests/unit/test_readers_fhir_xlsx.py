"""The FHIR (Bundle, NDJSON) and XLSX readers: rows as exact text, and every fault a problem that
names its file and entry, line or row. Fixture files are written here; two real-shaped ones live
in fixtures/events/."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from outcomes import readers_fhir
from outcomes.events import ADMISSION, CLAIM_LINE, QUALITY_RESULT, EventType
from outcomes.parse import TypedRow, type_row
from outcomes.readers import read_rows
from outcomes.readers_fhir import read_fhir_bundle, read_fhir_ndjson
from outcomes.readers_xlsx import read_xlsx
from rules.errors import RuleError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "events"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"


def _measure_report(measure: str, score: str, numerator: int, denominator: int) -> dict[str, Any]:
    # The score goes in as JSON text below (see _write_json), so it is never a float here.
    return {
        "resourceType": "MeasureReport",
        "id": f"{measure.lower()}-2024",
        "status": "complete",
        "type": "summary",
        "measure": f"http://ecqi.healthit.gov/ecqms/Measure/{measure}",
        "reporter": {"reference": "Organization/prov-7"},
        "period": {"start": "2024-01-01", "end": "2024-12-31"},
        "group": [
            {
                "population": [
                    {"code": {"coding": [{"system": POPULATION, "code": code}]}, "count": count}
                    for code, count in (("numerator", numerator), ("denominator", denominator))
                ],
                "measureScore": {"value": Decimal(score)},
            }
        ],
    }


def _encounter(encounter_id: str, start: str, end: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": encounter_id,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/pt-1"},
        "period": {"start": start, **({"end": end} if end else {})},
        "serviceProvider": {
            "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}
        },
    }


def _json_text(document: object) -> str:
    """JSON with Decimals written as the numbers they are (json.dumps cannot write a Decimal)."""
    if isinstance(document, Decimal):
        return str(document)
    if isinstance(document, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json_text(v)}" for k, v in document.items()) + "}"
    if isinstance(document, list):
        return "[" + ",".join(_json_text(v) for v in document) + "]"
    return json.dumps(document)


def _bundle(path: Path, *resources: dict[str, Any]) -> Path:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }
    path.write_text(_json_text(bundle))
    return path


def _ndjson(path: Path, *lines: dict[str, Any] | str) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else _json_text(x) for x in lines) + "\n")
    return path


def _typed(event_type: EventType, rows: list[tuple[int, dict[str, Any]]]) -> list[TypedRow]:
    typed = []
    for number, raw in rows:
        row, problems = type_row(event_type, raw, where="test", number=number)
        assert not problems, problems
        assert row is not None
        typed.append(row)
    return typed


def _problems(error: pytest.ExceptionInfo[RuleError]) -> list[str]:
    return [problem.format() for problem in error.value.problems]


# FHIR


def test_a_bundle_of_two_measure_reports_gives_two_quality_results_with_exact_scores(tmp_path):
    path = _bundle(
        tmp_path / "quality.json",
        _measure_report("CMS165v12", "0.8210", 412, 502),
        _measure_report("CMS122v12", "0.1", 61, 610),
    )

    rows = list(read_rows(path, QUALITY_RESULT))

    assert [number for number, _ in rows] == [1, 2]
    assert rows[0][1]["score"] == "0.8210"  # the trailing zero as written: never a float
    first, second = _typed(QUALITY_RESULT, rows)
    assert first.values == {
        "measure_id": "CMS165v12",
        "provider_id": "prov-7",
        "period_start": dt.date(2024, 1, 1),
        "period_end": dt.date(2024, 12, 31),
        "score": Decimal("0.8210"),
        "numerator": 412,
        "denominator": 502,
    }
    assert second.values["score"] == Decimal("0.1")
    assert first.extra == {"measure_canonical": "http://ecqi.healthit.gov/ecqms/Measure/CMS165v12"}


def test_fhir_ndjson_encounters_give_admissions_dated_where_they_happened(tmp_path):
    path = _ndjson(
        tmp_path / "adt.fhir.ndjson",
        _encounter("enc-1", "2024-03-02T23:30:00-05:00", "2024-03-06T11:15:00-05:00"),
        "",
        _encounter("enc-2", "2024-04-09"),
    )

    rows = list(read_fhir_ndjson(path, ADMISSION, {}))

    assert [number for number, _ in rows] == [1, 3]  # line numbers; the blank line skipped
    first, second = _typed(ADMISSION, rows)
    assert first.values == {
        "encounter_id": "enc-1",
        "patient_id": "pt-1",
        "admit_date": dt.date(2024, 3, 2),  # 04:30 UTC on the 3rd, but admitted on the 2nd
        "facility_npi": "1234567893",
        "discharge_date": dt.date(2024, 3, 6),
        "status": "finished",
    }
    assert second.values["discharge_date"] is None
    assert first.extra == {"encounter_class": "IMP"}


def test_an_invalid_resource_is_reported_with_its_line_and_the_validation_message(tmp_path):
    broken = _encounter("enc-2", "2024-13-01")  # no 13th month
    path = _ndjson(tmp_path / "adt.fhir.ndjson", _encounter("enc-1", "2024-03-02"), broken)

    with pytest.raises(RuleError) as error:
        list(read_fhir_ndjson(path, ADMISSION, {}))

    [problem] = _problems(error)
    assert problem.startswith(f"{path}:2: the line is not valid FHIR Encounter: period.start")
    assert len(problem) < 300  # the validation message is cut short


def test_a_resource_of_another_type_is_reported_with_its_entry_and_what_was_expected(tmp_path):
    patient = {"resourceType": "Patient", "id": "pt-1"}
    path = _bundle(tmp_path / "q.json", _measure_report("CMS165v12", "0.8", 4, 5), patient)

    with pytest.raises(RuleError) as error:
        list(read_fhir_bundle(path, QUALITY_RESULT, {}))

    assert _problems(error) == [
        f"{path}:2: Bundle.entry[1] is a Patient; quality_result is read from MeasureReport "
        "resources"
    ]


def test_a_resource_for_another_event_type_is_a_problem_and_every_problem_is_reported(tmp_path):
    report = _measure_report("CMS165v12", "0.8", 4, 5)
    path = _ndjson(tmp_path / "adt.fhir.ndjson", report, _encounter("enc-1", "2024-03-02"), report)

    with pytest.raises(RuleError) as error:
        list(read_fhir_ndjson(path, ADMISSION, {}))

    assert [p.where for p in error.value.problems] == [f"{path}:1", f"{path}:3"]
    assert "is a MeasureReport; admission is read from Encounter resources" in _problems(error)[0]


def test_reading_stops_after_100_problems_and_says_so(tmp_path):
    patient = {"resourceType": "Patient"}
    path = _ndjson(tmp_path / "adt.fhir.ndjson", *[patient] * 150)

    with pytest.raises(RuleError) as error:
        list(read_fhir_ndjson(path, ADMISSION, {}))

    assert len(error.value.problems) == 101
    assert _problems(error)[-1] == f"{path}: stopped reading after 100 problems"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "pending"}, "its status is pending; Settle loads complete MeasureReports"),
        ({"reporter": None, "subject": {"reference": "Patient/pt-1"}}, "its subject is a Patient"),
    ],
)
def test_a_measure_report_that_is_no_provider_result_is_refused(tmp_path, change, reason):
    report = {**_measure_report("CMS165v12", "0.8", 4, 5), **change}
    path = _bundle(tmp_path / "q.json", {k: v for k, v in report.items() if v is not None})

    with pytest.raises(RuleError) as error:
        list(read_fhir_bundle(path, QUALITY_RESULT, {}))

    assert reason in _problems(error)[0]


def test_a_json_file_that_is_not_a_bundle_is_refused_as_a_whole(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(_json_text(_measure_report("CMS165v12", "0.8", 4, 5)))

    with pytest.raises(RuleError, match=r"one FHIR Bundle; this is MeasureReport"):
        list(read_rows(path, QUALITY_RESULT))


def test_a_bundle_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = _bundle(tmp_path / "q.json", _measure_report("CMS165v12", "0.8", 4, 5))
    monkeypatch.setattr(readers_fhir, "MAX_BUNDLE_BYTES", 100)

    with pytest.raises(RuleError, match=r"over 100: export it as NDJSON"):
        list(read_fhir_bundle(path, QUALITY_RESULT, {}))


def test_an_event_type_fhir_does_not_carry_is_refused(tmp_path):
    path = _bundle(tmp_path / "claims.json")

    with pytest.raises(RuleError, match=r"FHIR files give quality_result .*; not claim_line"):
        list(read_rows(path, CLAIM_LINE))


def test_the_measure_report_fixture_reads_through_the_registry_with_exact_scores():
    rows = list(read_rows(FIXTURES / "quality-measure-reports.fhir.json", QUALITY_RESULT))

    typed = _typed(QUALITY_RESULT, rows)
    assert [(r.values["measure_id"], r.values["score"]) for r in typed] == [
        ("CMS165v12", Decimal("0.7067")),
        ("CMS122v12", Decimal("0.1130")),
    ]
    assert {r.values["provider_id"] for r in typed} == {"prov-4417"}
    assert [(r.values["numerator"], r.values["denominator"]) for r in typed] == [
        (412, 583),
        (61, 540),
    ]


def test_the_admissions_fixture_reads_each_encounter_at_its_line():
    path = FIXTURES / "admissions.fhir.ndjson"

    typed = _typed(ADMISSION, list(read_fhir_ndjson(path, ADMISSION, {})))

    assert [(r.number, r.values["encounter_id"], r.values["admit_date"]) for r in typed] == [
        (1, "enc-20240302-0117", dt.date(2024, 3, 2)),
        (2, "enc-20240409-0342", dt.date(2024, 4, 9)),
        (4, "enc-20240527-0901", dt.date(2024, 5, 27)),
    ]
    assert typed[2].values["patient_id"] == "pt-70455"  # from an absolute, versioned reference
    assert typed[2].values["discharge_date"] is None


def test_a_fhir_ndjson_file_reaches_the_fhir_reader_through_the_registry():
    path = FIXTURES / "admissions.fhir.ndjson"

    rows = list(read_rows(path, ADMISSION))

    assert rows[0][1]["encounter_id"] == "enc-20240302-0117"


# XLSX


def _workbook(path: Path, *rows: list[Any], title: str = "Sheet1") -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


CLAIM_HEADER = [
    "claim_id",
    "claim_line_number",
    "claim_type",
    "patient_id",
    "paid_amount",
    "claim_start_date",
]
DAY = dt.date(2024, 1, 5)


def test_xlsx_claim_lines_become_rows_with_iso_dates_and_text_amounts_as_written(tmp_path):
    path = _workbook(
        tmp_path / "claims.xlsx",
        CLAIM_HEADER,
        ["C-1", 1, "professional", "pt-1", "125.50", dt.date(2024, 1, 5)],
        [None, None, None, None, None, None],
        ["C-2", 2, "institutional", "pt-2", 1200, dt.datetime(2024, 1, 6)],
    )

    rows = list(read_rows(path, CLAIM_LINE))

    assert rows == [
        (
            2,
            {
                "claim_id": "C-1",
                "claim_line_number": "1",
                "claim_type": "professional",
                "patient_id": "pt-1",
                "paid_amount": "125.50",
                "claim_start_date": "2024-01-05",
            },
        ),
        (
            4,  # Excel's row number: the empty row 3 is skipped, not renumbered
            {
                "claim_id": "C-2",
                "claim_line_number": "2",
                "claim_type": "institutional",
                "patient_id": "pt-2",
                "paid_amount": "1200",
                "claim_start_date": "2024-01-06",
            },
        ),
    ]
    first, second = _typed(CLAIM_LINE, rows)
    assert first.values["paid_amount"] == Decimal("125.50")
    assert first.values["claim_start_date"] == dt.date(2024, 1, 5)
    assert second.values["claim_line_number"] == 2


def test_a_float_amount_of_0_1_is_read_as_0_1(tmp_path):
    path = _workbook(
        tmp_path / "c.xlsx", CLAIM_HEADER, ["C-1", 1, "professional", "pt-1", 0.1, DAY]
    )

    [(_, raw)] = list(read_xlsx(path, CLAIM_LINE, {}))

    assert raw["paid_amount"] == "0.1"
    [row] = _typed(CLAIM_LINE, [(2, raw)])
    assert row.values["paid_amount"] == Decimal("0.1")


# 100.1 - 100 = 0.09999999999999432: binary residue that survives openpyxl's 16-digit writing
# (Excel writes 17 digits, so its 0.1 + 0.2 = 0.30000000000000004 would be refused the same way).
@pytest.mark.parametrize("amount", [1 / 3, 100.1 - 100, 12.34567])
def test_a_float_amount_that_is_not_a_short_decimal_is_a_problem(tmp_path, amount):
    path = _workbook(
        tmp_path / "c.xlsx",
        CLAIM_HEADER,
        ["C-1", 1, "professional", "pt-1", 10],
        ["C-2", 1, "professional", "pt-2", amount],
    )

    with pytest.raises(RuleError) as error:
        list(read_xlsx(path, CLAIM_LINE, {}))

    [problem] = _problems(error)
    assert problem.startswith(f"{path}:3: paid_amount holds the number {amount!r}, not exactly")
    assert "store the amount as text" in problem


def test_a_score_cell_may_carry_the_decimals_a_score_allows(tmp_path):
    header = ["measure_id", "provider_id", "period_start", "period_end", "score"]
    path = _workbook(
        tmp_path / "q.xlsx", header, ["CMS165v12", "prov-7", "2024-01-01", "2024-12-31", 0.82105]
    )

    [(_, raw)] = list(read_xlsx(path, QUALITY_RESULT, {}))

    assert raw["score"] == "0.82105"  # five decimals: too many for an amount, fine for a score


def test_a_missing_required_column_is_a_problem_at_row_1(tmp_path):
    path = _workbook(tmp_path / "c.xlsx", CLAIM_HEADER[:-2], ["C-1", 1, "professional", "pt-1"])

    with pytest.raises(RuleError) as error:
        list(read_xlsx(path, CLAIM_LINE, {}))

    [problem] = _problems(error)
    assert problem.startswith(
        f"{path}:1: the header lacks the required column(s) claim_start_date, paid_amount"
    )


def test_a_mapping_renames_the_sheets_columns(tmp_path):
    header = ["Claim", "Line", "Type", "Member", "Paid", "From"]
    path = _workbook(tmp_path / "c.xlsx", header, ["C-1", 1, "professional", "pt-1", "9.99", DAY])
    mapping = {
        "claim_start_date": "From",
        "claim_id": "Claim",
        "claim_line_number": "Line",
        "claim_type": "Type",
        "patient_id": "Member",
        "paid_amount": "Paid",
    }

    [(_, raw)] = list(read_xlsx(path, CLAIM_LINE, mapping))

    assert raw["patient_id"] == "pt-1"
    assert raw["paid_amount"] == "9.99"


def test_a_sheet_named_like_the_event_type_is_read_before_the_first(tmp_path):
    path = tmp_path / "book.xlsx"
    workbook = Workbook()
    notes = workbook.active
    assert notes is not None
    notes.title = "Notes"
    notes.append(["read me first"])
    claims = workbook.create_sheet("Claim_Line")
    claims.append(CLAIM_HEADER)
    claims.append(["C-1", 1, "professional", "pt-1", "5.00", DAY])
    workbook.save(path)

    [(_, raw)] = list(read_xlsx(path, CLAIM_LINE, {}))

    assert raw["claim_id"] == "C-1"


def test_an_excel_error_or_a_value_under_no_header_is_a_problem(tmp_path):
    path = _workbook(
        tmp_path / "c.xlsx",
        [*CLAIM_HEADER[:6], None, "note"],
        ["C-1", 1, "professional", "#N/A", "5.00", DAY, "stray", "ok"],
    )

    with pytest.raises(RuleError) as error:
        list(read_xlsx(path, CLAIM_LINE, {}))

    assert _problems(error) == [
        f"{path}:2: patient_id holds #N/A, an Excel error, not a value",
        f"{path}:2: column G has a value but no header",
    ]


def test_a_file_that_is_not_a_workbook_is_refused(tmp_path):
    path = tmp_path / "claims.xlsx"
    path.write_text("claim_id,paid_amount\n")

    with pytest.raises(RuleError, match=r"not an Excel workbook"):
        list(read_xlsx(path, CLAIM_LINE, {}))


AMOUNTS = st.decimals(
    min_value=Decimal("-99999999999.9999"),
    max_value=Decimal("99999999999.9999"),
    places=4,
    allow_nan=False,
    allow_infinity=False,
)


@settings(max_examples=25, deadline=None)
@given(amounts=st.lists(AMOUNTS, min_size=1, max_size=20))
def test_any_amount_of_at_most_4_decimals_stored_as_a_float_reads_back_exactly(
    tmp_path_factory, amounts
):
    # 15 integer-and-decimal digits at most: what Excel keeps of a typed number.
    rows = [["C", n, "professional", "pt", float(a), DAY] for n, a in enumerate(amounts, start=1)]
    path = _workbook(tmp_path_factory.mktemp("xlsx") / "c.xlsx", CLAIM_HEADER, *rows)

    read = [Decimal(raw["paid_amount"]) for _, raw in read_xlsx(path, CLAIM_LINE, {})]

    assert read == amounts
