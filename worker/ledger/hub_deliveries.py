"""The ``deliveries`` table: each extra destination's (provincial hub's) own state of a version (DOMAIN.md §9.8).

The primary destination's state lives on ``versions``; a hub's lives here, one row per (version, hub), queued
once the primary accepted the version. Every attempt appends its audit event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from schemas.ports import GatewayReceipt
from worker.ledger import audit
from worker.ledger.audit import AuditEvent
from worker.ledger.db import utcnow
from worker.ledger.repository import AttemptResult
from worker.ledger.schema import deliveries, versions
from worker.ledger.states import State


@dataclass(frozen=True, slots=True)
class HubDelivery:
    """One version due at one hub."""

    version_id: int
    destination: str
    attempts: int
    ma_lk: str


def queue(conn: sa.Connection, version_ids: Sequence[int], destinations: Sequence[str]) -> None:
    """Queue versions for the hubs (those not queued yet); called in the transaction recording the primary's
    acceptance."""
    if not version_ids or not destinations:
        return
    now = utcnow()
    existing = {
        (row.version_id, row.destination)
        for row in conn.execute(
            sa.select(deliveries.c.version_id, deliveries.c.destination).where(
                deliveries.c.version_id.in_(version_ids)
            )
        )
    }
    rows = [
        {"version_id": vid, "destination": dest, "state": State.SIGNED, "attempts": 0, "updated_at": now}
        for vid in version_ids
        for dest in destinations
        if (vid, dest) not in existing
    ]
    if rows:
        conn.execute(sa.insert(deliveries), rows)


def claim_due(conn: sa.Connection, *, limit: int, now: datetime, until: datetime) -> list[HubDelivery]:
    """The due hub deliveries, oldest version first, each claimed (not due again) until ``until``."""
    due = conn.execute(
        sa.select(deliveries.c.version_id, deliveries.c.destination, deliveries.c.attempts, versions.c.ma_lk)
        .join(versions, versions.c.id == deliveries.c.version_id)
        .where(
            deliveries.c.state.in_([State.SIGNED.value, State.SUBMITTED.value]),
            sa.or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
        )
        .order_by(deliveries.c.version_id)
        .limit(limit)
    ).all()
    for row in due:
        _update(conn, row.version_id, row.destination, next_attempt_at=until)
    return [HubDelivery(row.version_id, row.destination, row.attempts, row.ma_lk) for row in due]


def record_attempt(
    conn: sa.Connection, delivery: HubDelivery, receipt: GatewayReceipt, result: AttemptResult
) -> None:
    """One hub attempt, as the delivery policy decided it, and its audit event."""
    values: dict[str, object] = {
        "state": result.state,
        "attempts": delivery.attempts + 1,
        "updated_at": utcnow(),
        "next_attempt_at": result.next_attempt_at,
        "ma_ket_qua": receipt.ma_ket_qua,
        "last_error_code": result.error_code,
    }
    if result.state is State.ACCEPTED:
        values.update(ma_giao_dich=receipt.ma_giao_dich, thoi_gian_tiep_nhan=receipt.thoi_gian_tiep_nhan)
    _update(conn, delivery.version_id, delivery.destination, **values)
    event = AuditEvent(
        "attempt",
        ma_lk=delivery.ma_lk,
        version_id=delivery.version_id,
        destination=delivery.destination,
        request_hash=receipt.request_sha256,
        http_status=receipt.http_status,
        ma_ket_qua=receipt.ma_ket_qua,
        ma_giao_dich=receipt.ma_giao_dich,
        thoi_gian_tiep_nhan=receipt.thoi_gian_tiep_nhan,
        detail={"result": result.state.value, "hub": True},
    )
    audit.append(conn, [event])


def defer(conn: sa.Connection, delivery: HubDelivery, *, reason: str, until: datetime) -> None:
    """Leave a hub delivery as it is (its hub is stopped, or a 401 may pass) and look at it again ``until``."""
    _update(conn, delivery.version_id, delivery.destination, next_attempt_at=until, last_error_code=reason)


def _update(conn: sa.Connection, version_id: int, destination: str, **values: object) -> None:
    conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.version_id == version_id, deliveries.c.destination == destination)
        .values(**values)
    )
