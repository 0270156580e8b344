"""What a classified gateway outcome means for a version: the retry policy of DOMAIN.md §12.1."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from schemas.ports import GatewayReceipt, Outcome
from worker.config import DeliverySettings
from worker.ledger.repository import AttemptResult
from worker.ledger.states import State


def backoff(attempt: int, settings: DeliverySettings, rng: random.Random) -> timedelta:
    """Capped exponential backoff with "equal jitter": half fixed, half random, so retries spread out."""
    ceiling = min(settings.backoff_cap_s, settings.backoff_base_s * (2 ** max(attempt - 1, 0)))
    return timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))


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
