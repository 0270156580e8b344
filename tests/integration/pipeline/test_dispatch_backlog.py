"""The dispatcher tells a long backlog from lost messages: versions whose message has waited longer than
``stuck_after_s`` are re-sent only when the broker cannot be holding them (real Redis, real ledgers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.ports import EncounterRef
from worker.celery_app import SUBMISSION_QUEUE, create_celery, queued_messages
from worker.config import load_settings
from worker.ledger import repository as repo
from worker.ledger.db import utcnow
from worker.ledger.schema import versions

LOST_AFTER = timedelta(minutes=15)


@pytest.fixture(params=["sqlite_ledger", "pg_ledger"])
def ledger(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue(request.param)
    return engine


def versions_enqueued(engine: Engine, count: int, *, minutes_ago: float | None) -> list[int]:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    refs = [
        EncounterRef(his_key=f"K{minutes_ago}-{n}", completed_at=start, changed_at=start)
        for n in range(count)
    ]
    with engine.begin() as conn:
        ids = repo.register_refs(conn, refs, facility_code="79999").version_ids
        if minutes_ago is not None:
            repo.mark_enqueued(conn, ids, at=utcnow() - timedelta(minutes=minutes_ago))
    return ids


def due(engine: Engine, capacity: int | None) -> set[int]:
    with engine.begin() as conn:
        return set(repo.due_version_ids(conn, limit=1000, lost_after=LOST_AFTER, broker_capacity=capacity))


def test_a_backlog_the_broker_still_holds_is_not_sent_twice(ledger: Engine) -> None:
    never_sent = versions_enqueued(ledger, 3, minutes_ago=None)
    recent = versions_enqueued(ledger, 4, minutes_ago=1)
    waiting_long = versions_enqueued(ledger, 10, minutes_ago=40)
    # 10 overdue versions, and the queued messages can hold 10 or more: they are queued, not lost.
    assert due(ledger, capacity=10) == set(never_sent)
    assert due(ledger, capacity=500) == set(never_sent)
    # Fewer places in the broker than overdue versions (flushed or restarted): the overdue ones are re-sent.
    assert due(ledger, capacity=9) == set(never_sent) | set(waiting_long)
    assert due(ledger, capacity=0) == set(never_sent) | set(waiting_long)
    # Broker depth unknown: as before, anything overdue counts as lost (duplicates are harmless, loss is not).
    assert due(ledger, capacity=None) == set(never_sent) | set(waiting_long)
    assert not set(recent) & due(ledger, capacity=None)


def test_leased_and_done_versions_are_never_counted_as_lost(ledger: Engine) -> None:
    overdue = versions_enqueued(ledger, 2, minutes_ago=40)
    with ledger.begin() as conn:
        conn.execute(
            sa.update(versions).where(versions.c.id == overdue[0]).values(lease_until=utcnow() + LOST_AFTER)
        )
        conn.execute(sa.update(versions).where(versions.c.id == overdue[1]).values(state="accepted"))
    assert due(ledger, capacity=0) == set()


def test_queue_depth_is_read_from_real_redis(fresh_redis_url: str) -> None:
    app = create_celery(load_settings(broker={"url": fresh_redis_url}))
    assert queued_messages(app) == 0  # an empty Redis queue has no key at all: still a depth, not "unknown"
    for batch in ([1, 2], [3], [4, 5, 6]):
        app.send_task("vneid.process_batch", args=(batch,), queue=SUBMISSION_QUEUE)
    assert queued_messages(app) == 3
    redis.Redis.from_url(fresh_redis_url).flushdb()
    assert queued_messages(app) == 0


def test_an_unreachable_broker_gives_an_unknown_depth() -> None:
    app = create_celery(load_settings(broker={"url": "redis://127.0.0.1:1/0"}))
    app.conf.broker_connection_max_retries = 0
    app.conf.broker_transport_options = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    assert queued_messages(app) is None
