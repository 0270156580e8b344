"""What a classified gateway outcome means, for a version and for its destination: the retry policy of
DOMAIN.md §12.1, shared by the primary destination (``delivery``) and the extra ones (``hubs``).

A per-version outcome (accepted, data error, transient, unknown) moves the version (``decide``); AUTH and
CONFIG say nothing about the version and everything about the destination, which they stop
(``halt_destination``): the version is left as it is and tried again once the destination is resumed.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import sqlalchemy as sa

from schemas.ports import GatewayReceipt, Outcome
from worker.config import DeliverySettings
from worker.ledger import repository as repo
from worker.ledger.repository import AttemptResult
from worker.ledger.states import State

#: Consecutive 401s after a fresh login (across batches and workers) before a destination is stopped.
AUTH_FAILURES_BEFORE_STOP = 3
#: How long a stopped destination's work waits before it is looked at again.
STOPPED_RECHECK = timedelta(minutes=5)
#: The outcomes that stop the destination instead of moving the version.
DESTINATION_OUTCOMES = frozenset({Outcome.AUTH, Outcome.CONFIG})


def backoff(attempt: int, settings: DeliverySettings, rng: random.Random) -> timedelta:
    """Capped exponential backoff with "equal jitter": half fixed, half random, so retries spread out."""
    ceiling = min(settings.backoff_cap_s, settings.backoff_base_s * (2 ** max(attempt - 1, 0)))
    return timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))


def stops_destination(receipt: GatewayReceipt) -> bool:
    """AUTH/CONFIG: the answer is about the destination's credentials or account, not about the version."""
    return receipt.outcome in DESTINATION_OUTCOMES


def decide(
    receipt: GatewayReceipt,
    *,
    attempts_before: int,
    settings: DeliverySettings,
    now: datetime,
    rng: random.Random,
) -> AttemptResult:
    """Map one attempt to the version's next state. AUTH/CONFIG are handled by stopping the destination."""
    attempt = attempts_before + 1
    if receipt.outcome is Outcome.ACCEPTED:
        return AttemptResult(State.ACCEPTED)
    if receipt.outcome is Outcome.DATA_ERROR:
        code = receipt.ma_ket_qua or (f"http-{receipt.http_status}" if receipt.http_status else "unknown")
        return AttemptResult(State.REJECTED, error_code=f"gateway:{code}")
    if receipt.outcome in (Outcome.TRANSIENT, Outcome.UNKNOWN):
        code = f"{receipt.outcome.value}:{receipt.ma_ket_qua or receipt.http_status or 'network'}"
        if attempt >= settings.max_attempts:
            return AttemptResult(State.DEAD, error_code=code)
        return AttemptResult(
            State.SUBMITTED, error_code=code, next_attempt_at=now + backoff(attempt, settings, rng)
        )
    raise ValueError(f"outcome {receipt.outcome} stops the destination; it is not a per-version decision")


def halt_reason(receipt: GatewayReceipt) -> str:
    return f"{receipt.outcome.value}:{receipt.ma_ket_qua or receipt.http_status}"


def halt_destination(conn: sa.Connection, destination: str, receipt: GatewayReceipt) -> bool:
    """CONFIG (402/403/locked) stops the destination at once. AUTH (a 401 right after a fresh login) stops it
    only when it persists: a token-expiry storm can revoke the new token too, and that is no credentials error.
    Returns whether the destination is stopped now."""
    if receipt.outcome is Outcome.CONFIG:
        repo.stop_destination(conn, destination, halt_reason(receipt))
        return True
    return repo.record_auth_failure(conn, destination, stop_after=AUTH_FAILURES_BEFORE_STOP)


def recheck_after(stopped: bool, settings: DeliverySettings) -> timedelta:
    """When work left as it is by a halt is looked at again: a stopped destination's after STOPPED_RECHECK,
    a 401 that may pass after one base backoff."""
    return STOPPED_RECHECK if stopped else timedelta(seconds=settings.backoff_base_s)
