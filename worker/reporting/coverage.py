"""Coverage: every encounter the HIS shows as completed in a range, compared with the ledger.

The HIS side comes from the adapter's ``list_completed`` (read-only); the ledger side from ``encounters``.
The comparison runs one day at a time, so memory stays bounded whatever the range. For each bucket (day,
department, visit type or insurance) it counts completed, accepted, pending, rejected, quarantined, dead,
hidden and missing (never discovered), and it lists every encounter that is not accepted, with its state,
reason and age, and whether it broke a deadline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.domain import derive_ma_lk
from worker.domain.values import VIETNAM_TZ
from worker.ledger.db import as_utc
from worker.ledger.schema import encounters, versions
from worker.ledger.states import ACTIVE, State
from worker.ports import EncounterRef, EncounterSource
from worker.reporting.deadlines import DeadlineCalendar

MISSING = "missing"
PENDING = "pending"
COLUMNS = ("completed", "accepted", PENDING, "rejected", "quarantined", "dead", "hidden", MISSING)


class GroupBy(StrEnum):
    DAY = "day"
    DEPARTMENT = "department"
    VISIT_TYPE = "visit-type"
    INSURANCE = "insurance"
    VISIT_TYPE_INSURANCE = "visit-type-insurance"  # the QĐ 2733 six-monthly report's cross table


@dataclass(frozen=True, slots=True)
class Gap:
    """One completed encounter that is not accepted: what a person must look at."""

    ma_lk: str
    his_key: str
    completed_at: datetime
    state: str
    reason: str
    age_hours: float
    target_breached: bool
    claim_breached: bool


@dataclass
class CoverageReport:
    start: date
    end: date  # exclusive
    group_by: GroupBy
    generated_at: datetime
    buckets: dict[str, Counter[str]] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    accepted_late: int = 0
    daily: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.buckets.values():
            total.update(counts)
        return total

    @property
    def ratio(self) -> float:
        totals = self.totals
        return 1.0 if not totals["completed"] else totals["accepted"] / totals["completed"]

    @property
    def claim_breaches(self) -> list[Gap]:
        return [gap for gap in self.gaps if gap.claim_breached]

    @property
    def target_breaches(self) -> list[Gap]:
        return [gap for gap in self.gaps if gap.target_breached]


def _bucket(group_by: GroupBy, ref_day: date, department: str | None, visit_type: str | None,
            insured: bool | None) -> str:  # fmt: skip
    if group_by is GroupBy.DAY:
        return ref_day.isoformat()
    if group_by is GroupBy.DEPARTMENT:
        return department or "(none)"
    if group_by is GroupBy.VISIT_TYPE:
        return visit_type or "(none)"
    insurance = "(unknown)" if insured is None else ("BHYT" if insured else "non-BHYT")
    if group_by is GroupBy.INSURANCE:
        return insurance
    return f"{visit_type or '(none)'} / {insurance}"


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day < end:
        yield day
        day += timedelta(days=1)


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=VIETNAM_TZ)


def _ledger_rows(conn: sa.Connection, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    query = (
        sa.select(
            encounters.c.ma_lk, encounters.c.his_key, encounters.c.state, encounters.c.completed_at,
            encounters.c.accepted_at, encounters.c.department, encounters.c.visit_type, encounters.c.insured,
            versions.c.last_error_code, versions.c.issues,
        )
        .outerjoin(versions, versions.c.id == encounters.c.current_version_id)
        .where(encounters.c.completed_at >= as_utc(start), encounters.c.completed_at < as_utc(end))
    )  # fmt: skip
    return {row.ma_lk: dict(row._mapping) for row in conn.execute(query)}


def _reason(row: dict[str, Any]) -> str:
    issues = row.get("issues") or {}
    errors = issues.get("errors") if isinstance(issues, dict) else None
    if errors:
        return "validation: " + ", ".join(sorted({str(e.get("rule")) for e in errors}))
    if row.get("last_error_code"):
        return str(row["last_error_code"])
    return {
        State.HIDDEN: "no longer completed in the HIS",
        State.DISCOVERED: "waiting to be built",
        State.BUILT: "waiting to be signed",
        State.SIGNED: "waiting to be sent",
    }.get(row["state"], str(row["state"]))


def compute(
    source: EncounterSource,
    engine: Engine,
    *,
    facility_code: str,
    start: date,
    end: date,
    group_by: GroupBy,
    calendar: DeadlineCalendar,
    now: datetime,
) -> CoverageReport:
    report = CoverageReport(start=start, end=end, group_by=group_by, generated_at=now)
    for day in _days(start, end):
        lo, hi = _local_midnight(day), _local_midnight(day + timedelta(days=1))
        with engine.connect() as conn:
            ledger = _ledger_rows(conn, lo, hi)
        his_refs: dict[str, EncounterRef] = {
            derive_ma_lk(facility_code, ref.his_key): ref for ref in source.list_completed(lo, hi)
        }
        daily = report.daily.setdefault(day.isoformat(), Counter())
        for ma_lk, ref in his_refs.items():
            row = ledger.get(ma_lk)
            key = _bucket(group_by, day, ref.department, ref.visit_type, ref.insured)
            counts = report.buckets.setdefault(key, Counter())
            counts["completed"] += 1
            daily["completed"] += 1
            if row is None:
                column, state, reason = MISSING, MISSING, "never discovered"
            else:
                state = str(row["state"])
                column = PENDING if state in ACTIVE else state
                reason = _reason(row)
            counts[column] += 1
            daily[column] += 1
            clocks = calendar.clocks(ref.completed_at)
            if state == State.ACCEPTED:
                accepted_at = as_utc(row["accepted_at"]) if row else None
                if accepted_at is not None and accepted_at > clocks.target_at:
                    report.accepted_late += 1
                continue
            report.gaps.append(
                Gap(ma_lk=ma_lk, his_key=ref.his_key, completed_at=ref.completed_at, state=state, reason=reason,
                    age_hours=(now - ref.completed_at).total_seconds() / 3600,
                    target_breached=now > clocks.target_at, claim_breached=now > clocks.claim_at)
            )  # fmt: skip
        for ma_lk, row in ledger.items():
            if ma_lk in his_refs:
                continue
            # In the ledger but no longer listed by the HIS for that day: hidden/deleted, reported not dropped.
            key = _bucket(group_by, day, row["department"], row["visit_type"], row["insured"])
            report.buckets.setdefault(key, Counter())["hidden"] += 1
            daily["hidden"] += 1
            completed = as_utc(row["completed_at"]) or now
            report.gaps.append(
                Gap(ma_lk=ma_lk, his_key=row["his_key"], completed_at=completed, state=State.HIDDEN,
                    reason="no longer completed in the HIS", age_hours=(now - completed).total_seconds() / 3600,
                    target_breached=False, claim_breached=False)
            )  # fmt: skip
    report.gaps.sort(key=lambda gap: gap.completed_at)
    return report
