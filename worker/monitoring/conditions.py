"""The alert conditions: for each, whether it holds now, judged from the ledger (and, when given one, the HIS).

``evaluate`` returns one ``Observation`` per condition; ``worker.monitoring.alert_machine`` compares them with
the stored states and notifies the transitions only. Conditions:

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
  the anchor run itself (``worker.monitoring.audit_anchors``), not by ``evaluate``.
- ``audit_anchor_stale``: anchors are on, yet none has reached a recipient for ``audit.anchor_stale_after``
  (default a period plus 2 hours): the scheduler stopped, or every send fails. Counted from the last anchor
  recorded by ``publish_audit_anchor`` (the ``audit_anchor`` checkpoint); before the first one, from when the
  evaluation first expected one. Cleared by the next anchor that reaches a recipient. Never fires while
  anchors are off.

Messages carry counts, MA_LK ids, states and result codes — never personal data (DOMAIN.md §13).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.signers.revocation import RevocationPolicy, RevocationState, revocation_status
from schemas.domain.values import VIETNAM_TZ, local_midnight
from schemas.ports import EncounterSource
from worker.config import Settings
from worker.ledger import monitoring as ledger
from worker.ledger import repository as repo
from worker.ledger.states import State
from worker.logging import get_logger
from worker.monitoring.alert_model import Observation
from worker.monitoring.anchor_age import ANCHOR_CHECKPOINT, read_anchor_age
from worker.monitoring.certificate import assess_certificate, load_signing_certificate
from worker.monitoring.errors import describe_error
from worker.monitoring.evidence_key import assess_evidence_key
from worker.reporting.coverage import GroupBy, compute
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
    late = [s.value for s in State if s not in _NOT_LATE]
    by_state = ledger.count_in_states_by_state(conn, late, legal_start, cutoff)
    total = sum(by_state.values())
    if not total:
        return Observation(CLAIM_DEADLINE, False, "every visit past its claim deadline is accepted")
    oldest = ledger.oldest_in_states(conn, late, legal_start, cutoff, limit=SAMPLE_IDS)
    days = settings.deadlines.claim_working_days
    return Observation(
        CLAIM_DEADLINE,
        True,
        f"{total} visit(s) not accepted after the {days}-working-day claim deadline",
        {
            "count": total,
            "by_state": by_state,
            "completed_before": cutoff.isoformat(),
            "oldest_ma_lk": oldest,
        },
    )


def observe_dead(conn: sa.Connection) -> Observation:
    codes = ledger.dead_by_error_code(conn)
    total = sum(codes.values())
    if not total:
        return Observation(DEAD, False, "no dead visits")
    sample = ledger.oldest_dead(conn, limit=SAMPLE_IDS)
    return Observation(
        DEAD,
        True,
        f"{total} visit(s) dead after exhausting retries: replay with `vneid-sync replay --state dead`",
        {"count": total, "by_error_code": codes, "ma_lk": sample},
    )


def observe_destinations(conn: sa.Connection, settings: Settings) -> list[Observation]:
    rows = ledger.destination_flags(conn)
    names = {name for name, dest in settings.destinations.items() if dest.enabled} | set(rows)
    prefix = f"{DESTINATION_STOPPED}:"
    names |= {condition[len(prefix) :] for condition in ledger.alert_conditions_starting(conn, prefix)}
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
        ledger.lock_alerts(conn)
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
            observe_claim_deadline(
                conn, settings, calendar, now, local_midnight(settings.deadlines.legal_start)
            ),
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
