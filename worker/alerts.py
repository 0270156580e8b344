"""Alerts: a notification ONCE when a condition starts and ONCE when it clears — never a flood.

``evaluate_and_notify`` looks at the ledger (and, when given one, the HIS), decides for every condition
whether it holds now, compares with the state stored in ``alert_state`` and notifies only the transitions
(``vneid-sync alerts check`` runs it once; cron or beat call it every few minutes). Conditions:

- ``claim_deadline_breached``: visits completed since ``deadlines.legal_start`` and not accepted after the
  claim deadline (TT 48 Đ7: end of the N-th working day after the visit; DOMAIN.md §11). Hidden visits (the
  HIS no longer shows them completed) are not counted, as in the coverage report.
- ``dead_encounters``: visits whose retries ran out; an operator must replay them.
- ``destination_stopped:<name>``: sending to a destination stopped by a configuration/authentication error.
- ``coverage_incomplete``: (needs the HIS) in the ``delivery.sweep_days`` most recent days whose claim
  deadline has passed, the HIS shows completed visits that are not accepted — including visits the worker
  never discovered, which no ledger-only condition can see.
- ``certificate_expiring`` (``signer.expiry_warning_days`` days left or fewer, or expired),
  ``certificate_invalid`` (the signing helper's ``certcheck`` says failure: expired, not yet valid, weak key,
  wrong key usage) and ``certificate_unreadable`` (the key source cannot be opened: nothing can be signed).
- ``certificate_revoked``: the CA's OCSP responder or CRL says the certificate is revoked; the worker signs
  nothing new until it is replaced. ``certificate_status_unknown``: no revocation source answered and
  ``signer.revocation = "require"``, so signing is stopped (under ``"warn"`` the worker keeps signing and
  ``health``/``cert check`` warn instead; an unreachable CA is common on hospital networks).
- ``evidence_key_unusable``: the evidence key ring cannot be loaded as a worker starting now would load it
  (``VNEID_EVIDENCE__KEY_FILE`` missing or unreadable, not a key, ``generate_key = false`` without a key),
  or it does not open the newest stored evidence (the wrong key file, a generated key lost and made anew):
  the running workers keep the key they read at start, but the next one to start stops, or cannot reopen
  the stored files to resend them.
- ``audit_anchor_unsent``: the last audit anchor (``publish_audit_anchor``: the chain's head sent to the
  ``[audit]`` recipients, an informational message) did not reach every one of them. Set and cleared by
  the anchor run itself, not by ``evaluate``.
- ``audit_anchor_stale``: anchors are on, yet none has reached a recipient for ``audit.anchor_stale_after``
  (default a period plus 2 hours): the scheduler stopped, or every send fails. Counted from the last anchor
  recorded by ``publish_audit_anchor`` (the ``audit_anchor`` checkpoint); before the first one, from when the
  evaluation first expected one. Cleared by the next anchor that reaches a recipient. Never fires while
  anchors are off.

Messages carry counts, MA_LK ids, states and result codes — never personal data (DOMAIN.md §13).

Delivery semantics: the new state is committed first (under a lock, so two concurrent checks cannot both
notify), then the notifiers run. A transition counts as delivered when at least one notifier took it; when
every notifier failed, the state is put back so the next check tries again. A crash between the commit and
the notification loses that one notification (at most once), which is the price of never flooding.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

import httpx
import sqlalchemy as sa
from cryptography import x509
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from schemas.domain.values import VIETNAM_TZ, local_midnight
from schemas.ports import EncounterSource
from worker.config import Settings
from worker.health import (
    ANCHOR_CHECKPOINT,
    assess_certificate,
    assess_evidence_key,
    describe_error,
    load_signing_certificate,
    read_anchor_age,
)
from worker.ledger import audit
from worker.ledger import repository as repo
from worker.ledger.db import as_utc, is_postgresql
from worker.ledger.schema import alert_state, destination_status, encounters, versions
from worker.ledger.states import State
from worker.logging import get_logger
from worker.metrics import legal_start_utc
from worker.reporting.deadlines import DeadlineCalendar, add_working_days

log = get_logger(__name__)

CLAIM_DEADLINE = "claim_deadline_breached"
DEAD = "dead_encounters"
DESTINATION_STOPPED = "destination_stopped"  # + ":<destination>"
COVERAGE = "coverage_incomplete"
CERT_EXPIRING = "certificate_expiring"
CERT_INVALID = "certificate_invalid"
CERT_UNREADABLE = "certificate_unreadable"
CERT_REVOKED = "certificate_revoked"
CERT_STATUS_UNKNOWN = "certificate_status_unknown"
EVIDENCE_KEY = "evidence_key_unusable"
AUDIT_ANCHOR = "audit_anchor"  # the informational message carrying the audit chain's head
ANCHOR_UNSENT = "audit_anchor_unsent"  # the last anchor did not reach every recipient of [audit]
ANCHOR_STALE = "audit_anchor_stale"  # no anchor has reached a recipient for audit.anchor_stale_after

#: Encounter states that never count as late: done, or no longer completed in the HIS.
_NOT_LATE = frozenset({State.ACCEPTED, State.HIDDEN, State.UNCHANGED, State.SUPERSEDED})
#: How many MA_LK ids a message lists (the counts are always complete).
SAMPLE_IDS = 10
_ADVISORY_LOCK_KEY = 0x766E6961  # "vnia": one alert evaluation at a time per ledger (PostgreSQL)


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


# ====================================================================================== notifiers


class NotifierError(Exception):
    """A notification could not be delivered (message: the notifier and the failure, never a secret)."""


class Notifier(Protocol):
    name: str

    def send(self, message: AlertMessage) -> None:
        """Deliver or raise ``NotifierError``."""
        ...


class WebhookNotifier:
    """POSTs the message as JSON; an optional bearer token. The URL is never logged (it may hold a secret)."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        token: SecretStr | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url
        self._token = token
        self._timeout_s = timeout_s
        self._transport = transport

    def send(self, message: AlertMessage) -> None:
        headers = {"Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        body = json.dumps(message.payload(), ensure_ascii=False, default=str).encode("utf-8")
        try:
            with httpx.Client(timeout=self._timeout_s, transport=self._transport) as client:
                response = client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NotifierError(f"webhook: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise NotifierError(f"webhook: HTTP {response.status_code}")


class EmailNotifier:
    """SMTP with STARTTLS (port 465: implicit TLS). Credentials are never sent over a connection without TLS:
    a server that offers no STARTTLS gets the message only when no login is configured (a local relay)."""

    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        user: str | None = None,
        password: SecretStr | None = None,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._recipients = list(recipients)
        self._user = user
        self._password = password
        self._timeout_s = timeout_s
        self._ssl_context = ssl_context or ssl.create_default_context()

    def build(self, message: AlertMessage) -> EmailMessage:
        email = EmailMessage()
        email["Subject"] = message.subject
        email["From"] = self._sender
        email["To"] = ", ".join(self._recipients)
        payload = message.payload()
        lines = [
            f"{message.transition.status.upper()}: {message.transition.condition}",
            message.transition.summary,
            "",
            f"facility: {message.facility_code}",
            f"since: {payload['since']}",
            "",
            # An informational message's detail is one JSON line, so that it can be kept as it is (an anchor
            # line for `audit verify --anchors`); an alert's is indented for reading.
            json.dumps(message.transition.detail, sort_keys=True, separators=(",", ":"), default=str)
            if message.transition.info
            else json.dumps(message.transition.detail, ensure_ascii=False, indent=2, default=str),
        ]
        email.set_content("\n".join(lines))
        return email

    def send(self, message: AlertMessage) -> None:
        email = self.build(message)
        try:
            smtp: smtplib.SMTP
            if self._port == 465:
                smtp = smtplib.SMTP_SSL(
                    self._host, self._port, timeout=self._timeout_s, context=self._ssl_context
                )
            else:
                smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
            with smtp:
                smtp.ehlo()
                if self._port != 465:
                    if smtp.has_extn("starttls"):
                        smtp.starttls(context=self._ssl_context)
                        smtp.ehlo()
                    elif self._user is not None:
                        raise NotifierError(
                            "email: the server offers no STARTTLS; refusing to log in in clear"
                        )
                if self._user is not None:
                    secret = self._password.get_secret_value() if self._password is not None else ""
                    smtp.login(self._user, secret)
                smtp.send_message(email)
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifierError(f"email: {type(exc).__name__}") from None


def notifiers_from_settings(settings: Settings) -> list[Notifier]:
    """The notifiers ``alerts`` configures: a webhook when ``webhook_url`` is set, email when ``smtp_host``,
    ``email_from`` and ``email_to`` are."""
    cfg = settings.alerts
    notifiers: list[Notifier] = []
    if cfg.webhook_url:
        notifiers.append(WebhookNotifier(cfg.webhook_url, token=cfg.webhook_token))
    if cfg.smtp_host and cfg.email_from and cfg.email_to:
        notifiers.append(_email_notifier(settings, cfg.email_to))
    return notifiers


def _email_notifier(settings: Settings, recipients: Sequence[str]) -> EmailNotifier:
    """E-mail to ``recipients`` through the ``[alerts]`` SMTP server and sender (both checked by the caller)."""
    smtp = settings.alerts
    assert smtp.smtp_host is not None
    assert smtp.email_from is not None
    return EmailNotifier(
        host=smtp.smtp_host,
        port=smtp.smtp_port,
        sender=smtp.email_from,
        recipients=recipients,
        user=smtp.smtp_user,
        password=smtp.smtp_password,
    )


# ===================================================================================== conditions


def claim_cutoff(calendar: DeadlineCalendar, now: datetime) -> date:
    """The first local day whose visits are still within the claim deadline: every visit completed before
    this day (Vietnam time) is past its deadline at ``now``. ``add_working_days`` grows with its start day,
    so walking back from today stops at the newest day whose deadline day is already over."""
    today = now.astimezone(VIETNAM_TZ).date()
    day = today
    while (
        add_working_days(day - timedelta(days=1), calendar.settings.claim_working_days, calendar.holidays)
        >= today
    ):
        day -= timedelta(days=1)
    return day


def observe_claim_deadline(
    conn: sa.Connection, settings: Settings, calendar: DeadlineCalendar, now: datetime, legal_start: datetime
) -> Observation:
    cutoff = local_midnight(claim_cutoff(calendar, now))
    late = (
        encounters.c.completed_at >= as_utc(legal_start),
        encounters.c.completed_at < as_utc(cutoff),
        # An explicit IN list (not NOT IN): each state is a range scan of the (state, completed_at) index,
        # so the query touches the few unaccepted rows, never the whole accepted history.
        encounters.c.state.in_(sorted(s.value for s in State if s not in _NOT_LATE)),
    )
    by_state = {
        str(state): int(count)
        for state, count in conn.execute(
            sa.select(encounters.c.state, sa.func.count()).where(*late).group_by(encounters.c.state)
        )
    }
    total = sum(by_state.values())
    if not total:
        return Observation(CLAIM_DEADLINE, False, "every visit past its claim deadline is accepted")
    oldest = conn.execute(
        sa.select(encounters.c.ma_lk).where(*late).order_by(encounters.c.completed_at).limit(SAMPLE_IDS)
    )
    days = settings.deadlines.claim_working_days
    return Observation(
        CLAIM_DEADLINE,
        True,
        f"{total} visit(s) not accepted after the {days}-working-day claim deadline",
        {
            "count": total,
            "by_state": by_state,
            "completed_before": cutoff.isoformat(),
            "oldest_ma_lk": [row.ma_lk for row in oldest],
        },
    )


def observe_dead(conn: sa.Connection) -> Observation:
    codes = {
        str(code or "unknown"): int(count)
        for code, count in conn.execute(
            sa.select(versions.c.last_error_code, sa.func.count())
            .select_from(encounters.outerjoin(versions, versions.c.id == encounters.c.current_version_id))
            .where(encounters.c.state == State.DEAD)
            .group_by(versions.c.last_error_code)
        )
    }
    total = sum(codes.values())
    if not total:
        return Observation(DEAD, False, "no dead visits")
    sample = conn.execute(
        sa.select(encounters.c.ma_lk)
        .where(encounters.c.state == State.DEAD)
        .order_by(encounters.c.completed_at)
        .limit(SAMPLE_IDS)
    )
    return Observation(
        DEAD,
        True,
        f"{total} visit(s) dead after exhausting retries: replay with `vneid-sync replay --state dead`",
        {"count": total, "by_error_code": codes, "ma_lk": [row.ma_lk for row in sample]},
    )


def observe_destinations(conn: sa.Connection, settings: Settings) -> list[Observation]:
    rows = {
        row.destination: row
        for row in conn.execute(
            sa.select(
                destination_status.c.destination, destination_status.c.stopped, destination_status.c.reason
            )
        )
    }
    names = {name for name, dest in settings.destinations.items() if dest.enabled} | set(rows)
    prefix = f"{DESTINATION_STOPPED}:"
    names |= {
        str(condition)[len(prefix) :]
        for condition in conn.execute(
            sa.select(alert_state.c.condition).where(alert_state.c.condition.startswith(prefix))
        ).scalars()
    }
    observations = []
    for name in sorted(names):
        row = rows.get(name)
        if row is not None and row.stopped:
            reason = str(row.reason or "")
            observations.append(
                Observation(
                    f"{prefix}{name}",
                    True,
                    f"sending to {name} is stopped ({reason}): fix the configuration, then "
                    f"`vneid-sync destinations resume {name}`",
                    {"destination": name, "reason": reason},
                )
            )
        else:
            observations.append(
                Observation(f"{prefix}{name}", False, f"sending to {name} is active", {"destination": name})
            )
    return observations


def observe_coverage(
    source: EncounterSource, engine: Engine, settings: Settings, calendar: DeadlineCalendar, now: datetime
) -> Observation:
    from worker.reporting.coverage import GroupBy, compute  # noqa: PLC0415  # only when the HIS is given

    end = claim_cutoff(calendar, now)
    start = max(settings.deadlines.legal_start, end - timedelta(days=settings.delivery.sweep_days))
    if start >= end:
        return Observation(COVERAGE, False, "no day past its claim deadline yet", {"days": 0})
    report = compute(
        source,
        engine,
        facility_code=settings.payload.facility_code,
        start=start,
        end=end,
        group_by=GroupBy.DAY,
        calendar=calendar,
        now=now,
    )
    totals = report.totals
    window: dict[str, object] = {"from": start.isoformat(), "until": end.isoformat()}
    missing_accepted = totals["completed"] - totals["accepted"]
    if missing_accepted <= 0:
        return Observation(COVERAGE, False, f"coverage 100 % of {totals['completed']} visit(s)", window)
    columns = {
        key: int(totals[key])
        for key in ("completed", "accepted", "pending", "rejected", "quarantined", "dead", "missing")
        if totals[key]
    }
    gaps = [gap.ma_lk for gap in report.gaps if gap.state != State.HIDDEN][:SAMPLE_IDS]
    return Observation(
        COVERAGE,
        True,
        f"coverage {report.ratio:.2%}: {missing_accepted} visit(s) past the claim deadline not accepted",
        {**window, "ratio": round(report.ratio, 6), "counts": columns, "ma_lk": gaps},
    )


def observe_certificate(
    certificate: x509.Certificate | None, error: str | None, settings: Settings, now: datetime
) -> list[Observation]:
    if certificate is None:
        return [Observation(CERT_UNREADABLE, True, f"the signing certificate cannot be read: {error}")]
    report = assess_certificate(certificate, settings.signer, now)
    base: dict[str, object] = {
        "serial": report.serial,
        "not_after": report.not_after.isoformat(),
        "days_left": round(report.days_left, 1),
    }
    warning_days = settings.signer.expiry_warning_days
    expiring = report.days_left <= warning_days
    invalid = report.status.value == "failure"
    return [
        Observation(CERT_UNREADABLE, False, "the signing certificate can be read", base),
        Observation(
            CERT_EXPIRING,
            expiring,
            f"the signing certificate expires in {report.days_left:.0f} day(s): renew it and register "
            "the new one on the BHXH portal"
            if report.days_left >= 0
            else "the signing certificate has expired",
            base,
        ),
        Observation(
            CERT_INVALID,
            invalid,
            "the signing certificate cannot sign: " + "; ".join(report.problems)
            if invalid
            else "the signing certificate is usable",
            {**base, "problems": list(report.problems)},
        ),
        *observe_revocation(certificate, settings, base),
    ]


def observe_revocation(
    certificate: x509.Certificate, settings: Settings, base: dict[str, object]
) -> list[Observation]:
    """Revoked, or (under ``signer.revocation = "require"``) unknown: both stop signing."""
    from adapters.signers.revocation import (  # noqa: PLC0415  # load signer adapters on demand
        RevocationPolicy,
        RevocationState,
        revocation_status,
    )

    status = revocation_status(settings.signer, settings.data_dir, certificate)
    if status is None:
        off = "revocation checking is off (signer.revocation)"
        return [
            Observation(CERT_REVOKED, False, off, base),
            Observation(CERT_STATUS_UNKNOWN, False, off, base),
        ]
    detail = {**base, "state": status.state.value, "source": status.source.value, "url": status.url}
    revoked = status.state is RevocationState.REVOKED
    policy = RevocationPolicy(settings.signer.revocation)
    stopped = status.state is RevocationState.UNKNOWN and policy is RevocationPolicy.REQUIRE
    return [
        Observation(
            CERT_REVOKED,
            revoked,
            f"the signing certificate was {status.summary()}: nothing new is signed until it is replaced "
            "and the new certificate is registered on the BHXH portal"
            if revoked
            else "the signing certificate is not revoked",
            {
                **detail,
                "revoked_at": status.revoked_at.isoformat() if status.revoked_at else None,
                "reason": status.reason,
            },
        ),
        Observation(
            CERT_STATUS_UNKNOWN,
            stopped,
            f"signing is stopped: the certificate's revocation status is {status.summary()} "
            "(signer.revocation = require)"
            if stopped
            else f"revocation status {status.state.value}",
            {**detail, "problems": list(status.problems)},
        ),
    ]


def observe_evidence_key(engine: Engine, settings: Settings) -> Observation:
    report = assess_evidence_key(settings, engine=engine)
    detail: dict[str, object] = {"source": report.source, "generated": report.generated}
    if report.loaded:
        return Observation(EVIDENCE_KEY, False, f"the evidence key loads: {report.detail}", detail)
    return Observation(
        EVIDENCE_KEY,
        True,
        f"the evidence key is unusable: {report.detail} (a worker starting now would stop, or could not "
        "reopen the stored files to resend them)",
        {**detail, "problem": report.detail},
    )


def _expect_anchors(engine: Engine, now: datetime) -> None:
    """Before the first anchor, note when one was first expected, so that a scheduler that never sends one
    is noticed ``anchor_stale_after`` later. Under the alerts' lock: two checks racing write it once."""
    with engine.connect() as conn:
        _, payload = repo.read_checkpoint(conn, ANCHOR_CHECKPOINT)
    if payload is not None:
        return
    with engine.begin() as conn:
        _lock(conn)
        _, payload = repo.read_checkpoint(conn, ANCHOR_CHECKPOINT)
        if payload is None:
            repo.write_checkpoint(conn, ANCHOR_CHECKPOINT, None, {"watched_since": now.isoformat()})


def observe_anchor_age(engine: Engine, settings: Settings, now: datetime) -> Observation:
    """``audit_anchor_stale``. The summary and detail hold times, not the growing age: a condition that keeps
    firing does not rewrite its stored state at every evaluation."""
    if not settings.audit.anchors_enabled:
        return Observation(ANCHOR_STALE, False, "audit anchors are off ([audit] names no recipient)")
    _expect_anchors(engine, now)
    with engine.connect() as conn:
        age = read_anchor_age(conn, settings, now)
    limit_h = age.limit.total_seconds() / 3600
    detail: dict[str, object] = {
        "last_anchor_at": age.last_at.isoformat() if age.last_at else None,
        "event_id": age.event_id,
        "counted_from": age.since.isoformat() if age.since else None,
        "limit_h": limit_h,
    }
    if not age.stale:
        return Observation(ANCHOR_STALE, False, f"the audit anchors are current: {age.describe()}", detail)
    assert age.since is not None  # a stale age counts from somewhere
    when = age.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    gap = f"since {when}" if age.last_at is not None else f"yet, though one is due since {when}"
    return Observation(
        ANCHOR_STALE,
        True,
        f"no audit anchor has reached an [audit] recipient {gap} (limit {limit_h:g} h): is the scheduler "
        "(`vneid-sync beat`) running? (a failing recipient also raises audit_anchor_unsent)",
        detail,
    )


def evaluate(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    source: EncounterSource | None = None,
    certificate_reader: Callable[[], x509.Certificate] | None = None,
) -> list[Observation]:
    """Every condition that can be judged now (coverage only with ``source``)."""
    calendar = DeadlineCalendar(settings.deadlines)
    with engine.connect() as conn:
        observations = [
            observe_claim_deadline(conn, settings, calendar, now, legal_start_utc(settings)),
            observe_dead(conn),
            *observe_destinations(conn, settings),
        ]
    observations.append(observe_evidence_key(engine, settings))
    observations.append(observe_anchor_age(engine, settings, now))
    if source is not None:
        try:
            observations.append(observe_coverage(source, engine, settings, calendar, now))
        except Exception as exc:  # the HIS being down must not stop the other alerts
            log.warning("alerts.coverage_unknown", error=describe_error(exc))
    reader = certificate_reader or (lambda: load_signing_certificate(settings.signer))
    try:
        certificate, error = reader(), None
    except Exception as exc:  # an unreadable certificate is itself a condition
        certificate, error = None, describe_error(exc)
    observations += observe_certificate(certificate, error, settings, now)
    return observations


# ========================================================================== state and transitions


def _lock(conn: sa.Connection) -> None:
    if is_postgresql(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    # SQLite: the transaction already holds the database write lock (BEGIN IMMEDIATE).


def _detail_json(summary: str, detail: dict[str, object]) -> str:
    return json.dumps({"summary": summary, **detail}, sort_keys=True, ensure_ascii=False, default=str)


def apply_observations(
    engine: Engine, observations: Sequence[Observation], now: datetime
) -> list[Transition]:
    """Store the new states; return the transitions (started or cleared conditions) to notify."""
    transitions: list[Transition] = []
    with engine.begin() as conn:
        _lock(conn)
        names = [obs.condition for obs in observations]
        stored = (
            {
                row.condition: row
                for row in conn.execute(sa.select(alert_state).where(alert_state.c.condition.in_(names)))
            }
            if names
            else {}
        )
        for obs in observations:
            row = stored.get(obs.condition)
            was_firing = bool(row.firing) if row is not None else False
            detail = _detail_json(obs.summary, obs.detail)
            if obs.firing != was_firing:
                values = {"firing": obs.firing, "since": now, "detail": detail}
                if row is None:
                    conn.execute(sa.insert(alert_state).values(condition=obs.condition, **values))
                else:
                    conn.execute(
                        sa.update(alert_state)
                        .where(alert_state.c.condition == obs.condition)
                        .values(**values)
                    )
                transitions.append(Transition(obs.condition, obs.firing, now, obs.summary, obs.detail))
            elif row is not None and obs.firing and row.detail != detail:
                # Still firing with new numbers: keep the stored detail current, without a message.
                conn.execute(
                    sa.update(alert_state)
                    .where(alert_state.c.condition == obs.condition)
                    .values(detail=detail)
                )
    return transitions


def _undo(engine: Engine, transition: Transition) -> None:
    """Every notifier failed: put the previous state back so the next evaluation notifies again."""
    with engine.begin() as conn:
        _lock(conn)
        conn.execute(
            sa.update(alert_state)
            .where(alert_state.c.condition == transition.condition, alert_state.c.since == transition.since)
            .values(firing=not transition.firing)
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
        rows = conn.execute(
            sa.select(alert_state).where(alert_state.c.firing).order_by(alert_state.c.condition)
        ).all()
    result = []
    for row in rows:
        try:
            summary = str(json.loads(row.detail or "{}").get("summary", ""))
        except ValueError:
            summary = ""
        result.append(Firing(row.condition, as_utc(row.since) or datetime.now(UTC), summary))
    return result


# =================================================================================== audit anchors


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
            notifiers.append(_email_notifier(settings, cfg.anchor_email_to))
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
            _lock(conn)
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
