"""How long the audit chain has gone without an anchor leaving the server. Shared by the health check, the
``vneid_audit_anchor_age_seconds`` gauge and the ``audit_anchor_stale`` alert, so the three agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from worker.config import Settings
from worker.ledger import monitoring as ledger
from worker.ledger import repository as repo

#: The ``checkpoints`` row where ``anchors.publish_audit_anchor`` records the last anchor that reached an
#: ``[audit]`` recipient; before the first one, the alert evaluation notes there when it began to expect one.
ANCHOR_CHECKPOINT = "audit_anchor"


@dataclass(frozen=True, slots=True)
class AnchorAge:
    """How long the audit chain has gone without an anchor leaving the server (ids and times only)."""

    limit: timedelta  # ``audit.anchor_stale_after``
    last_at: datetime | None = None  # the last anchor that reached a recipient
    event_id: int | None = None  # the event that anchor named
    since: datetime | None = None  # what the age counts from: ``last_at``, else when one was first due
    age: timedelta | None = None  # None: nothing to anchor yet, or no anchor expected yet

    @property
    def stale(self) -> bool:
        return self.age is not None and self.age > self.limit

    def describe(self) -> str:
        limit = f"limit {self.limit.total_seconds() / 3600:g} h"
        if self.last_at is not None and self.age is not None:
            return (
                f"last anchor {self.age.total_seconds() / 3600:.1f} h ago (event {self.event_id}, "
                f"{_utc_minute(self.last_at)}), {limit}"
            )
        if self.since is not None and self.age is not None:
            return (
                f"no anchor has reached a recipient yet; one is due since {_utc_minute(self.since)} "
                f"({self.age.total_seconds() / 3600:.1f} h ago), {limit}"
            )
        return f"no anchor sent yet (nothing to anchor, or the alert checks have not run yet), {limit}"


def _utc_minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_anchor_age(conn: sa.Connection, settings: Settings, now: datetime) -> AnchorAge:
    """The age of the last anchor, from the ``audit_anchor`` checkpoint; two primary-key reads. Before the
    first anchor, the age counts from the later of the first audit event and the moment the alert evaluation
    first expected an anchor: turning anchors on (or a fresh install, whose scheduler sends the first one a
    period after it starts) is not stale at once, and an empty chain has nothing to anchor."""
    limit = settings.audit.anchor_stale_after
    _, payload = repo.read_checkpoint(conn, ANCHOR_CHECKPOINT)
    record = payload or {}
    last_at = _instant(record.get("at"))
    if last_at is not None:
        event_id = record.get("event_id")
        return AnchorAge(
            limit,
            last_at=last_at,
            event_id=event_id if isinstance(event_id, int) else None,
            since=last_at,
            age=max(now - last_at, timedelta(0)),
        )
    watched = _instant(record.get("watched_since"))
    first = ledger.first_audit_event_at(conn)
    if watched is None or first is None:
        return AnchorAge(limit)
    since = max(watched, first)
    return AnchorAge(limit, since=since, age=max(now - since, timedelta(0)))
