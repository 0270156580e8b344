"""The alert state machine: a notification ONCE when a condition starts and ONCE when it clears — never a flood.

``evaluate_and_notify`` takes the observations of ``worker.monitoring.conditions``, compares them with the
state stored in ``alert_state`` and notifies only the transitions (``vneid-sync alerts check`` runs it once;
cron or beat call it every few minutes).

Delivery semantics: the new state is committed first (under a lock, so two concurrent checks cannot both
notify), then the notifiers run. A transition counts as delivered when at least one notifier took it; when
every notifier failed, the state is put back so the next check tries again. A crash between the commit and
the notification loses that one notification (at most once), which is the price of never flooding.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from sqlalchemy.engine import Engine

from schemas.ports import EncounterSource
from worker.config import Settings
from worker.ledger import monitoring as ledger
from worker.ledger.db import as_utc
from worker.logging import get_logger
from worker.monitoring.alert_model import AlertMessage, Observation, Transition
from worker.monitoring.conditions import evaluate
from worker.monitoring.notification import Notifier, NotifierError

log = get_logger(__name__)


def _detail_json(summary: str, detail: dict[str, object]) -> str:
    return json.dumps({"summary": summary, **detail}, sort_keys=True, ensure_ascii=False, default=str)


def apply_observations(
    engine: Engine, observations: Sequence[Observation], now: datetime
) -> list[Transition]:
    """Store the new states; return the transitions (started or cleared conditions) to notify."""
    transitions: list[Transition] = []
    with engine.begin() as conn:
        ledger.lock_alerts(conn)
        stored = ledger.read_alerts(conn, [obs.condition for obs in observations])
        for obs in observations:
            row = stored.get(obs.condition)
            was_firing = row.firing if row is not None else False
            detail = _detail_json(obs.summary, obs.detail)
            if obs.firing != was_firing:
                store = ledger.insert_alert if row is None else ledger.update_alert
                store(conn, obs.condition, firing=obs.firing, since=now, detail=detail)
                transitions.append(Transition(obs.condition, obs.firing, now, obs.summary, obs.detail))
            elif row is not None and obs.firing and row.detail != detail:
                # Still firing with new numbers: keep the stored detail current, without a message.
                ledger.update_alert_detail(conn, obs.condition, detail)
    return transitions


def _undo(engine: Engine, transition: Transition) -> None:
    """Every notifier failed: put the previous state back so the next evaluation notifies again."""
    with engine.begin() as conn:
        ledger.lock_alerts(conn)
        ledger.set_alert_firing(
            conn, transition.condition, since=transition.since, firing=not transition.firing
        )


def notify(
    engine: Engine,
    transitions: Sequence[Transition],
    notifiers: Sequence[Notifier],
    *,
    facility_code: str,
    now: datetime,
) -> list[Transition]:
    delivered: list[Transition] = []
    for transition in transitions:
        message = AlertMessage(facility_code=facility_code, transition=transition, at=now)
        successes = 0
        for notifier in notifiers:
            try:
                notifier.send(message)
                successes += 1
            except NotifierError as exc:
                log.error(
                    "alerts.notify_failed",
                    condition=transition.condition,
                    notifier=notifier.name,
                    error=str(exc),
                )
        log.warning(
            "alert",
            condition=transition.condition,
            status=transition.status,
            summary=transition.summary,
            notified=successes,
        )
        if notifiers and not successes:
            _undo(engine, transition)
            delivered.append(_with_delivered(transition, False))
        else:
            delivered.append(_with_delivered(transition, bool(successes)))
    return delivered


def _with_delivered(transition: Transition, delivered: bool) -> Transition:
    return Transition(
        transition.condition,
        transition.firing,
        transition.since,
        transition.summary,
        transition.detail,
        delivered,
        transition.info,
    )


def evaluate_and_notify(
    engine: Engine,
    settings: Settings,
    notifiers: Sequence[Notifier],
    now: datetime | None = None,
    *,
    source: EncounterSource | None = None,
    certificate_reader: Callable[[], x509.Certificate] | None = None,
) -> list[Transition]:
    """Evaluate every condition, store the states, notify the transitions (see the module docstring)."""
    moment = as_utc(now) or datetime.now(UTC)  # stored as UTC: SQLite keeps no offset
    observations = evaluate(engine, settings, moment, source=source, certificate_reader=certificate_reader)
    transitions = apply_observations(engine, observations, moment)
    return notify(engine, transitions, notifiers, facility_code=settings.payload.facility_code, now=moment)


@dataclass(frozen=True, slots=True)
class Firing:
    condition: str
    since: datetime
    summary: str


def firing_conditions(engine: Engine) -> list[Firing]:
    """Every condition currently firing (including ones not evaluated in the last run)."""
    with engine.connect() as conn:
        rows = ledger.firing_alerts(conn)
    result = []
    for row in rows:
        try:
            summary = str(json.loads(row.detail or "{}").get("summary", ""))
        except ValueError:
            summary = ""
        result.append(Firing(row.condition, row.since or datetime.now(UTC), summary))
    return result
