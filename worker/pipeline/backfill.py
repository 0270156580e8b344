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

from schemas.domain.values import local_midnight
from worker.ledger import migrate, ranges
from worker.ledger import repository as repo
from worker.ledger.db import utcnow
from worker.pipeline import delivery
from worker.pipeline.context import Pipeline
from worker.pipeline.discovery import chunked, sweep

CHECKPOINT = "backfill"
#: Who the ledger says leased the versions a backfill delivers in its own process.
OWNER = "backfill"
#: Hands a list of version ids over to the workers (marking them enqueued); the wiring supplies it.
Handover = Callable[[list[int]], object]


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
    with pipeline.engine.connect() as conn:
        return ranges.pending_version_ids(
            conn, start, end, now=utcnow(), waiting_in_broker=waiting_in_broker, limit=limit
        )


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
    now = utcnow()
    with pipeline.engine.connect() as conn:
        rows = ranges.outstanding(conn, start, end)
    due = [max([now, *(t for t in (row.lease_until, row.next_attempt_at) if t is not None)]) for row in rows]
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


class LedgerNotMigratedError(RuntimeError):
    """The ledger schema is behind the code: a backfill would write rows the code cannot read back."""


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    since: date
    #: The first day not walked (exclusive).
    until: date
    dry_run: bool = False
    #: Build/sign/send in this process instead of handing over to the workers.
    process_here: bool = False
    #: ``process_here``: seconds to wait for retries and for the leases of a stopped run.
    wait_s: float = 900.0


@dataclass
class BackfillTotals:
    days: int = 0
    seen: int = 0
    opened: int = 0
    pending: int = 0
    hidden: int = 0
    #: ``process_here``: versions still active when the wait ran out.
    left: int = 0

    def add(self, done: DayDone) -> None:
        self.days += 1
        self.seen += done.seen
        self.opened += len(done.opened)
        self.pending += len(done.pending)
        self.hidden += done.hidden


def first_day(pipeline: Pipeline, request: BackfillRequest) -> date:
    """The day the run starts at: the resume point of a real run, ``since`` for a dry run."""
    return request.since if request.dry_run else resume_day(pipeline, request.since)


def run_backfill(
    pipeline: Pipeline,
    request: BackfillRequest,
    *,
    handover: Handover | None,
    waiting_in_broker: timedelta | None,
    on_start: Callable[[date, int], None] | None = None,
    on_day: Callable[[DayDone, BackfillTotals], None] | None = None,
) -> BackfillTotals:
    """The whole backfill: register each day, hand its versions over (to ``handover``, or delivered here with
    ``process_here``), then with ``process_here`` finish what is still active. Owns ``pipeline``: it is closed
    when the run ends, however it ends. ``on_start`` hears the first day and how many days are to walk."""
    try:
        if not migrate.is_up_to_date(pipeline.engine):
            raise LedgerNotMigratedError("the ledger schema is not up to date")
        if on_start is not None:
            first = first_day(pipeline, request)
            on_start(first, max((request.until - first).days, 0))
        totals = BackfillTotals()
        for done in backfill_days(
            pipeline,
            since=request.since,
            until=request.until,
            dry_run=request.dry_run,
            waiting_in_broker=waiting_in_broker,
        ):
            totals.add(done)
            _hand_over(pipeline, [*done.opened, *done.pending], request, handover)
            if on_day is not None:
                on_day(done, totals)
        if request.process_here and not request.dry_run:
            start, end = local_midnight(request.since), local_midnight(request.until)
            totals.left = finish_here(pipeline, start, end, owner=OWNER, wait_s=request.wait_s)
        return totals
    finally:
        pipeline.close()


def _hand_over(
    pipeline: Pipeline, ids: list[int], request: BackfillRequest, handover: Handover | None
) -> None:
    if request.process_here:
        for batch in chunked(ids, pipeline.settings.delivery.batch_size):
            delivery.process_versions(pipeline, batch, owner=OWNER)
    elif handover is not None and ids:
        handover(ids)
