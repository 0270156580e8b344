"""Audit anchors: the audit chain's head sent to the ``[audit]`` recipients as an informational message, so
that a copy of it lives off the server (``vneid-sync audit verify --anchors`` checks the chain against them).
A recipient that fails raises ``audit_anchor_unsent``; an anchor that got out clears ``audit_anchor_stale``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from worker.config import Settings
from worker.ledger import audit
from worker.ledger import monitoring as ledger
from worker.ledger import repository as repo
from worker.ledger.db import as_utc
from worker.logging import get_logger
from worker.monitoring.alert_machine import apply_observations, notify
from worker.monitoring.alert_model import AlertMessage, Observation, Transition
from worker.monitoring.anchor_age import ANCHOR_CHECKPOINT
from worker.monitoring.conditions import ANCHOR_UNSENT, AUDIT_ANCHOR, observe_anchor_age
from worker.monitoring.notification import (
    Notifier,
    NotifierError,
    WebhookNotifier,
    email_notifier,
    notifiers_from_settings,
)

log = get_logger(__name__)


class _UnusableNotifier:
    """A configured anchor recipient that cannot be reached as configured: every send fails, and says why."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self._reason = reason

    def send(self, message: AlertMessage) -> None:
        raise NotifierError(f"{self.name}: {self._reason}")


def anchor_notifiers(settings: Settings) -> list[Notifier]:
    """The recipients of audit anchors (``[audit]``), apart from the alerts' recipients: a webhook with its own
    token, and e-mail through the ``[alerts]`` SMTP server and sender. Empty when anchors are off."""
    cfg, smtp = settings.audit, settings.alerts
    notifiers: list[Notifier] = []
    if cfg.anchor_webhook_url:
        notifiers.append(WebhookNotifier(cfg.anchor_webhook_url, token=cfg.anchor_webhook_token))
    if cfg.anchor_email_to:
        if smtp.smtp_host and smtp.email_from:
            notifiers.append(email_notifier(settings, cfg.anchor_email_to))
        else:  # a recipient without a server: fail (and alert) on every run rather than drop it silently
            notifiers.append(_UnusableNotifier("email", "alerts.smtp_host and alerts.email_from are not set"))
    return notifiers


@dataclass(frozen=True, slots=True)
class AnchorDelivery:
    """What ``publish_audit_anchor`` did: the anchor sent (``None``: the chain is empty) and to whom."""

    anchor: audit.Anchor | None
    sent: tuple[str, ...] = ()  # notifier names that took it
    failed: tuple[str, ...] = ()  # "webhook: HTTP 500": the notifier and the failure, never a secret


def publish_audit_anchor(
    engine: Engine,
    settings: Settings,
    now: datetime | None = None,
    *,
    notifiers: Sequence[Notifier] | None = None,
    alert_notifiers: Sequence[Notifier] | None = None,
) -> AnchorDelivery | None:
    """Send the audit chain's head to the ``[audit]`` recipients as an informational message; ``None`` when
    anchors are off. A recipient that fails is logged and fires ``audit_anchor_unsent`` through the alerts'
    own notifiers (once, until an anchor reaches every recipient again). An anchor that reached at least one
    recipient is recorded (the ``audit_anchor`` checkpoint: when, which event) and clears
    ``audit_anchor_stale``. Never raises on a failed send."""
    targets = anchor_notifiers(settings) if notifiers is None else list(notifiers)
    if not targets:
        return None
    moment = as_utc(now) or datetime.now(UTC)
    facility = settings.payload.facility_code
    with engine.connect() as conn:
        anchor = audit.chain_head(conn, facility_code=facility, software=audit.software(), at=moment)
    if anchor is None:
        log.info("audit_anchor.empty_chain")
        return AnchorDelivery(None)
    summary = f"audit chain head: event {anchor.event_id} of {anchor.events}"
    transition = Transition(AUDIT_ANCHOR, False, moment, summary, anchor.as_dict(), info=True)
    message = AlertMessage(facility_code=facility, transition=transition, at=moment)
    sent: list[str] = []
    failed: list[str] = []
    for notifier in targets:
        try:
            notifier.send(message)
            sent.append(notifier.name)
        except NotifierError as exc:
            failed.append(str(exc))
            log.error("audit_anchor.send_failed", notifier=notifier.name, error=str(exc))
    log.info(
        "audit_anchor", event_id=anchor.event_id, events=anchor.events, row_hash=anchor.row_hash, sent=sent
    )
    if sent:  # off the server, with at least one recipient: what ``audit_anchor_stale`` counts from
        with engine.begin() as conn:
            ledger.lock_alerts(conn)
            repo.write_checkpoint(
                conn,
                ANCHOR_CHECKPOINT,
                None,
                {
                    "at": moment.isoformat(),
                    "event_id": anchor.event_id,
                    "events": anchor.events,
                    "sent": sent,
                },
            )
    observation = Observation(
        ANCHOR_UNSENT,
        bool(failed),
        f"the audit anchor (event {anchor.event_id}) did not reach every [audit] recipient: "
        + "; ".join(failed)
        if failed
        else f"the audit anchor (event {anchor.event_id}) reached every [audit] recipient",
        {"event_id": anchor.event_id, "sent": sent, "failed": failed},
    )
    notify(
        engine,
        # The staleness too: an anchor that got out clears it now, not at the next alert check.
        apply_observations(engine, [observation, observe_anchor_age(engine, settings, moment)], moment),
        notifiers_from_settings(settings) if alert_notifiers is None else alert_notifiers,
        facility_code=facility,
        now=moment,
    )
    return AnchorDelivery(anchor, tuple(sent), tuple(failed))
