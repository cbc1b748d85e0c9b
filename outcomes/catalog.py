"""The outcome event types and their fields, as contracts may name them in declared aggregates.

Pure data: what each event type carries and which measures an aggregate may take over it. The
readers, the tables and the SQL that compute aggregates are in the rest of `outcomes/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from outcomes.events import EVENT_TYPES
from rules.types import Scalar

EVENT_FIELDS: Mapping[str, Mapping[str, Scalar]] = MappingProxyType(
    {name: event_type.fields for name, event_type in EVENT_TYPES.items()}
)

MEASURES_WITH_FIELD = frozenset({"sum", "average", "min", "max", "weighted_average", "value"})
MEASURES_WITHOUT_FIELD = frozenset({"count", "member_months"})
MEASURES = MEASURES_WITH_FIELD | MEASURES_WITHOUT_FIELD | {"count_distinct"}
# weight_by may name a numeric field, or this: each person's eligible months in the event's span
WEIGHT_BY_MEMBER_MONTHS = "member_months"
# the event types that last a span and name a person: what member months can weigh
PERSON_SPANS = ("attribution", "risk_score")
