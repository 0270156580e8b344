"""Backfill: walk the HIS day by day since a date, register every completed encounter, hand over the rest.

Resumable: the last fully registered day is a ledger checkpoint, and registering is idempotent, so a killed
backfill re-run continues where it stopped and never opens a version twice for unchanged content.

Each day hands over both what it opened and the versions of that day registered earlier that nobody is
working on (discovered by the watermark while no worker ran, or stranded by a stopped run): "enqueue what
is not accepted". Without workers (``--process-here``), ``finish_here`` then delivers what is still active in
the range, waiting for retry times and for the leases of a killed run to run out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from schemas.domain.values import local_midnight
from worker.ledger import repository as repo
from worker.ledger.db import as_utc, utcnow
from worker.ledger.schema import encounters, versions
from worker.ledger.states import ACTIVE
from worker.pipeline import delivery
from worker.pipeline.context import Pipeline
from worker.pipeline.discovery import chunked, sweep

CHECKPOINT = "backfill"
_ACTIVE = [state.value for state in ACTIVE]


@dataclass(frozen=True, slots=True)
class DayDone:
    day: date
    seen: int
    opened: list[int]
    hidden: int
    #: Active versions of the day registered before this run, due and not leased: handed over with ``opened``.
    pending: list[int] = field(default_factory=list)


def resume_day(pipeline: Pipeline, since: date) -> date:
    """Where a backfill from ``since`` should continue (the day after the last finished one)."""
    with pipeline.engine.begin() as conn:
        _, payload = repo.read_checkpoint(conn, CHECKPOINT)
    if not payload or payload.get("since") != since.isoformat() or not payload.get("done_through"):
        return since
    return max(since, date.fromisoformat(str(payload["done_through"])) + timedelta(days=1))


def days_between(start: date, until: date) -> Iterator[date]:
    day = start
    while day < until:
        yield day
        day += timedelta(days=1)


def _range_filter(start: datetime, end: datetime) -> list[sa.ColumnElement[bool]]:
    return [
        encounters.c.completed_at >= as_utc(start),
        encounters.c.completed_at < as_utc(end),
        versions.c.state.in_(_ACTIVE),
    ]


def pending_version_ids(
    pipeline: Pipeline,
    start: datetime,
    end: datetime,
    *,
    waiting_in_broker: timedelta | None = None,
    limit: int = 10_000,
) -> list[int]:
    """Active versions of the encounters completed in [start, end) that are due and not leased. With
    ``waiting_in_broker``, versions enqueued less than that long ago are left to the message already sent."""
    now = utcnow()
    conditions = [
        *_range_filter(start, end),
        sa.or_(versions.c.next_attempt_at.is_(None), versions.c.next_attempt_at <= now),
        sa.or_(versions.c.lease_until.is_(None), versions.c.lease_until < now),
    ]
    if waiting_in_broker is not None:
        conditions.append(
            sa.or_(versions.c.enqueued_at.is_(None), versions.c.enqueued_at < now - waiting_in_broker)
        )
    query = (
        sa.select(versions.c.id)
        .join(encounters, encounters.c.ma_lk == versions.c.ma_lk)
        .where(*conditions)
        .order_by(versions.c.id)
        .limit(limit)
    )
    with pipeline.engine.connect() as conn:
        return [row.id for row in conn.execute(query)]


def backfill_days(
    pipeline: Pipeline,
    *,
    since: date,
    until: date,
    dry_run: bool = False,
    waiting_in_broker: timedelta | None = None,
    on_day: Callable[[DayDone], None] | None = None,
) -> Iterator[DayDone]:
    """Register each day [resume point, until); the checkpoint is written after each day commits, and only
    for days that are over (a visit completed later today must be walked by the next run)."""
    for day in days_between(resume_day(pipeline, since), until):
        lo = local_midnight(day)
        hi = local_midnight(day + timedelta(days=1))
        if dry_run:
            refs = list(pipeline.source().list_completed(lo, hi))
            done = DayDone(day, len(refs), [], 0)
        else:
            found = sweep(pipeline, lo, hi, reason="backfilled")
            if hi <= utcnow():
                with pipeline.engine.begin() as conn:
                    repo.write_checkpoint(conn, CHECKPOINT, None,
                                          {"since": since.isoformat(), "done_through": day.isoformat()})  # fmt: skip
            opened = set(found.version_ids)
            pending = [
                version_id
                for version_id in pending_version_ids(pipeline, lo, hi, waiting_in_broker=waiting_in_broker)
                if version_id not in opened
            ]
            done = DayDone(day, found.seen, found.version_ids, found.hidden, pending)
        if on_day is not None:
            on_day(done)
        yield done


def _outstanding(pipeline: Pipeline, start: datetime, end: datetime) -> tuple[int, datetime | None]:
    """How many versions of the range are still active, and the earliest time one of them can be worked on:
    the later of its retry time and the end of the lease a (possibly dead) process holds on it."""
    query = (
        sa.select(versions.c.lease_until, versions.c.next_attempt_at)
        .select_from(versions.join(encounters, encounters.c.ma_lk == versions.c.ma_lk))
        .where(*_range_filter(start, end))
    )
    now = utcnow()
    with pipeline.engine.connect() as conn:
        rows = conn.execute(query).all()
    due = []
    for lease_until, next_attempt_at in rows:
        times = [t for t in (as_utc(lease_until), as_utc(next_attempt_at)) if t is not None]
        due.append(max([now, *times]))
    return len(rows), min(due, default=None)


def finish_here(
    pipeline: Pipeline,
    start: datetime,
    end: datetime,
    *,
    owner: str,
    wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Deliver in this process every version of [start, end) that is still active; wait for retry times and
    expired leases, at most ``wait_s`` seconds in all. Returns how many versions are still active."""
    deadline = time.monotonic() + wait_s
    batch_size = pipeline.settings.delivery.batch_size
    while True:
        ids = pending_version_ids(pipeline, start, end)
        if ids and time.monotonic() < deadline:
            for batch in chunked(ids, batch_size):
                delivery.process_versions(pipeline, batch, owner=owner)
            continue
        left, due_at = _outstanding(pipeline, start, end)
        if left == 0:
            return 0
        pause = max((due_at - utcnow()).total_seconds(), 0.0) + 0.05 if due_at else 0.05
        if time.monotonic() + pause > deadline:
            return left
        sleep(pause)
