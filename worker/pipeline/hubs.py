"""Extra destinations (provincial health-data hubs, DOMAIN.md §9.8): the same signed bytes, their own receipts.

A hub never blocks BHXH: a version is queued for the hubs only once the primary destination accepted it,
and hub deliveries run on their own schedule with their own retries. The version's state (and coverage)
follows the primary destination alone; each hub's state lives in ``deliveries``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from schemas.ports import DocumentKind, Outcome
from worker.ledger import audit
from worker.ledger import repository as repo
from worker.ledger.audit import AuditEvent
from worker.ledger.db import utcnow
from worker.ledger.schema import deliveries, versions
from worker.ledger.states import State
from worker.logging import get_logger
from worker.pipeline.context import Pipeline
from worker.pipeline.policy import backoff

log = get_logger(__name__)
_rng = random.SystemRandom()
#: A claimed delivery is not picked again for this long (a crash mid-send retries after it).
CLAIM_FOR = timedelta(minutes=10)


def secondary_destinations(pipeline: Pipeline) -> list[str]:
    primary, _ = pipeline.primary_gateway()
    return [name for name, dest in pipeline.settings.destinations.items() if dest.enabled and name != primary]


def queue_for_hubs(conn: sa.Connection, version_ids: list[int], destinations: list[str]) -> None:
    """Called in the transaction that records the primary's acceptance."""
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


@dataclass
class HubResult:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    retrying: int = 0
    dead: int = 0


def deliver_due(pipeline: Pipeline, *, limit: int = 200) -> HubResult:
    """Send due hub deliveries (claimed first, so overlapping runs do not send the same one twice at once)."""
    result = HubResult()
    now = utcnow()
    with pipeline.engine.begin() as conn:
        due = conn.execute(
            sa.select(
                deliveries.c.version_id, deliveries.c.destination, deliveries.c.attempts, versions.c.ma_lk
            )
            .join(versions, versions.c.id == deliveries.c.version_id)
            .where(
                deliveries.c.state.in_([State.SIGNED.value, State.SUBMITTED.value]),
                sa.or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
            )
            .order_by(deliveries.c.version_id)
            .limit(limit)
        ).all()
        for row in due:
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.version_id == row.version_id, deliveries.c.destination == row.destination)
                .values(next_attempt_at=now + CLAIM_FOR)
            )
        stopped = repo.stopped_destinations(conn)
    for row in due:
        gateway = pipeline.gateways.get(row.destination)
        if gateway is None or row.destination in stopped:
            continue
        with pipeline.engine.connect() as conn:
            document = repo.signed_document(conn, row.version_id, pipeline.evidence_keys)
        if document is None:
            continue
        receipt = gateway.submit(document, DocumentKind.CLAIM)
        result.sent += 1
        attempt = row.attempts + 1
        values: dict[str, object] = {
            "attempts": attempt,
            "updated_at": utcnow(),
            "next_attempt_at": None,
            "ma_ket_qua": receipt.ma_ket_qua,
            "last_error_code": None,
        }
        if receipt.outcome is Outcome.ACCEPTED:
            values.update(
                state=State.ACCEPTED,
                ma_giao_dich=receipt.ma_giao_dich,
                thoi_gian_tiep_nhan=receipt.thoi_gian_tiep_nhan,
            )
            result.accepted += 1
        elif receipt.outcome is Outcome.DATA_ERROR:
            values.update(state=State.REJECTED, last_error_code=f"gateway:{receipt.ma_ket_qua}")
            result.rejected += 1
        elif attempt >= pipeline.settings.delivery.max_attempts:
            values.update(state=State.DEAD, last_error_code=receipt.outcome.value)
            result.dead += 1
        else:
            delay = backoff(attempt, pipeline.settings.delivery, _rng)
            values.update(
                state=State.SUBMITTED, next_attempt_at=utcnow() + delay, last_error_code=receipt.outcome.value
            )
            result.retrying += 1
        with pipeline.engine.begin() as conn:
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.version_id == row.version_id, deliveries.c.destination == row.destination)
                .values(**values)
            )
            audit.append(
                conn,
                [
                    AuditEvent(
                        "attempt",
                        ma_lk=row.ma_lk,
                        version_id=row.version_id,
                        destination=row.destination,
                        request_hash=receipt.request_sha256,
                        http_status=receipt.http_status,
                        ma_ket_qua=receipt.ma_ket_qua,
                        ma_giao_dich=receipt.ma_giao_dich,
                        thoi_gian_tiep_nhan=receipt.thoi_gian_tiep_nhan,
                        detail={"result": str(values["state"]), "hub": True},
                    )
                ],
            )
        log.info(
            "hub attempt",
            ma_lk=row.ma_lk,
            version_id=row.version_id,
            destination=row.destination,
            outcome=receipt.outcome.value,
            ma_ket_qua=receipt.ma_ket_qua,
        )
    return result
