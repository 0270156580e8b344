"""What the alerts pass around: an observation (does a condition hold now), a transition (it started or
cleared) and the message every notifier sends. Details hold counts, ids and codes only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Observation:
    """Whether a condition holds now; ``detail`` holds counts, ids and codes only."""

    condition: str
    firing: bool
    summary: str
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transition:
    """A condition that started (``firing``) or cleared (not ``firing``) in this evaluation."""

    condition: str
    firing: bool
    since: datetime
    summary: str
    detail: dict[str, object]
    delivered: bool = False
    #: An informational message (the audit anchor), not a condition: status ``info``, sent as it comes.
    info: bool = False

    @property
    def status(self) -> str:
        if self.info:
            return "info"
        return "firing" if self.firing else "resolved"


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """What every notifier sends: the transition plus who sends it."""

    facility_code: str
    transition: Transition
    at: datetime

    def payload(self) -> dict[str, object]:
        t = self.transition
        return {
            "source": "vneid-sync",
            "facility_code": self.facility_code,
            "condition": t.condition,
            "status": t.status,
            "since": t.since.isoformat(),
            "at": self.at.isoformat(),
            "summary": t.summary,
            "detail": t.detail,
        }

    @property
    def subject(self) -> str:
        t = self.transition
        return f"[vneid-sync {self.facility_code}] {t.status.upper()}: {t.condition} — {t.summary}"
