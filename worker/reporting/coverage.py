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

import threading
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.domain import derive_ma_lk, derive_ma_lks
from schemas.domain.values import local_midnight
from schemas.ports import CompletedKeyLister, EncounterRef, EncounterSource
from worker.ledger.db import as_utc, is_postgresql
from worker.ledger.schema import encounters, versions
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


#: Joins the MA_LKs of a day into one string: a day's accepted encounters cross the wire as one value, not
#: thousands of rows. An ASCII control character, never part of an MA_LK (``derive_ma_lk`` keeps letters,
#: digits, ``-`` and ``_`` besides the facility code); ``read_ledger_day`` checks the counts anyway.
_SEPARATOR = "\x1f"
_DETAIL_CHUNK = 500  # bound parameters per statement, well under SQLite's limit


_COMPLETED_THAT_DAY = (
    encounters.c.completed_at >= sa.bindparam("start"),
    encounters.c.completed_at < sa.bindparam("end"),
)


def _day_summary(accepted_late: sa.ColumnElement[bool]) -> sa.Select[int, str | None, str | None]:
    """Count, accepted MA_LKs and accepted-late MA_LKs of a day in one row. On both dialects the
    ``(completed_at, ma_lk, state, accepted_at)`` index covers it: an index-only scan on PostgreSQL."""
    accepted = encounters.c.state == State.ACCEPTED
    return sa.select(
        sa.func.count(),
        sa.func.aggregate_strings(sa.case((accepted, encounters.c.ma_lk)), _SEPARATOR),
        sa.func.aggregate_strings(
            sa.case((sa.and_(accepted, accepted_late), encounters.c.ma_lk)), _SEPARATOR
        ),
    ).where(*_COMPLETED_THAT_DAY)


# Accepted later than the send target after the completion time the ledger registered (the one the accepted
# version was built from). SQLite has no interval arithmetic: it compares the difference of Julian days in
# whole milliseconds (its own precision; rounded, so a delay of exactly the target is not late).
_DAY_SUMMARY_POSTGRESQL = _day_summary(
    encounters.c.accepted_at > encounters.c.completed_at + sa.bindparam("send_target", type_=sa.Interval())
)
_MS_PER_DAY = 86_400_000
_DAY_SUMMARY_SQLITE = _day_summary(
    sa.func.round(
        (sa.func.julianday(encounters.c.accepted_at) - sa.func.julianday(encounters.c.completed_at))
        * _MS_PER_DAY
    )
    > sa.bindparam("send_target", type_=sa.Float())
)


#: The rule ids of a version's validation errors, joined with ``_SEPARATOR``, computed by the database: the
#: issues documents are not sent nor decoded (decoding them was a fifth of coverage's Python time at 1M rows).
_ERRORS_POSTGRESQL = sa.func.json_array_elements(
    sa.case(
        (
            sa.func.json_typeof(versions.c.issues.op("->")("errors")) == "array",
            versions.c.issues.op("->")("errors"),
        )
    )
).table_valued("value")
_RULES_POSTGRESQL = sa.select(
    sa.func.string_agg(_ERRORS_POSTGRESQL.c.value.op("->>")("rule"), _SEPARATOR)
).scalar_subquery()
_ERRORS_SQLITE = sa.func.json_each(versions.c.issues, "$.errors").table_valued("value")
_RULES_SQLITE = sa.select(
    sa.func.group_concat(sa.func.json_extract(_ERRORS_SQLITE.c.value, "$.rule"), _SEPARATOR)
).scalar_subquery()


def _not_accepted_that_day(rules: sa.ScalarSelect[Any]) -> sa.Select[Any]:
    """Every encounter of a day in any state but accepted, with what its gap's reason is made of, through the
    ``(state, completed_at)`` index (an explicit IN list, not ``<>``: each state is one range scan, so the
    accepted rows are never read)."""
    return (
        sa.select(
            encounters.c.ma_lk,
            encounters.c.his_key,
            encounters.c.completed_at,
            encounters.c.department,
            encounters.c.visit_type,
            encounters.c.insured,
            encounters.c.state,
            versions.c.last_error_code,
            # Only a version with issues has rules: the subquery is not run for the others.
            sa.case((versions.c.issues.is_not(None), rules)).label("rules"),
        )
        .outerjoin(versions, versions.c.id == encounters.c.current_version_id)
        .where(
            *_COMPLETED_THAT_DAY,
            encounters.c.state.in_(sorted(state.value for state in State if state is not State.ACCEPTED)),
        )
    )


_NOT_ACCEPTED_THAT_DAY_POSTGRESQL = _not_accepted_that_day(_RULES_POSTGRESQL)
_NOT_ACCEPTED_THAT_DAY_SQLITE = _not_accepted_that_day(_RULES_SQLITE)
#: The encounter as registered, for the ones the HIS no longer lists (reported from the ledger alone).
_REGISTERED = sa.select(
    encounters.c.ma_lk, encounters.c.his_key, encounters.c.completed_at, encounters.c.department,
    encounters.c.visit_type, encounters.c.insured, encounters.c.state,
).where(encounters.c.ma_lk.in_(sa.bindparam("ma_lks", expanding=True)))  # fmt: skip

#: A row of ``_not_accepted_that_day`` or of ``_REGISTERED``.
_Row = sa.Row[*tuple[Any, ...]]


def _split(joined: str | None) -> set[str]:
    return set(joined.split(_SEPARATOR)) if joined else set()


@dataclass(frozen=True, slots=True)
class LedgerDay:
    """The ledger's view of one day. ``accepted`` and ``late`` (accepted after the send target) are MA_LKs
    only; ``others`` maps the MA_LK of every encounter in any other state to its registration, state, last
    error and issues; ``unlisted`` holds the registration (his_key, completion time, buckets, state) of every
    encounter of the day that the HIS did not list."""

    accepted: set[str]
    late: set[str]
    others: dict[str, _Row]
    unlisted: dict[str, _Row]


class LedgerStateError(RuntimeError):
    """The ledger's rows for a day do not add up: coverage refuses to report on them."""


def _open_reader(engine: Engine) -> sa.Connection:
    """A connection for reading days. Each day is read in a transaction of its own, REPEATABLE READ on
    PostgreSQL so its statements see one snapshot (SQLite's transaction already is one); between days no
    transaction stays open while the HIS is read."""
    conn = engine.connect()
    if is_postgresql(conn):
        conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


@contextmanager
def ledger_reader(engine: Engine) -> Iterator[sa.Connection]:
    """One connection for a series of days (checked out and pinged once)."""
    with _open_reader(engine) as conn:
        yield conn


#: Days read at once on PostgreSQL, each on a connection of its own: the server answers one day while Python
#: digests another. Measured over 1M ledger rows on 2 cores: about 30 % less wall time than one at a time;
#: a third thread gains nothing, the comparison being Python work under one interpreter lock.
LEDGER_READERS = 2


def map_days(engine: Engine, days: Iterable[date], work: Callable[[sa.Connection, date], _T]) -> Iterator[_T]:
    """``work(connection, day)`` for every day, results in day order. On PostgreSQL up to ``LEDGER_READERS``
    days run at once, each thread on its own connection; on SQLite one at a time on one connection. A day
    is never split between threads, so each day keeps its own snapshot and its HIS-first ordering."""
    if not is_postgresql(engine):
        with ledger_reader(engine) as conn:
            yield from (work(conn, day) for day in days)
        return
    readers = threading.local()
    opened: list[sa.Connection] = []
    lock = threading.Lock()

    def on_this_thread() -> sa.Connection:
        conn: sa.Connection | None = getattr(readers, "conn", None)
        if conn is None:
            conn = readers.conn = _open_reader(engine)
            with lock:
                opened.append(conn)
        return conn

    try:
        with ThreadPoolExecutor(LEDGER_READERS, thread_name_prefix="coverage-day") as pool:
            ahead: deque[Future[_T]] = deque()
            for day in days:  # a bounded window: a few days in memory, whatever the range
                ahead.append(pool.submit(_on_reader, on_this_thread, work, day))
                if len(ahead) > LEDGER_READERS:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
    finally:
        for conn in opened:
            conn.close()


def _on_reader(
    connection: Callable[[], sa.Connection], work: Callable[[sa.Connection, date], _T], day: date
) -> _T:
    return work(connection(), day)


def read_ledger_day(
    conn: sa.Connection,
    start: datetime,
    end: datetime,
    listed: Collection[str],
    send_target: timedelta,
) -> LedgerDay:
    """The ledger for [start, end) in one snapshot, so the rows agree with the counts. Only what is not
    accepted (a few percent) or not listed by the HIS is read row by row."""
    day = {"start": as_utc(start), "end": as_utc(end)}
    summary, not_accepted, target = (
        (_DAY_SUMMARY_POSTGRESQL, _NOT_ACCEPTED_THAT_DAY_POSTGRESQL, send_target)
        if is_postgresql(conn)
        else (_DAY_SUMMARY_SQLITE, _NOT_ACCEPTED_THAT_DAY_SQLITE, send_target / timedelta(milliseconds=1))
    )
    with conn.begin():
        total, accepted_joined, late_joined = conn.execute(summary, {**day, "send_target": target}).one()
        others = {row.ma_lk: row for row in conn.execute(not_accepted, day).all()}
        accepted = _split(accepted_joined)
        if len(accepted) + len(others) != total:
            raise LedgerStateError(
                f"{total} encounter(s) completed in [{start.isoformat()}, {end.isoformat()}) but "
                f"{len(accepted)} accepted and {len(others)} in known states: a state coverage does not "
                "know, or an MA_LK containing the separator"
            )
        missing_from_his = sorted(accepted.union(others).difference(listed))
        unlisted = {}
        for first in range(0, len(missing_from_his), _DETAIL_CHUNK):
            chunk = missing_from_his[first : first + _DETAIL_CHUNK]
            unlisted.update({row.ma_lk: row for row in conn.execute(_REGISTERED, {"ma_lks": chunk})})
    return LedgerDay(accepted, _split(late_joined), others, unlisted)


def _reason(row: _Row) -> str:
    if row.rules:
        return "validation: " + ", ".join(sorted(set(row.rules.split(_SEPARATOR))))
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
    lo, hi = local_midnight(day), local_midnight(day + timedelta(days=1))
    # The HIS first, read to the end before the ledger transaction opens: an encounter completed while
    # the report runs is then found registered rather than reported missing. A report by day needs no HIS
    # bucket: the keys alone, when the source can list them so.
    by_day = group_by is GroupBy.DAY
    his = read_his_day(source, facility_code, lo, hi, whole=not by_day)
    listed = his.keys
    ledger = read_ledger_day(conn, lo, hi, listed.keys(), calendar.target_delay)
    result = _DayComparison(day.isoformat())

    def bucket(row: _Row | EncounterRef) -> str:
        return (
            result.day_key if by_day else _bucket(group_by, day, row.department, row.visit_type, row.insured)
        )

    clocks = _DayClocks(calendar.target_delay, calendar.claim_at(day), now)
    listed_accepted = listed.keys() & ledger.accepted
    if his.listed is None:  # by day: one bucket, counted as a set
        if listed_accepted:
            result.listed[result.day_key, ACCEPTED] = len(listed_accepted)
    else:  # a listed encounter counts under the bucket the HIS gives it now
        result.listed.update((bucket(his.listed[ma_lk]), ACCEPTED) for ma_lk in listed_accepted)
    result.accepted_late = len(listed.keys() & ledger.late)

    for ma_lk, row in ledger.others.items():  # registered, listed, not accepted
        if ma_lk not in listed:
            continue
        state = str(row.state)
        ref = his.listed[ma_lk] if his.listed is not None else None
        # Dated by the HIS when it listed the encounter whole, else by the ledger's registration (the same
        # day, the same time but for a change the next discovery has yet to register).
        completed = ref.completed_at if ref is not None else (as_utc(row.completed_at) or lo)
        result.listed[bucket(ref or row), PENDING if state in ACTIVE else state] += 1
        result.gaps.append(clocks.gap(ma_lk, row.his_key, completed, state, _reason(row)))

    missing = listed.keys() - ledger.accepted - ledger.others.keys()  # listed, never registered
    # Described by the HIS; one that stopped being completed since it was listed is left out.
    for ref in his.refs(sorted(listed[ma_lk] for ma_lk in missing)) if missing else ():
        result.listed[bucket(ref), MISSING] += 1
        result.gaps.append(
            clocks.gap(derive_ma_lk(facility_code, ref.his_key), ref.his_key, ref.completed_at, MISSING,
                       "never discovered")
        )  # fmt: skip

    for ma_lk, row in sorted(ledger.unlisted.items()):
        # In the ledger but no longer listed by the HIS for that day: hidden/deleted, reported not dropped.
        result.hidden[bucket(row)] += 1
        completed = as_utc(row.completed_at) or now
        result.gaps.append(
            Gap(ma_lk=ma_lk, his_key=row.his_key, completed_at=completed, state=State.HIDDEN,
                reason="no longer completed in the HIS", age_hours=(now - completed).total_seconds() / 3600,
                target_breached=False, claim_breached=False)
        )  # fmt: skip
    return result
