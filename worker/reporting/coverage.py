"""Coverage: every encounter the HIS shows as completed in a range, compared with the ledger.

The HIS side comes from the adapter (read-only): the keys alone of a day's completed encounters
(``CompletedKeyLister.completed_keys``, one query), or ``list_completed`` from a source without it. The ledger
side comes from ``encounters``. The comparison runs day by day (on PostgreSQL two days at once, each on its
own connection and snapshot: ``map_days``), so memory stays bounded whatever the range. For each bucket (day,
department, visit type or insurance) it counts completed, accepted, pending, rejected, quarantined, dead,
hidden and missing (never discovered), and it lists every encounter that is not accepted, with its state,
reason and age, and whether it broke a deadline.

The comparison is key by key (MA_LK, derived from the HIS key as discovery derives it) but as sets, not one
Python step per encounter: a day's accepted MA_LKs (most of them) arrive from the ledger joined in one
string, read from the ``(completed_at, ma_lk, state, accepted_at)`` index alone, and only the encounters in
another state, or that the HIS no longer lists, are read as rows. A registered encounter is placed in its
bucket, and its gap dated, by what the ledger registered from the HIS: discovery registers every change the
HIS dates, so the two differ only until the next discovery. Encounters the ledger never registered are
described by the HIS (``refs``). "Accepted late" compares the acceptance time with the send target after the
completion time the ledger registered, the one the accepted version was built from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.domain import derive_ma_lk, derive_ma_lks
from schemas.domain.values import local_midnight
from schemas.ports import CompletedKeyLister, EncounterRef, EncounterSource
from worker.ledger.coverage_reads import (
    SEPARATOR,
    LedgerDay,
    LedgerRow,
    map_days,
    read_ledger_day,
)
from worker.ledger.db import as_utc
from worker.ledger.states import ACTIVE, State
from worker.reporting.deadlines import DeadlineCalendar

MISSING = "missing"
PENDING = "pending"
ACCEPTED = State.ACCEPTED.value
_T = TypeVar("_T")
COLUMNS = ("completed", ACCEPTED, PENDING, "rejected", "quarantined", "dead", "hidden", MISSING)


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


def _reason(row: LedgerRow) -> str:
    if row.rules:
        return "validation: " + ", ".join(sorted(set(row.rules.split(SEPARATOR))))
    if row.last_error_code:
        return str(row.last_error_code)
    return _WAITING.get(row.state, str(row.state))


_WAITING = {
    State.HIDDEN.value: "no longer completed in the HIS",
    State.DISCOVERED.value: "waiting to be built",
    State.BUILT.value: "waiting to be signed",
    State.SIGNED.value: "waiting to be sent",
}


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

    def compare(conn: sa.Connection, day: date) -> _DayComparison:
        return _compare_day(source, conn, day, group_by=group_by, facility_code=facility_code,
                            calendar=calendar, now=now)  # fmt: skip

    for day in map_days(engine, _days(start, end), compare):
        day.add_to(report)
    report.gaps.sort(key=lambda gap: (gap.completed_at, gap.ma_lk))
    return report


@dataclass
class _DayComparison:
    """One day's share of a report, made apart (days may be compared on several threads) and added in order."""

    day_key: str
    listed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (bucket, column) of each listed one
    hidden: Counter[str] = field(default_factory=Counter)  # bucket of each registered one the HIS dropped
    gaps: list[Gap] = field(default_factory=list)
    accepted_late: int = 0

    def add_to(self, report: CoverageReport) -> None:
        report.accepted_late += self.accepted_late
        report.gaps.extend(self.gaps)
        daily = report.daily.setdefault(self.day_key, Counter())
        for (key, column), count in self.listed.items():
            counts = report.buckets.setdefault(key, Counter())
            counts["completed"] += count
            counts[column] += count
            daily["completed"] += count
            daily[column] += count
        for key, count in self.hidden.items():
            report.buckets.setdefault(key, Counter())["hidden"] += count
            daily["hidden"] += count


@dataclass(frozen=True, slots=True)
class HisDay:
    """The HIS's completed encounters of one range: MA_LK → HIS key; their ``EncounterRef`` by MA_LK when
    the source listed them whole (``None`` when it listed the keys alone); and how to describe a few."""

    keys: dict[str, str]
    listed: dict[str, EncounterRef] | None
    refs: Callable[[list[str]], list[EncounterRef]]


def read_his_day(
    source: EncounterSource, facility_code: str, start: datetime, end: datetime, *, whole: bool
) -> HisDay:
    """The keys alone in one query when the source can list them so and ``whole`` (each encounter's own
    buckets) is not needed; otherwise every ``EncounterRef`` from ``list_completed``."""
    if not whole and isinstance(source, CompletedKeyLister):
        return HisDay(derive_ma_lks(facility_code, source.completed_keys(start, end)), None, source.refs)
    by_key = {ref.his_key: ref for ref in source.list_completed(start, end)}
    keys = derive_ma_lks(facility_code, list(by_key))
    listed = {ma_lk: by_key[his_key] for ma_lk, his_key in keys.items()}
    return HisDay(keys, listed, lambda wanted: [by_key[key] for key in wanted if key in by_key])


@dataclass(frozen=True, slots=True)
class _DayClocks:
    """The deadlines of the visits that ended on one day, made once for all the day's gaps."""

    target_delay: timedelta
    claim_at: datetime
    now: datetime

    def gap(self, ma_lk: str, his_key: str, completed_at: datetime, state: str, reason: str) -> Gap:
        return Gap(
            ma_lk=ma_lk, his_key=his_key, completed_at=completed_at, state=state, reason=reason,
            age_hours=(self.now - completed_at).total_seconds() / 3600,
            target_breached=self.now > completed_at + self.target_delay, claim_breached=self.now > self.claim_at,
        )  # fmt: skip


def _compare_day(
    source: EncounterSource,
    conn: sa.Connection,
    day: date,
    *,
    group_by: GroupBy,
    facility_code: str,
    calendar: DeadlineCalendar,
    now: datetime,
) -> _DayComparison:
    """One day compared: read the HIS, then the ledger, then count accepted, not accepted, missing and
    no-longer-listed encounters into the day's buckets and gaps."""
    lo, hi = local_midnight(day), local_midnight(day + timedelta(days=1))
    # The HIS first, read to the end before the ledger transaction opens: an encounter completed while
    # the report runs is then found registered rather than reported missing. A report by day needs no HIS
    # bucket: the keys alone, when the source can list them so.
    by_day = group_by is GroupBy.DAY
    his = read_his_day(source, facility_code, lo, hi, whole=not by_day)
    listed = his.keys
    ledger = read_ledger_day(conn, lo, hi, listed.keys(), calendar.target_delay)
    result = _DayComparison(day.isoformat())
    clocks = _DayClocks(calendar.target_delay, calendar.claim_at(day), now)
    view = _DayView(day, lo, now, group_by, facility_code, his, ledger, result, clocks)
    _count_accepted(view)
    _count_not_accepted(view)
    _count_missing(view)
    _count_unlisted(view)
    return result


@dataclass(frozen=True, slots=True)
class _DayView:
    """One day's HIS and ledger reads, and the comparison they are counted into."""

    day: date
    lo: datetime
    now: datetime
    group_by: GroupBy
    facility_code: str
    his: HisDay
    ledger: LedgerDay
    result: _DayComparison
    clocks: _DayClocks

    def bucket(self, row: LedgerRow | EncounterRef) -> str:
        if self.group_by is GroupBy.DAY:
            return self.result.day_key
        return _bucket(self.group_by, self.day, row.department, row.visit_type, row.insured)


def _count_accepted(view: _DayView) -> None:
    """Listed by the HIS and accepted (and how many of those after the send target)."""
    listed, result = view.his.keys, view.result
    listed_accepted = listed.keys() & view.ledger.accepted
    if view.his.listed is None:  # by day: one bucket, counted as a set
        if listed_accepted:
            result.listed[result.day_key, ACCEPTED] = len(listed_accepted)
    else:  # a listed encounter counts under the bucket the HIS gives it now
        result.listed.update((view.bucket(view.his.listed[ma_lk]), ACCEPTED) for ma_lk in listed_accepted)
    result.accepted_late = len(listed.keys() & view.ledger.late)


def _count_not_accepted(view: _DayView) -> None:
    """Registered, listed, not accepted: counted by state, each a gap with its reason."""
    for ma_lk, row in view.ledger.others.items():
        if ma_lk not in view.his.keys:
            continue
        state = str(row.state)
        ref = view.his.listed[ma_lk] if view.his.listed is not None else None
        # Dated by the HIS when it listed the encounter whole, else by the ledger's registration (the same
        # day, the same time but for a change the next discovery has yet to register).
        completed = ref.completed_at if ref is not None else (as_utc(row.completed_at) or view.lo)
        view.result.listed[view.bucket(ref or row), PENDING if state in ACTIVE else state] += 1
        view.result.gaps.append(view.clocks.gap(ma_lk, row.his_key, completed, state, _reason(row)))


def _count_missing(view: _DayView) -> None:
    """Listed by the HIS, never registered: described by the HIS; one that stopped being completed since it
    was listed is left out."""
    listed = view.his.keys
    missing = listed.keys() - view.ledger.accepted - view.ledger.others.keys()
    for ref in view.his.refs(sorted(listed[ma_lk] for ma_lk in missing)) if missing else ():
        view.result.listed[view.bucket(ref), MISSING] += 1
        ma_lk = derive_ma_lk(view.facility_code, ref.his_key)
        view.result.gaps.append(
            view.clocks.gap(ma_lk, ref.his_key, ref.completed_at, MISSING, "never discovered")
        )


def _count_unlisted(view: _DayView) -> None:
    """In the ledger but no longer listed by the HIS for that day: hidden/deleted, reported not dropped."""
    now = view.now
    for ma_lk, row in sorted(view.ledger.unlisted.items()):
        view.result.hidden[view.bucket(row)] += 1
        completed = as_utc(row.completed_at) or now
        view.result.gaps.append(
            Gap(ma_lk=ma_lk, his_key=row.his_key, completed_at=completed, state=State.HIDDEN,
                reason="no longer completed in the HIS", age_hours=(now - completed).total_seconds() / 3600,
                target_breached=False, claim_breached=False)
        )  # fmt: skip
