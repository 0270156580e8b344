"""The ledger's Prometheus metrics (``LedgerCollector``, served by ``vneid-sync metrics``): read at scrape time with a few cheap
queries, so the numbers are those of the whole installation whatever the number of workers:

=====================================================  ===================================================
``vneid_ledger_up``                                    1 when the last scrape could read the ledger
``vneid_ledger_encounters{state}``                     encounters by state (dead, quarantined, rejected …)
``vneid_ledger_oldest_encounter_age_seconds{state}``   age of the oldest visit in each state
``vneid_ledger_oldest_unaccepted_age_seconds``         oldest visit not accepted (hidden ones excluded)
``vneid_ledger_coverage_ratio``                        accepted / known since ``deadlines.legal_start``
``vneid_ledger_coverage_encounters{kind}``             its numerator (accepted) and denominator (known)
``vneid_destination_stopped{destination}``             1 while sending is stopped by a config/auth error
``vneid_signer_certificate_loaded``                    1 when the signing certificate could be read
``vneid_signer_certificate_expiry_days``               days until it expires (negative once expired)
``vneid_signer_certificate_not_after_seconds``         its expiry as a Unix time
``vneid_signer_certificate_status``                    0 ok, 1 warning, 2 failure (as ``cert check``)
``vneid_signer_certificate_revocation_status``         0 good, 1 unknown, 2 revoked (OCSP/CRL; absent when
                                                       ``signer.revocation = "off"``); with
                                                       ``…_revocation_next_update_seconds``: until when the
                                                       CA's answer holds (Unix time)
``vneid_evidence_key_loaded``                          1 when the evidence key ring loads as a worker
                                                       starting now would load it (key files read again)
                                                       and opens the newest stored evidence; 0 when not
                                                       (missing, unreadable, not a key, the wrong key)
``vneid_audit_anchor_age_seconds``                     since the last audit anchor reached an ``[audit]``
                                                       recipient (before the first: since one was due);
                                                       only while anchors are on, no sample before an
                                                       anchor is due (``audit_anchor_stale`` alert)
``vneid_gateway_attempts_total{destination,code}``     audit ``attempt`` rows by ``maKetQua`` (``none``:
                                                       no answer); counted since the exporter started
``vneid_gateway_stops_total{destination,reason}``      destination stops (token/account/config errors)
=====================================================  ===================================================

Counts by state are one ``GROUP BY`` over the ``(state, completed_at)`` index. The attempt counters read only
the audit rows appended since the previous scrape (by id, on the primary key), so they are counters in the
Prometheus sense, starting at 0 when the exporter starts: use ``rate()``/``increase()``. Reading by id never
misses a row because audit appends are serialised and commit in id order (``worker.ledger.audit``).

Label values are bounded: destinations come from the configuration, result codes go through
``exposition.code_label``. No label ever carries an id or personal data. (The worker process's own metrics —
submission latency, token calls — are ``worker.monitoring.worker_metrics``.)

``prometheus_client`` is imported inside the functions that build metrics, on purpose: a worker must be able
to turn on multiprocess mode (``worker_metrics.enable_multiprocess``) after importing this module.
"""

from __future__ import annotations

import json
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.signers.revocation import revocation_status
from schemas.domain.values import local_midnight
from worker.config import Settings
from worker.ledger import monitoring as ledger
from worker.ledger.monitoring import StateRow
from worker.ledger.states import State
from worker.logging import get_logger
from worker.monitoring.anchor_age import AnchorAge, read_anchor_age
from worker.monitoring.certificate import CertificateWatch, assess_certificate
from worker.monitoring.evidence_key import assess_evidence_key
from worker.monitoring.exposition import MetricsServer, code_label, serve

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

log = get_logger(__name__)


class LedgerCollector:
    """A prometheus-client collector that reads the ledger at scrape time (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        certificates: CertificateWatch | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._legal_start = local_midnight(settings.deadlines.legal_start)
        self._certificates = certificates if certificates is not None else CertificateWatch(settings.signer)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()  # scrapes are served from threads; the audit cursor is shared
        self._audit_cursor: int | None = None
        self._attempts: Tally[tuple[str, str]] = Tally()
        self._stops: Tally[tuple[str, str]] = Tally()

    def describe(self) -> list[Metric]:
        # Returning nothing keeps registration from running a scrape (and querying the ledger) up front.
        return []

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (  # noqa: PLC0415  # see the module docstring
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        with self._lock:
            now = self._clock()
            up = GaugeMetricFamily("vneid_ledger_up", "1 when this scrape could read the ledger.")
            families: list[Metric] = []
            try:
                with self._engine.connect() as conn:
                    rows = ledger.encounter_state_rows(conn, self._legal_start)
                    stopped = self._destination_states(conn)
                    self._advance_audit(conn)
                    anchor = (
                        read_anchor_age(conn, self._settings, now)
                        if self._settings.audit.anchors_enabled
                        else None
                    )
            except sa.exc.SQLAlchemyError as exc:
                log.warning("metrics.ledger_unreadable", error=type(exc).__name__)
                up.add_metric([], 0)
            else:
                up.add_metric([], 1)
                families += self._state_families(rows, now, GaugeMetricFamily)
                families.append(self._stopped_family(stopped, GaugeMetricFamily))
                families += self._attempt_families(CounterMetricFamily)
                if anchor is not None:
                    families.append(self._anchor_family(anchor, GaugeMetricFamily))
            families += self._certificate_families(now, GaugeMetricFamily)
            families.append(self._evidence_key_family(GaugeMetricFamily))
        yield up
        yield from families

    # -- encounters -----------------------------------------------------------------------------------
    def _state_families(self, rows: list[StateRow], now: datetime, gauge: Any) -> list[Metric]:
        by_state = {row.state: row for row in rows}
        counts = gauge("vneid_ledger_encounters", "Encounters in the ledger by state.", labels=["state"])
        oldest = gauge(
            "vneid_ledger_oldest_encounter_age_seconds",
            "Age of the oldest visit (since its end) in each state.",
            labels=["state"],
        )
        for state in sorted(_SHOWN_STATES | set(by_state)):
            row = by_state.get(state)
            counts.add_metric([state], row.count if row else 0)
            if row is not None and row.oldest is not None:
                oldest.add_metric([state], max((now - row.oldest).total_seconds(), 0.0))
        waiting = [
            row.oldest
            for row in rows
            if row.state not in (State.ACCEPTED, State.HIDDEN) and row.oldest is not None
        ]
        unaccepted = gauge(
            "vneid_ledger_oldest_unaccepted_age_seconds",
            "Age of the oldest visit not accepted yet, hidden ones excluded (0: none).",
        )
        unaccepted.add_metric([], max((now - min(waiting)).total_seconds(), 0.0) if waiting else 0.0)
        known = sum(row.since_legal_start for row in rows if row.state != State.HIDDEN)
        accepted = by_state[State.ACCEPTED].since_legal_start if State.ACCEPTED in by_state else 0
        ratio = gauge(
            "vneid_ledger_coverage_ratio",
            "Accepted / known encounters completed since deadlines.legal_start (hidden excluded; 1 when none).",
        )
        ratio.add_metric([], accepted / known if known else 1.0)
        parts = gauge(
            "vneid_ledger_coverage_encounters",
            "Encounters completed since deadlines.legal_start: known (hidden excluded) and accepted.",
            labels=["kind"],
        )
        parts.add_metric(["known"], known)
        parts.add_metric(["accepted"], accepted)
        return [counts, oldest, unaccepted, ratio, parts]

    # -- destinations ---------------------------------------------------------------------------------
    def _destination_states(self, conn: sa.Connection) -> dict[str, bool]:
        states = {name: False for name, dest in self._settings.destinations.items() if dest.enabled}
        for name, flag in ledger.destination_flags(conn).items():
            states[name] = flag.stopped
        return states

    def _stopped_family(self, states: dict[str, bool], gauge: Any) -> Metric:
        family: Metric = gauge(
            "vneid_destination_stopped",
            "1 while sending to the destination is stopped by a configuration/authentication error.",
            labels=["destination"],
        )
        for name, stopped in sorted(states.items()):
            family.add_metric([name], 1 if stopped else 0)  # type: ignore[attr-defined]  # a GaugeMetricFamily
        return family

    # -- audit log ------------------------------------------------------------------------------------
    def _advance_audit(self, conn: sa.Connection) -> None:
        """Count the audit rows appended since the previous scrape (the first scrape sets the starting point)."""
        if self._audit_cursor is None:
            self._audit_cursor = ledger.last_audit_id(conn)
            return
        cursor = self._audit_cursor
        top = ledger.last_audit_id(conn, after=cursor)
        if top <= cursor:
            return
        for attempt in ledger.attempt_counts(conn, cursor, top):
            self._attempts[(attempt.destination or "none", code_label(attempt.ma_ket_qua))] += attempt.count
        for stop in ledger.stop_events(conn, cursor, top):
            self._stops[(stop.destination or "none", _stop_reason(stop.detail))] += 1
        self._audit_cursor = top

    def _attempt_families(self, counter: Any) -> list[Metric]:
        attempts = counter(
            "vneid_gateway_attempts",
            "Gateway attempts recorded in the audit log since the exporter started, by maKetQua.",
            labels=["destination", "code"],
        )
        for (destination, code), count in sorted(self._attempts.items()):
            attempts.add_metric([destination, code], count)
        stops = counter(
            "vneid_gateway_stops",
            "Destinations stopped (token/account/configuration errors) since the exporter started.",
            labels=["destination", "reason"],
        )
        for (destination, reason), count in sorted(self._stops.items()):
            stops.add_metric([destination, reason], count)
        return [attempts, stops]

    def _anchor_family(self, anchor: AnchorAge, gauge: Any) -> Metric:
        family: Metric = gauge(
            "vneid_audit_anchor_age_seconds",
            "Seconds since the last audit anchor reached an [audit] recipient (before the first: since one "
            "was due); compare with audit.anchor_stale_after.",
        )
        if anchor.age is not None:
            family.add_metric([], anchor.age.total_seconds())  # type: ignore[attr-defined]  # a GaugeMetricFamily
        return family

    # -- certificate ----------------------------------------------------------------------------------
    def _certificate_families(self, now: datetime, gauge: Any) -> list[Metric]:
        certificate, _error = self._certificates.current()
        loaded = gauge("vneid_signer_certificate_loaded", "1 when the signing certificate could be read.")
        loaded.add_metric([], 1 if certificate is not None else 0)
        if certificate is None:
            return [loaded]
        report = assess_certificate(certificate, self._certificates.settings, now)
        days = gauge(
            "vneid_signer_certificate_expiry_days",
            "Days until the signing certificate expires (negative once expired).",
        )
        days.add_metric([], report.days_left)
        not_after = gauge(
            "vneid_signer_certificate_not_after_seconds", "Expiry of the signing certificate (Unix time)."
        )
        not_after.add_metric([], report.not_after.timestamp())
        status = gauge(
            "vneid_signer_certificate_status",
            "Verdict of `vneid-sync cert check` on the certificate: 0 ok, 1 warning (renew soon), 2 failure.",
        )
        status.add_metric([], _CERT_STATUS[report.status.value])
        return [loaded, days, not_after, status, *self._revocation_families(certificate, gauge)]

    def _revocation_families(self, certificate: x509.Certificate, gauge: Any) -> list[Metric]:
        """The shared checker answers from its cache (memory, then the file the worker keeps): a scrape
        asks the CA only when that answer is due for a refresh and no worker has refreshed it yet."""
        revocation = revocation_status(self._certificates.settings, self._settings.data_dir, certificate)
        if revocation is None:
            return []
        state = gauge(
            "vneid_signer_certificate_revocation_status",
            "Revocation status of the signing certificate (OCSP, else CRL): 0 good, 1 unknown, 2 revoked.",
        )
        state.add_metric([], _REVOCATION_STATE[revocation.state.value])
        if revocation.next_update is None:
            return [state]
        next_update = gauge(
            "vneid_signer_certificate_revocation_next_update_seconds",
            "nextUpdate of the CA's revocation answer in use (Unix time).",
        )
        next_update.add_metric([], revocation.next_update.timestamp())
        return [state, next_update]

    # -- evidence key ---------------------------------------------------------------------------------
    def _evidence_key_family(self, gauge: Any) -> Metric:
        """A few dozen bytes read and one index probe per scrape: cheap enough not to cache, and a key file
        removed or made unreadable shows at the next scrape, before a worker restarts and stops on it. Not
        logged here (every scrape would repeat it): the ``evidence_key_unusable`` alert says it once."""
        report = assess_evidence_key(self._settings, engine=self._engine)
        family: Metric = gauge(
            "vneid_evidence_key_loaded",
            "1 when the evidence key ring loads as a starting worker would load it and opens the newest "
            "stored evidence; 0 when it does not (missing, unreadable, not a key, the wrong key).",
        )
        family.add_metric([], 1 if report.loaded else 0)  # type: ignore[attr-defined]  # a GaugeMetricFamily
        return family


_CERT_STATUS = {"ok": 0, "warning": 1, "failure": 2}
#: Every state an encounter can rest in gets a sample (0 when empty); UNCHANGED and SUPERSEDED are transient.
_SHOWN_STATES = frozenset(s.value for s in State if s is not State.UNCHANGED and s is not State.SUPERSEDED)
_REVOCATION_STATE = {"good": 0, "unknown": 1, "revoked": 2}


def _stop_reason(detail: object) -> str:
    """``auth``/``config`` plus the code, from the audit detail ``{"reason": "config:402"}``."""
    try:
        reason = json.loads(str(detail)).get("reason", "") if detail else ""
    except (ValueError, AttributeError):
        reason = ""
    kind, _, code = str(reason).partition(":")
    kind = kind if kind in ("auth", "config") else "other"
    return f"{kind}:{code_label(code)}"


def ledger_registry(engine: Engine, settings: Settings, **options: Any) -> CollectorRegistry:
    """A registry with the ledger collector and nothing else (no process/platform metrics)."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415  # see the module docstring

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(engine, settings, **options))
    return registry


def serve_ledger_metrics(
    engine: Engine, settings: Settings, *, host: str | None = None, port: int | None = None
) -> MetricsServer:
    """What ``vneid-sync metrics`` runs: the ledger collector on ``metrics.host:metrics.port``."""
    return serve(
        ledger_registry(engine, settings),
        host or settings.metrics.host,
        settings.metrics.port if port is None else port,
    )
