"""Backfill: walk the HIS day by day since a date, register every completed encounter, enqueue the rest.

Resumable: the last fully registered day is a ledger checkpoint, and registering is idempotent, so a killed
backfill re-run continues where it stopped and never opens a version twice for unchanged content.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from worker.domain.values import VIETNAM_TZ
from worker.ledger import repository as repo
from worker.pipeline.context import Pipeline
from worker.pipeline.discovery import sweep

CHECKPOINT = "backfill"


@dataclass(frozen=True, slots=True)
class DayDone:
    day: date
    seen: int
    opened: list[int]
    hidden: int


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


def backfill_days(
    pipeline: Pipeline,
    *,
    since: date,
    until: date,
    dry_run: bool = False,
    on_day: Callable[[DayDone], None] | None = None,
) -> Iterator[DayDone]:
    """Register each day [resume point, until); the checkpoint is written after each day commits."""
    for day in days_between(resume_day(pipeline, since), until):
        lo = datetime.combine(day, time(0), tzinfo=VIETNAM_TZ)
        hi = lo + timedelta(days=1)
        if dry_run:
            refs = list(pipeline.source().list_completed(lo, hi))
            done = DayDone(day, len(refs), [], 0)
        else:
            found = sweep(pipeline, lo, hi, reason="backfilled")
            with pipeline.engine.begin() as conn:
                repo.write_checkpoint(
                    conn, CHECKPOINT, None, {"since": since.isoformat(), "done_through": day.isoformat()}
                )
            done = DayDone(day, found.seen, found.version_ids, found.hidden)
        if on_day is not None:
            on_day(done)
        yield done
