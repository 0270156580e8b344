"""Versions of the encounters completed in a time range: what a backfill hands over and waits for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from worker.ledger.db import as_utc
from worker.ledger.schema import encounters, versions
from worker.ledger.states import ACTIVE

_ACTIVE = [state.value for state in ACTIVE]


@dataclass(frozen=True, slots=True)
class Outstanding:
    """An active version of the range: when its retry is due and when the lease on it runs out."""

    lease_until: datetime | None
    next_attempt_at: datetime | None


def _active_in_range(start: datetime, end: datetime) -> list[sa.ColumnElement[bool]]:
    return [
        encounters.c.completed_at >= as_utc(start),
        encounters.c.completed_at < as_utc(end),
        versions.c.state.in_(_ACTIVE),
    ]


def pending_version_ids(
    conn: sa.Connection,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    waiting_in_broker: timedelta | None,
    limit: int,
) -> list[int]:
    """Active versions of the encounters completed in [start, end) that are due and not leased. With
    ``waiting_in_broker``, versions enqueued less than that long ago are left to the message already sent."""
    conditions = [
        *_active_in_range(start, end),
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
    return [row.id for row in conn.execute(query)]


def outstanding(conn: sa.Connection, start: datetime, end: datetime) -> list[Outstanding]:
    """Every version of the range still active, with its retry time and lease end (as UTC)."""
    query = (
        sa.select(versions.c.lease_until, versions.c.next_attempt_at)
        .select_from(versions.join(encounters, encounters.c.ma_lk == versions.c.ma_lk))
        .where(*_active_in_range(start, end))
    )
    return [Outstanding(as_utc(row.lease_until), as_utc(row.next_attempt_at)) for row in conn.execute(query)]
