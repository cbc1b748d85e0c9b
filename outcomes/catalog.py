"""The outcome event types and their fields, as contracts may name them in declared aggregates.

Pure data: what each event type carries and which measures an aggregate may take over it. The
readers, the tables and the SQL that compute aggregates are in the rest of `outcomes/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from rules.types import COUNT, DATE, MONEY, SCORE, TEXT, Scalar

EVENT_FIELDS: Mapping[str, Mapping[str, Scalar]] = MappingProxyType(
    {
        "claim_line": MappingProxyType(
            {
                "claim_id": TEXT,
                "claim_line_number": COUNT,
                "claim_type": TEXT,
                "person_id": TEXT,
                "claim_start_date": DATE,
                "claim_end_date": DATE,
                "claim_line_start_date": DATE,
                "claim_line_end_date": DATE,
                "admission_date": DATE,
                "discharge_date": DATE,
                "bill_type_code": TEXT,
                "place_of_service_code": TEXT,
                "ms_drg_code": TEXT,
                "hcpcs_code": TEXT,
                "revenue_center_code": TEXT,
                "diagnosis_code_1": TEXT,
                "rendering_npi": TEXT,
                "billing_npi": TEXT,
                "facility_npi": TEXT,
                "billing_tin": TEXT,
                "service_unit_quantity": COUNT,
                "paid_amount": MONEY,
                "allowed_amount": MONEY,
            }
        ),
        "eligibility": MappingProxyType(
            {
                "person_id": TEXT,
                "month": DATE,
                "payer": TEXT,
                "plan": TEXT,
                "dual_status_code": TEXT,
                "medicare_status_code": TEXT,
            }
        ),
        "attribution": MappingProxyType(
            {
                "person_id": TEXT,
                "provider_id": TEXT,
                "contract_id": TEXT,
                "period_start": DATE,
                "period_end": DATE,
                "source": TEXT,
                "rank": COUNT,
            }
        ),
        "quality_result": MappingProxyType(
            {
                "measure_id": TEXT,
                "provider_id": TEXT,
                "period_start": DATE,
                "period_end": DATE,
                "score": SCORE,
                "numerator": COUNT,
                "denominator": COUNT,
            }
        ),
        "episode": MappingProxyType(
            {
                "episode_id": TEXT,
                "person_id": TEXT,
                "provider_id": TEXT,
                "anchor_claim_id": TEXT,
                "ms_drg_code": TEXT,
                "window_start": DATE,
                "window_end": DATE,
            }
        ),
        "risk_score": MappingProxyType(
            {
                "person_id": TEXT,
                "model": TEXT,
                "period_start": DATE,
                "period_end": DATE,
                "score": SCORE,
            }
        ),
        "admission": MappingProxyType(
            {
                "encounter_id": TEXT,
                "person_id": TEXT,
                "facility_npi": TEXT,
                "admit_date": DATE,
                "discharge_date": DATE,
                "status": TEXT,
            }
        ),
    }
)

MEASURES_WITH_FIELD = frozenset({"sum", "average", "min", "max", "weighted_average"})
MEASURES_WITHOUT_FIELD = frozenset({"count"})
MEASURES = MEASURES_WITH_FIELD | MEASURES_WITHOUT_FIELD | {"count_distinct"}
