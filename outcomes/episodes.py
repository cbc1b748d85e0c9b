"""Episodes of care built from claims, by a rule such as "an inpatient stay with MS-DRG 469 or 470,
and the 90 days after discharge" (CMS's CJR and BPCI Advanced lower-extremity joint replacement).

Pure: the builder takes the anchor claim lines (the final versions, as of a cutoff, of the lines
whose MS-DRG the rule names) and returns the episodes, in a stable order, with the anchors that a
running episode absorbed. Reading the lines from the database and loading the episodes as a batch
are the store's and the command line's business.

The rule, clause by clause:
- an anchor is an institutional claim with one of the rule's MS-DRGs whose bill type, when given,
  is an inpatient hospital stay (11x);
- the stay runs from the earliest admission date of its lines (else claim start date) to the
  latest discharge date (else claim end date, else claim start date);
- the episode window runs from admission to discharge + `days_after_discharge`;
- an anchor stay admitted during a person's running episode starts no episode of its own: it is a
  readmission within that episode (CJR, 42 CFR 510.210(b)), and is reported as absorbed;
- an episode is named `<rule name>-<anchor claim id>` and carries the rule's name; its provider
  is the anchor's facility NPI (the least, if its lines name several), else its billing NPI;
- a four-digit bill type with a leading zero (0111, as on a UB-04) reads as its three digits.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rules.errors import SettleError

INPATIENT_BILL_TYPE = "11"  # the first two digits of an inpatient hospital bill type
EPISODE_COLUMNS = ("episode_id", "patient_id", "window_start", "window_end", "provider_id",
                   "anchor_claim_id", "ms_drg_code", "rule")  # fmt: skip
ANCHOR_FIELDS = ("claim_id", "claim_type", "patient_id", "bill_type_code", "ms_drg_code",
                 "admission_date", "discharge_date", "claim_start_date", "claim_end_date",
                 "facility_npi", "billing_npi")  # fmt: skip


class EpisodeRuleError(SettleError):
    """An episode rule that cannot be applied as written."""


@dataclass(frozen=True, slots=True)
class EpisodeRule:
    name: str
    ms_drgs: frozenset[str]
    days_after_discharge: int

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise EpisodeRuleError(f"episode rule name {self.name!r}: letters, digits, - and _")
        if not self.ms_drgs:
            raise EpisodeRuleError(f"episode rule {self.name}: name at least one MS-DRG")
        bad = sorted(d for d in self.ms_drgs if not (d.isascii() and d.isdigit() and len(d) == 3))
        if bad:
            raise EpisodeRuleError(f"episode rule {self.name}: MS-DRG codes are three digits, "
                                   f"not {', '.join(map(repr, bad))}")  # fmt: skip
        if not 0 <= self.days_after_discharge <= 365:
            raise EpisodeRuleError(f"episode rule {self.name}: days after discharge must be "
                                   f"0 to 365, not {self.days_after_discharge}")  # fmt: skip

    def describe(self) -> str:
        drgs = "/".join(sorted(self.ms_drgs))
        return f"{self.name}: inpatient stay with MS-DRG {drgs} + {self.days_after_discharge} days"


@dataclass(frozen=True, slots=True)
class Episode:
    episode_id: str
    patient_id: str
    window_start: dt.date
    window_end: dt.date
    provider_id: str | None
    anchor_claim_id: str
    ms_drg_code: str
    rule: str

    def row(self) -> dict[str, str]:
        """As the episode event type's columns, text."""
        return {name: cell_text(getattr(self, name)) for name in EPISODE_COLUMNS}


@dataclass(frozen=True, slots=True)
class Absorbed:
    """An anchor stay admitted during a running episode: a readmission within it."""

    anchor_claim_id: str
    episode_id: str


@dataclass(frozen=True, slots=True)
class Built:
    rule: EpisodeRule
    episodes: tuple[Episode, ...]
    absorbed: tuple[Absorbed, ...]

    def csv_bytes(self, claims_as_of: dt.datetime | None = None) -> bytes:
        """The episodes as a CSV file of the episode event type, with the claims' cutoff in a
        column of its own if given (kept with each row): the same episodes built from the same
        cutoff give the same bytes, so loading them twice is one batch."""
        buffer = io.StringIO(newline="")
        built = {"claims_as_of": claims_as_of.isoformat()} if claims_as_of else {}
        writer = csv.DictWriter(buffer, fieldnames=[*EPISODE_COLUMNS, *built], lineterminator="\n")
        writer.writeheader()
        writer.writerows({**e.row(), **built} for e in self.episodes)
        return buffer.getvalue().encode("utf-8")

    def rows(self) -> frozenset[tuple[str, ...]]:
        """The episodes as text tuples of EPISODE_COLUMNS, to compare with a stored batch."""
        return frozenset(tuple(e.row().values()) for e in self.episodes)


@dataclass(frozen=True, slots=True)
class _Stay:
    claim_id: str
    patient_id: str
    admitted: dt.date
    discharged: dt.date
    provider_id: str | None
    ms_drg_code: str


def is_anchor(rule: EpisodeRule, line: Mapping[str, Any]) -> bool:
    bill_type = str(line.get("bill_type_code") or "")
    if len(bill_type) == 4 and bill_type.startswith("0"):
        bill_type = bill_type[1:]
    return (
        line.get("claim_type") == "institutional"
        and line.get("ms_drg_code") in rule.ms_drgs
        and (not bill_type or bill_type.startswith(INPATIENT_BILL_TYPE))
    )


def build_episodes(rule: EpisodeRule, lines: Iterable[Mapping[str, Any]]) -> Built:
    """The episodes the rule builds from these claim lines (final versions; other lines are
    ignored), ordered by person and admission."""
    stays = _stays(rule, lines)
    episodes: list[Episode] = []
    absorbed: list[Absorbed] = []
    by_person: dict[str, list[_Stay]] = defaultdict(list)
    for stay in stays:
        by_person[stay.patient_id].append(stay)
    for person in sorted(by_person):
        running: Episode | None = None
        for stay in sorted(by_person[person], key=lambda s: (s.admitted, s.claim_id)):
            if running is not None and stay.admitted <= running.window_end:
                absorbed.append(Absorbed(stay.claim_id, running.episode_id))
                continue
            running = Episode(
                f"{rule.name}-{stay.claim_id}",
                person,
                stay.admitted,
                stay.discharged + dt.timedelta(days=rule.days_after_discharge),
                stay.provider_id,
                stay.claim_id,
                stay.ms_drg_code,
                rule.name,
            )
            episodes.append(running)
    return Built(rule, tuple(episodes), tuple(absorbed))


def _stays(rule: EpisodeRule, lines: Iterable[Mapping[str, Any]]) -> list[_Stay]:
    """One stay per anchor claim, from all of its lines; every claim that cannot be a stay is
    reported together."""
    by_claim: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for line in lines:
        if is_anchor(rule, line):
            by_claim[str(line["claim_id"])].append(line)
    stays, problems = [], []
    for claim_id, claim_lines in sorted(by_claim.items()):
        try:
            stays.append(_stay(claim_id, claim_lines))
        except EpisodeRuleError as error:
            problems.append(str(error))
    if problems:
        raise EpisodeRuleError(f"{len(problems)} anchor claim(s) cannot be a stay: "
                               + "; ".join(problems[:20]))  # fmt: skip
    return stays


def _stay(claim_id: str, lines: Sequence[Mapping[str, Any]]) -> _Stay:
    people = {str(line["patient_id"]) for line in lines}
    if len(people) > 1:
        raise EpisodeRuleError(f"claim {claim_id}: its lines name {len(people)} people "
                               f"({', '.join(sorted(people))})")  # fmt: skip
    starts = [d for line in lines if (d := line.get("admission_date") or
                                      line.get("claim_start_date")) is not None]  # fmt: skip
    ends = [d for line in lines if (d := line.get("discharge_date") or line.get("claim_end_date")
                                    or line.get("claim_start_date")) is not None]  # fmt: skip
    if not starts or not ends:
        raise EpisodeRuleError(f"claim {claim_id}: an anchor stay needs an admission date or a "
                               "claim start date")  # fmt: skip
    facilities = sorted(str(line["facility_npi"]) for line in lines if line.get("facility_npi"))
    billers = sorted(str(line["billing_npi"]) for line in lines if line.get("billing_npi"))
    provider = (facilities or billers)[0] if facilities or billers else None
    drg = min(str(line["ms_drg_code"]) for line in lines)
    if max(ends) < min(starts):
        raise EpisodeRuleError(f"claim {claim_id}: discharged {max(ends)} before admitted "
                               f"{min(starts)}")  # fmt: skip
    return _Stay(claim_id, people.pop(), min(starts), max(ends), provider, drg)


def cell_text(value: Any) -> str:
    """A value as an episode file's cell: empty for none, ISO for a date."""
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
