"""The ledger side of coverage (DOMAIN.md §13): what the ledger says of the encounters completed on one day.

Each day is read in one snapshot (REPEATABLE READ on PostgreSQL), the accepted encounters as one joined string
read from the ``(completed_at, ma_lk, state, accepted_at)`` index alone, and only the encounters in another
state (or no longer listed by the HIS) row by row. ``worker.reporting.coverage`` compares it with the HIS.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.ledger.db import as_utc, is_postgresql
from worker.ledger.schema import encounters, versions
from worker.ledger.states import State

_T = TypeVar("_T")


#: Joins the MA_LKs of a day into one string: a day's accepted encounters cross the wire as one value, not
#: thousands of rows. An ASCII control character, never part of an MA_LK (``derive_ma_lk`` keeps letters,
#: digits, ``-`` and ``_`` besides the facility code); ``read_ledger_day`` checks the counts anyway.
SEPARATOR = "\x1f"
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
        sa.func.aggregate_strings(sa.case((accepted, encounters.c.ma_lk)), SEPARATOR),
        sa.func.aggregate_strings(sa.case((sa.and_(accepted, accepted_late), encounters.c.ma_lk)), SEPARATOR),
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


#: The rule ids of a version's validation errors, joined with ``SEPARATOR``, computed by the database: the
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
    sa.func.string_agg(_ERRORS_POSTGRESQL.c.value.op("->>")("rule"), SEPARATOR)
).scalar_subquery()
_ERRORS_SQLITE = sa.func.json_each(versions.c.issues, "$.errors").table_valued("value")
_RULES_SQLITE = sa.select(
    sa.func.group_concat(sa.func.json_extract(_ERRORS_SQLITE.c.value, "$.rule"), SEPARATOR)
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
LedgerRow = sa.Row[*tuple[Any, ...]]


def _split(joined: str | None) -> set[str]:
    return set(joined.split(SEPARATOR)) if joined else set()


@dataclass(frozen=True, slots=True)
class LedgerDay:
    """The ledger's view of one day. ``accepted`` and ``late`` (accepted after the send target) are MA_LKs
    only; ``others`` maps the MA_LK of every encounter in any other state to its registration, state, last
    error and issues; ``unlisted`` holds the registration (his_key, completion time, buckets, state) of every
    encounter of the day that the HIS did not list."""

    accepted: set[str]
    late: set[str]
    others: dict[str, LedgerRow]
    unlisted: dict[str, LedgerRow]


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
