"""What monitoring reads and writes in the ledger: named queries with typed results, so that health checks,
the metrics exporter and the alerts never touch a table (``worker.ledger.schema``) themselves.

Read side: encounter counts by state (one pass over the ``(state, completed_at)`` index), late and dead
visits, stopped destinations, audit rows appended since a cursor, the newest sealed evidence, the first
audit event and PostgreSQL's autovacuum settings of the hot tables. Write side: the ``alert_state`` rows
(fired/cleared conditions) under one advisory lock per ledger, so two alert evaluations never notify twice.
Results carry ids, states, codes and counts only — never personal data.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from worker.ledger.db import as_utc, is_postgresql
from worker.ledger.schema import alert_state, audit_log, destination_status, encounters, evidence, versions
from worker.ledger.states import State

_ADVISORY_LOCK_KEY = 0x766E6961  # "vnia": one alert evaluation at a time per ledger (PostgreSQL)


# -------------------------------------------------------------------------------------- encounters


@dataclass(frozen=True, slots=True)
class StateRow:
    """One state's encounters: how many, the oldest visit's end, how many completed since the legal date."""

    state: str
    count: int
    oldest: datetime | None
    since_legal_start: int


def encounter_state_rows(conn: sa.Connection, legal_start: datetime) -> list[StateRow]:
    """One pass over the ``(state, completed_at)`` index: count, oldest visit and count since the legal date."""
    since = sa.func.sum(sa.case((encounters.c.completed_at >= as_utc(legal_start), 1), else_=0))
    rows = conn.execute(
        sa.select(
            encounters.c.state, sa.func.count(), sa.func.min(encounters.c.completed_at), since
        ).group_by(encounters.c.state)
    )
    return [StateRow(str(row[0]), int(row[1]), as_utc(row[2]), int(row[3] or 0)) for row in rows]


def _late(
    states: Collection[str], completed_from: datetime, completed_before: datetime
) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        encounters.c.completed_at >= as_utc(completed_from),
        encounters.c.completed_at < as_utc(completed_before),
        # An explicit IN list (not NOT IN): each state is a range scan of the (state, completed_at) index,
        # so the query touches the few unaccepted rows, never the whole accepted history.
        encounters.c.state.in_(sorted(states)),
    )


def count_in_states_by_state(
    conn: sa.Connection, states: Collection[str], completed_from: datetime, completed_before: datetime
) -> dict[str, int]:
    """Encounters in ``states`` completed in ``[completed_from, completed_before)``, counted by state."""
    window = _late(states, completed_from, completed_before)
    return {
        str(state): int(count)
        for state, count in conn.execute(
            sa.select(encounters.c.state, sa.func.count()).where(*window).group_by(encounters.c.state)
        )
    }


def oldest_in_states(
    conn: sa.Connection,
    states: Collection[str],
    completed_from: datetime,
    completed_before: datetime,
    *,
    limit: int,
) -> list[str]:
    """The MA_LK of the ``limit`` oldest visits of that window (ids only)."""
    window = _late(states, completed_from, completed_before)
    rows = conn.execute(
        sa.select(encounters.c.ma_lk).where(*window).order_by(encounters.c.completed_at).limit(limit)
    )
    return [str(row.ma_lk) for row in rows]


def dead_by_error_code(conn: sa.Connection) -> dict[str, int]:
    """Dead encounters counted by their current version's last error code (``unknown`` when none)."""
    return {
        str(code or "unknown"): int(count)
        for code, count in conn.execute(
            sa.select(versions.c.last_error_code, sa.func.count())
            .select_from(encounters.outerjoin(versions, versions.c.id == encounters.c.current_version_id))
            .where(encounters.c.state == State.DEAD)
            .group_by(versions.c.last_error_code)
        )
    }


def oldest_dead(conn: sa.Connection, *, limit: int) -> list[str]:
    """The MA_LK of the ``limit`` oldest dead visits."""
    rows = conn.execute(
        sa.select(encounters.c.ma_lk)
        .where(encounters.c.state == State.DEAD)
        .order_by(encounters.c.completed_at)
        .limit(limit)
    )
    return [str(row.ma_lk) for row in rows]


# ------------------------------------------------------------------------------------ destinations


@dataclass(frozen=True, slots=True)
class DestinationFlag:
    destination: str
    stopped: bool
    reason: str | None


def destination_flags(conn: sa.Connection) -> dict[str, DestinationFlag]:
    """Every destination the ledger holds a status for, stopped or not, with the stop's reason."""
    rows = conn.execute(
        sa.select(destination_status.c.destination, destination_status.c.stopped, destination_status.c.reason)
    )
    return {
        row.destination: DestinationFlag(str(row.destination), bool(row.stopped), row.reason) for row in rows
    }


# --------------------------------------------------------------------------------------- audit log


def last_audit_id(conn: sa.Connection, *, after: int | None = None) -> int:
    """The highest audit row id (above ``after``, when given; 0 when there is none), on the primary key."""
    query = sa.select(sa.func.max(audit_log.c.id))
    if after is not None:
        query = query.where(audit_log.c.id > after)
    return int(conn.execute(query).scalar() or 0)


@dataclass(frozen=True, slots=True)
class AttemptCount:
    destination: str | None
    ma_ket_qua: str | None
    count: int


def attempt_counts(conn: sa.Connection, after: int, upto: int) -> list[AttemptCount]:
    """``attempt`` audit rows with ``after < id <= upto``, counted by destination and ``maKetQua``."""
    rows = conn.execute(
        sa.select(audit_log.c.destination, audit_log.c.ma_ket_qua, sa.func.count())
        .where(audit_log.c.id > after, audit_log.c.id <= upto, audit_log.c.event == "attempt")
        .group_by(audit_log.c.destination, audit_log.c.ma_ket_qua)
    )
    return [AttemptCount(destination, code, int(count)) for destination, code, count in rows]


@dataclass(frozen=True, slots=True)
class StopEvent:
    destination: str | None
    detail: str | None  # the audit row's JSON detail, e.g. ``{"reason": "config:402"}``


def stop_events(conn: sa.Connection, after: int, upto: int) -> list[StopEvent]:
    """``destination_stopped`` audit rows with ``after < id <= upto``."""
    rows = conn.execute(
        sa.select(audit_log.c.destination, audit_log.c.detail).where(
            audit_log.c.id > after, audit_log.c.id <= upto, audit_log.c.event == "destination_stopped"
        )
    )
    return [StopEvent(destination, detail) for destination, detail in rows]


def first_audit_event_at(conn: sa.Connection) -> datetime | None:
    """When the audit chain began (its first row), in UTC; ``None`` while it is empty."""
    return as_utc(conn.execute(sa.select(audit_log.c.at).order_by(audit_log.c.id).limit(1)).scalar())


# ---------------------------------------------------------------------------------------- evidence


@dataclass(frozen=True, slots=True)
class SealedEvidence:
    version_id: int
    key_id: str


def newest_sealed_evidence(conn: sa.Connection) -> SealedEvidence | None:
    """The newest stored evidence blob's version id and key id: one index probe from the end of the table."""
    row = conn.execute(
        sa.select(evidence.c.version_id, evidence.c.document_key_id)
        .where(evidence.c.document_key_id.is_not(None))
        .order_by(evidence.c.version_id.desc())
        .limit(1)
    ).first()
    return SealedEvidence(int(row.version_id), str(row.document_key_id)) if row is not None else None


# ------------------------------------------------------------------------------------- maintenance


@dataclass(frozen=True, slots=True)
class Autovacuum:
    server: str  # the server's ``autovacuum`` setting
    disabled: list[str]  # tables whose own ``autovacuum_enabled`` is false


def autovacuum_settings(conn: sa.Connection, tables: Sequence[str]) -> Autovacuum:
    """PostgreSQL only: the server's ``autovacuum`` setting, and which of ``tables`` turned it off."""
    server = conn.execute(sa.text("SELECT current_setting('autovacuum')")).scalar_one()
    disabled = (
        conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relname = ANY(:tables) "
                "AND 'autovacuum_enabled=false' = ANY(coalesce(c.reloptions, '{}')) ORDER BY c.relname"
            ),
            {"tables": list(tables)},
        )
        .scalars()
        .all()
    )
    return Autovacuum(str(server), [str(name) for name in disabled])


# ------------------------------------------------------------------------------------- alert state


def lock_alerts(conn: sa.Connection) -> None:
    """One alert evaluation (or anchor record) at a time per ledger, until this transaction ends."""
    if is_postgresql(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    # SQLite: the transaction already holds the database write lock (BEGIN IMMEDIATE).


@dataclass(frozen=True, slots=True)
class StoredAlert:
    condition: str
    firing: bool
    since: datetime | None
    detail: str | None  # JSON: ``{"summary": ..., **detail}``


def _stored(row: sa.Row[Any, Any, Any, Any]) -> StoredAlert:
    return StoredAlert(str(row.condition), bool(row.firing), as_utc(row.since), row.detail)


def read_alerts(conn: sa.Connection, conditions: Collection[str]) -> dict[str, StoredAlert]:
    """The stored state of each of ``conditions`` that has one."""
    if not conditions:
        return {}
    rows = conn.execute(
        sa.select(
            alert_state.c.condition, alert_state.c.firing, alert_state.c.since, alert_state.c.detail
        ).where(alert_state.c.condition.in_(list(conditions)))
    )
    return {row.condition: _stored(row) for row in rows}


def alert_conditions_starting(conn: sa.Connection, prefix: str) -> list[str]:
    """Every stored condition whose name starts with ``prefix`` (``destination_stopped:`` …)."""
    rows = conn.execute(sa.select(alert_state.c.condition).where(alert_state.c.condition.startswith(prefix)))
    return [str(condition) for condition in rows.scalars()]


def insert_alert(conn: sa.Connection, condition: str, *, firing: bool, since: datetime, detail: str) -> None:
    conn.execute(
        sa.insert(alert_state).values(condition=condition, firing=firing, since=since, detail=detail)
    )


def update_alert(conn: sa.Connection, condition: str, *, firing: bool, since: datetime, detail: str) -> None:
    conn.execute(
        sa.update(alert_state)
        .where(alert_state.c.condition == condition)
        .values(firing=firing, since=since, detail=detail)
    )


def update_alert_detail(conn: sa.Connection, condition: str, detail: str) -> None:
    """A condition still firing with new numbers: the stored detail follows, the state does not change."""
    conn.execute(sa.update(alert_state).where(alert_state.c.condition == condition).values(detail=detail))


def set_alert_firing(conn: sa.Connection, condition: str, *, since: datetime, firing: bool) -> None:
    """Set ``firing`` on the row of ``condition`` stored at ``since`` (a later transition is left alone)."""
    conn.execute(
        sa.update(alert_state)
        .where(alert_state.c.condition == condition, alert_state.c.since == since)
        .values(firing=firing)
    )


def firing_alerts(conn: sa.Connection) -> list[StoredAlert]:
    """Every condition currently firing, by name."""
    rows = conn.execute(
        sa.select(alert_state.c.condition, alert_state.c.firing, alert_state.c.since, alert_state.c.detail)
        .where(alert_state.c.firing)
        .order_by(alert_state.c.condition)
    )
    return [_stored(row) for row in rows]
