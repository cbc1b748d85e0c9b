"""The outcome event types as data: their columns (Tuva Project input-layer names), which are
required, the key that identifies one event in a batch, and the date it happened.

Pure: readers, tables and aggregates are built from these specs; nothing here reads or writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from rules.types import COUNT, DATE, MONEY, SCORE, TEXT, Scalar


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: Scalar
    required: bool = False
    allowed: tuple[str, ...] = ()  # for text: the values it may take (empty: any)


@dataclass(frozen=True, slots=True)
class EventType:
    """One kind of outcome event: its columns, its key within a batch, and when it happened."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    occurred: str  # the column that says when it happened (valid time)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def fields(self) -> Mapping[str, Scalar]:
        return MappingProxyType({c.name: c.type for c in self.columns})


def _columns(required: str, optional: str, types: Mapping[str, Scalar]) -> tuple[Column, ...]:
    """Columns from two space-separated lists; a column's type is in `types`, else text."""
    return tuple(
        Column(name, types.get(name, TEXT), required=is_required)
        for names, is_required in ((required, True), (optional, False))
        for name in names.split()
    )


CLAIM_STATUSES = ("original", "replacement", "void")

CLAIM_LINE = EventType(
    "claim_line",
    "A medical claim line (Tuva input layer), possibly voiding or replacing an earlier claim",
    (
        *_columns(
            "claim_id claim_line_number claim_type patient_id claim_start_date paid_amount",
            "member_id claim_end_date claim_line_start_date claim_line_end_date "
            "admission_date discharge_date place_of_service_code bill_type_code ms_drg_code "
            "revenue_center_code service_unit_quantity hcpcs_code rendering_npi billing_npi "
            "facility_npi billing_tin paid_date allowed_amount charge_amount diagnosis_code_1 "
            "diagnosis_code_2 diagnosis_code_3 adjusted_claim_id",
            {
                "claim_line_number": COUNT,
                "service_unit_quantity": COUNT,
                "paid_amount": MONEY,
                "allowed_amount": MONEY,
                "charge_amount": MONEY,
                **{
                    name: DATE
                    for name in (
                        "claim_start_date",
                        "claim_end_date",
                        "claim_line_start_date",
                        "claim_line_end_date",
                        "admission_date",
                        "discharge_date",
                        "paid_date",
                    )
                },
            },
        ),
        Column("claim_status", TEXT, allowed=CLAIM_STATUSES),
    ),
    key=("claim_id", "claim_line_number"),
    occurred="claim_start_date",
)

ELIGIBILITY = EventType(
    "eligibility",
    "An enrollment span of one person with one payer (Tuva eligibility); gives member months",
    _columns(
        "patient_id enrollment_start_date enrollment_end_date payer",
        "member_id gender birth_date death_date payer_type plan dual_status_code "
        "medicare_status_code",
        {
            "enrollment_start_date": DATE,
            "enrollment_end_date": DATE,
            "birth_date": DATE,
            "death_date": DATE,
        },
    ),
    key=("patient_id", "payer", "plan", "enrollment_start_date"),
    occurred="enrollment_start_date",
)

ATTRIBUTION = EventType(
    "attribution",
    "A person attributed to a provider or contract for a period, with its source and rank",
    _columns(
        "patient_id provider_id period_start period_end",
        "contract_id source rank",
        {"period_start": DATE, "period_end": DATE, "rank": COUNT},
    ),
    key=("patient_id", "provider_id", "period_start"),
    occurred="period_start",
)

QUALITY_RESULT = EventType(
    "quality_result",
    "A quality measure's result for a provider and period: a score, or numerator/denominator",
    _columns(
        "measure_id provider_id period_start period_end",
        "score numerator denominator",
        {
            "period_start": DATE,
            "period_end": DATE,
            "score": SCORE,
            "numerator": COUNT,
            "denominator": COUNT,
        },
    ),
    key=("measure_id", "provider_id", "period_start"),
    occurred="period_end",
)

EPISODE = EventType(
    "episode",
    "An episode of care: an anchor event and its window (loaded, or built from claims)",
    _columns(
        "episode_id patient_id window_start window_end",
        "provider_id anchor_claim_id ms_drg_code rule",
        {"window_start": DATE, "window_end": DATE},
    ),
    key=("episode_id",),
    occurred="window_end",  # episodes count in the period they end
)

RISK_SCORE = EventType(
    "risk_score",
    "A person's risk score under a model for a period",
    _columns(
        "patient_id model period_start period_end score",
        "",
        {"period_start": DATE, "period_end": DATE, "score": SCORE},
    ),
    key=("patient_id", "model", "period_start"),
    occurred="period_start",
)

ADMISSION = EventType(
    "admission",
    "An admission or discharge notice, as from a hospital's ADT feed",
    _columns(
        "encounter_id patient_id admit_date",
        "facility_npi discharge_date status",
        {"admit_date": DATE, "discharge_date": DATE},
    ),
    key=("encounter_id",),
    occurred="admit_date",
)

EVENT_TYPES: Mapping[str, EventType] = MappingProxyType(
    {t.name: t for t in (CLAIM_LINE, ELIGIBILITY, ATTRIBUTION, QUALITY_RESULT, EPISODE,
                         RISK_SCORE, ADMISSION)}
)  # fmt: skip
