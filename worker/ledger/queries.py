"""Read-side queries of the ledger for operators: one encounter's history, queues by state, replay sets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from worker.ledger.db import as_utc, utcnow
from worker.ledger.schema import audit_log, encounters, versions
from worker.ledger.states import ACTIVE, State


@dataclass(frozen=True, slots=True)
class History:
    encounter: dict[str, Any] | None
    versions: list[dict[str, Any]]
    audit: list[dict[str, Any]]


def history(conn: sa.Connection, ma_lk: str) -> History:
    enc = conn.execute(sa.select(encounters).where(encounters.c.ma_lk == ma_lk)).mappings().first()
    vers = (
        conn.execute(sa.select(versions).where(versions.c.ma_lk == ma_lk).order_by(versions.c.id))
        .mappings()
        .all()
    )
    events = (
        conn.execute(sa.select(audit_log).where(audit_log.c.ma_lk == ma_lk).order_by(audit_log.c.id))
        .mappings()
        .all()
    )
    return History(dict(enc) if enc else None, [dict(v) for v in vers], [dict(e) for e in events])


def counts_by_state(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(encounters.c.state, sa.func.count()).group_by(encounters.c.state))
    return {row[0]: row[1] for row in rows}


def active_version_count(conn: sa.Connection) -> int:
    """Versions the pipeline still has work to do on (``states.ACTIVE``)."""
    query = sa.select(sa.func.count()).where(versions.c.state.in_([state.value for state in ACTIVE]))
    return int(conn.execute(query).scalar_one())


def oldest_unaccepted(conn: sa.Connection) -> datetime | None:
    value = conn.execute(
        sa.select(sa.func.min(encounters.c.completed_at)).where(encounters.c.state != State.ACCEPTED)
    ).scalar()
    return as_utc(value)


def versions_in_state(
    conn: sa.Connection,
    state: State,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    error_code: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Current versions in ``state`` (the encounter's current version), oldest visit first."""
    query = (
        sa.select(
            versions.c.id,
            versions.c.ma_lk,
            versions.c.state,
            versions.c.attempts,
            versions.c.last_error_code,
            versions.c.issues,
            versions.c.updated_at,
            encounters.c.completed_at,
            encounters.c.his_key,
        )
        .join(encounters, encounters.c.current_version_id == versions.c.id)
        .where(versions.c.state == state)
        .order_by(encounters.c.completed_at)
    )
    if since is not None:
        query = query.where(encounters.c.completed_at >= as_utc(since))
    if until is not None:
        query = query.where(encounters.c.completed_at < as_utc(until))
    if error_code is not None:
        query = query.where(versions.c.last_error_code == error_code)
    if limit is not None:
        query = query.limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()]


def requeue_dead(conn: sa.Connection, version_ids: list[int]) -> int:
    """Dead versions get a fresh set of attempts with the same signed bytes (never rebuilt)."""
    result = conn.execute(
        sa.update(versions)
        .where(versions.c.id.in_(version_ids), versions.c.state == State.DEAD)
        .values(state=State.SIGNED, attempts=0, next_attempt_at=None, enqueued_at=None, updated_at=utcnow())
    )
    conn.execute(
        sa.update(encounters)
        .where(encounters.c.current_version_id.in_(version_ids), encounters.c.state == State.DEAD)
        .values(state=State.SIGNED)
    )
    return result.rowcount
