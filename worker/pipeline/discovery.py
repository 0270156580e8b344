"""Discovery (watermark), the periodic sweep (date range) and the dispatcher of due work.

The watermark catches changes quickly; the sweep compares the HIS list with the ledger over a date range and
catches what the watermark missed (late commits, clock skew); encounters the HIS stops listing are marked
hidden and reported. The dispatcher hands due, unleased versions to workers: it is what re-enqueues the
work of a lost task, so a message lost in Redis delays a version but never loses it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.domain import derive_ma_lk
from schemas.ports import Cursor, EncounterRef
from worker.ledger import repository as repo
from worker.logging import get_logger
from worker.pipeline.context import Pipeline

log = get_logger(__name__)
WATERMARK = "discovery"
_FLUSH_EVERY = 1000


#: Receives the versions opened by each committed page (e.g. to enqueue them at once).
OnOpened = Callable[[list[int]], None]


@dataclass
class DiscoveryResult:
    seen: int = 0
    new: int = 0
    changed: int = 0
    opened: int = 0
    version_ids: list[int] = field(default_factory=list)  # kept only when no ``on_opened`` takes them
    hidden: int = 0
    complete: bool = True  # False: stopped at a page boundary when its time budget ran out; more to read


def _register(
    pipeline: Pipeline,
    refs: list[EncounterRef],
    result: DiscoveryResult,
    *,
    reason: str,
    checkpoint: tuple[str, Cursor | None] | None = None,
    on_opened: OnOpened | None = None,
) -> None:
    with pipeline.engine.begin() as conn:
        registration = repo.register_refs(
            conn, refs, facility_code=pipeline.settings.payload.facility_code, reason=reason
        )
        if checkpoint is not None:
            repo.write_checkpoint(conn, checkpoint[0], checkpoint[1])
    result.seen += len(refs)
    result.new += registration.new_encounters
    result.changed += registration.changed_encounters
    result.opened += len(registration.version_ids)
    if on_opened is None:
        result.version_ids.extend(registration.version_ids)
    elif registration.version_ids:
        # Handed on page by page: a first discovery of a million visits must not hold a million ids.
        on_opened(registration.version_ids)


def discover(
    pipeline: Pipeline, *, on_opened: OnOpened | None = None, budget_s: float | None = None
) -> DiscoveryResult:
    """Register everything changed since the watermark; the watermark advances with each committed page.

    ``on_opened`` gets the versions each committed page opened; without it they collect in the result.
    ``budget_s``: stop at the first page boundary after that many seconds (``complete`` is then False and
    the next call goes on from the watermark): a first discovery of a million visits outlasts any task time
    limit, and a limit hit in the middle of a page would throw that page's work away."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    with pipeline.engine.begin() as conn:
        cursor, _ = repo.read_checkpoint(conn, WATERMARK)
    result = DiscoveryResult()
    page: list[EncounterRef] = []
    newest = cursor
    refs = iter(pipeline.source().discover(cursor))
    for ref in refs:
        page.append(ref)
        position = Cursor(ref.changed_at, ref.his_key)
        newest = position if newest is None or position > newest else newest
        if len(page) >= _FLUSH_EVERY:
            _register(pipeline, page, result, reason="discovered", checkpoint=(WATERMARK, newest),
                      on_opened=on_opened)  # fmt: skip
            page = []
            if deadline is not None and time.monotonic() >= deadline:
                result.complete = False
                break
    close = getattr(refs, "close", None)
    if close is not None:
        close()  # a generator left early releases its HIS connection now, not when collected
    if page:  # full pages already committed their checkpoint, which equals newest
        _register(pipeline, page, result, reason="discovered", checkpoint=(WATERMARK, newest),
                  on_opened=on_opened)  # fmt: skip
    log.info(
        "discovery done"
        if result.complete
        else "discovery paused (time budget): continues from the watermark",
        seen=result.seen,
        new=result.new,
        changed=result.changed,
        opened=result.opened,
    )
    return result


def sweep(
    pipeline: Pipeline,
    start: datetime,
    end: datetime,
    *,
    reason: str = "swept",
    on_opened: OnOpened | None = None,
) -> DiscoveryResult:
    """Compare the HIS list of completed encounters in [start, end) with the ledger and reconcile."""
    facility = pipeline.settings.payload.facility_code
    result = DiscoveryResult()
    listed: set[str] = set()
    page: list[EncounterRef] = []
    for ref in pipeline.source().list_completed(start, end):
        listed.add(derive_ma_lk(facility, ref.his_key))
        page.append(ref)
        if len(page) >= _FLUSH_EVERY:
            _register(pipeline, page, result, reason=reason, on_opened=on_opened)
            page = []
    if page:
        _register(pipeline, page, result, reason=reason, on_opened=on_opened)
    with pipeline.engine.begin() as conn:
        gone = sorted(repo.known_ma_lks(conn, start, end) - listed)
        result.hidden = repo.mark_hidden(conn, gone)
    if result.new or result.changed or result.hidden:
        log.info(
            "sweep reconciled",
            start=start.isoformat(),
            end=end.isoformat(),
            new=result.new,
            changed=result.changed,
            hidden=result.hidden,
        )
    return result


def due_batches(
    pipeline: Pipeline, *, queued_messages: int | None = None, limit: int = 10_000
) -> list[list[int]]:
    """Due versions not already waiting in the broker, chunked by the batch size and marked enqueued.

    ``queued_messages``: batch messages now waiting in the broker (``None``: unknown). With it, a backlog that
    keeps messages queued longer than ``delivery.stuck_after_s`` is not mistaken for lost messages."""
    delivery = pipeline.settings.delivery
    lost_after = timedelta(seconds=delivery.stuck_after_s)
    capacity = None if queued_messages is None else queued_messages * delivery.batch_size
    with pipeline.engine.begin() as conn:
        ids = repo.due_version_ids(conn, limit=limit, lost_after=lost_after, broker_capacity=capacity)
        repo.mark_enqueued(conn, ids)
    return list(chunked(ids, pipeline.settings.delivery.batch_size))


def chunked(ids: Iterable[int], size: int) -> Iterable[list[int]]:
    batch: list[int] = []
    for version_id in ids:
        batch.append(version_id)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
