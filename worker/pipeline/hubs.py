"""Extra destinations (provincial health-data hubs, DOMAIN.md §9.8): the same signed bytes, their own receipts.

A hub never blocks BHXH: a version is queued for the hubs only once the primary destination accepted it,
and hub deliveries run on their own schedule with their own retries. The version's state (and coverage)
follows the primary destination alone; each hub's state lives in ``deliveries``.

A hub follows the same retry policy as the primary destination (``worker.pipeline.policy``): an answer about
the version moves its delivery (``policy.decide``), AUTH/CONFIG stop the hub (``policy.halt_destination``) and
leave its deliveries as they are until an operator resumes it — a wrong hub password is never retried to DEAD.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from schemas.ports import DocumentKind, Gateway, GatewayReceipt, Outcome
from worker.ledger import hub_deliveries
from worker.ledger import repository as repo
from worker.ledger.db import utcnow
from worker.ledger.hub_deliveries import HubDelivery
from worker.ledger.states import State
from worker.logging import get_logger
from worker.pipeline import policy
from worker.pipeline.context import Pipeline

log = get_logger(__name__)
_rng = random.SystemRandom()
#: A claimed delivery is not picked again for this long (a crash mid-send retries after it).
CLAIM_FOR = timedelta(minutes=10)


def secondary_destinations(pipeline: Pipeline) -> list[str]:
    primary, _ = pipeline.primary_gateway()
    return [name for name, dest in pipeline.settings.destinations.items() if dest.enabled and name != primary]


def queue_for_hubs(conn: sa.Connection, version_ids: Sequence[int], destinations: Sequence[str]) -> None:
    """Called in the transaction that records the primary's acceptance."""
    hub_deliveries.queue(conn, version_ids, destinations)


@dataclass
class HubResult:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    retrying: int = 0
    dead: int = 0
    #: Left as they are: their hub is stopped (or a 401 after a fresh login may still pass).
    deferred: int = 0


def deliver_due(pipeline: Pipeline, *, limit: int = 200) -> HubResult:
    """Send due hub deliveries (claimed first, so overlapping runs do not send the same one twice at once)."""
    result = HubResult()
    now = utcnow()
    with pipeline.engine.begin() as conn:
        due = hub_deliveries.claim_due(conn, limit=limit, now=now, until=now + CLAIM_FOR)
        stopped = set(repo.stopped_destinations(conn))
    for delivery in due:
        gateway = pipeline.gateways.get(delivery.destination)
        if gateway is None or delivery.destination in stopped:
            continue
        if _deliver(pipeline, gateway, delivery, result):
            stopped.add(delivery.destination)
    return result


def _deliver(pipeline: Pipeline, gateway: Gateway, delivery: HubDelivery, result: HubResult) -> bool:
    """Send one delivery and record what the policy makes of the answer. Returns whether its hub stopped."""
    with pipeline.engine.connect() as conn:
        document = repo.signed_document(conn, delivery.version_id, pipeline.evidence_keys)
    if document is None:
        return False
    receipt = gateway.submit(document, DocumentKind.CLAIM)
    result.sent += 1
    _log_attempt(delivery, receipt)
    if policy.stops_destination(receipt):
        return _halt(pipeline, delivery, receipt, result)
    decision = policy.decide(
        receipt,
        attempts_before=delivery.attempts,
        settings=pipeline.settings.delivery,
        now=utcnow(),
        rng=_rng,
    )
    _count(result, decision.state)
    with pipeline.engine.begin() as conn:
        hub_deliveries.record_attempt(conn, delivery, receipt, decision)
        if receipt.outcome is Outcome.ACCEPTED:
            repo.clear_auth_failures(conn, delivery.destination)
    return False


def _halt(pipeline: Pipeline, delivery: HubDelivery, receipt: GatewayReceipt, result: HubResult) -> bool:
    """AUTH/CONFIG: stop the hub (or count its 401) and leave the delivery as it is, as for the primary."""
    with pipeline.engine.begin() as conn:
        stopped = policy.halt_destination(conn, delivery.destination, receipt)
        label = "destination-stopped" if stopped else "auth-retry"
        until = utcnow() + policy.recheck_after(stopped, pipeline.settings.delivery)
        hub_deliveries.defer(conn, delivery, reason=f"{label}:{delivery.destination}", until=until)
    result.deferred += 1
    if stopped:
        log.error(
            "hub stopped: configuration or authentication error",
            destination=delivery.destination,
            reason=policy.halt_reason(receipt),
        )
    return stopped


def _count(result: HubResult, state: State) -> None:
    if state is State.ACCEPTED:
        result.accepted += 1
    elif state is State.REJECTED:
        result.rejected += 1
    elif state is State.DEAD:
        result.dead += 1
    elif state is State.SUBMITTED:
        result.retrying += 1


def _log_attempt(delivery: HubDelivery, receipt: GatewayReceipt) -> None:
    log.info(
        "hub attempt",
        ma_lk=delivery.ma_lk,
        version_id=delivery.version_id,
        destination=delivery.destination,
        outcome=receipt.outcome.value,
        ma_ket_qua=receipt.ma_ket_qua,
    )
