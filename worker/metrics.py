"""Prometheus metrics, from two places.

**The ledger** (``LedgerCollector``, served by ``vneid-sync metrics``): read at scrape time with a few cheap
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

**The worker process** (``record_attempt``, ``record_token_request``; served by
``start_worker_metrics_server``): what only the process that did the work knows — the latency of each
submission and the token calls. With Celery's prefork pool the tasks run in child processes, so these values
are shared through prometheus-client's multiprocess mode: ``enable_multiprocess(directory)`` must run in the
worker's main process before ``prometheus_client`` is first imported and before the pool forks (this module
imports it lazily for that reason). Without it, a prefork worker serves only its main process's numbers —
which has no submissions — and ``start_worker_metrics_server`` logs a warning saying so; the ``solo`` and
``threads`` pools need no multiprocess mode.

Label values are bounded: destinations come from the configuration, result codes are kept only when they
look like a code (digits), anything else becomes ``other``. No label ever carries an id or personal data.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.domain.values import local_midnight
from worker.config import Settings
from worker.health import (
    AnchorAge,
    CertificateWatch,
    assess_certificate,
    assess_evidence_key,
    read_anchor_age,
)
from worker.ledger.db import as_utc
from worker.ledger.schema import audit_log, destination_status, encounters
from worker.ledger.states import State
from worker.logging import get_logger

if TYPE_CHECKING:
    from cryptography import x509
    from prometheus_client import Counter, Histogram
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

log = get_logger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Submission latency buckets (seconds): a send is ~0.1-2 s; the in-call retries can stretch it to a minute.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
_CODE = re.compile(r"^[0-9]{1,6}$")


def code_label(value: object) -> str:
    """A bounded label for a gateway result code: the code when it looks like one, else ``none``/``other``."""
    if value is None or value == "":
        return "none"
    text = str(value).strip()
    return text if _CODE.match(text) else "other"


def legal_start_utc(settings: Settings) -> datetime:
    """Local midnight (Vietnam) of ``deadlines.legal_start``, in UTC."""
    return local_midnight(settings.deadlines.legal_start).astimezone(UTC)


# ===================================================================================== the ledger


@dataclass(frozen=True, slots=True)
class StateRow:
    state: str
    count: int
    oldest: datetime | None
    since_legal_start: int


def ledger_state_rows(conn: sa.Connection, legal_start: datetime) -> list[StateRow]:
    """One pass over the ``(state, completed_at)`` index: count, oldest visit and count since the legal date."""
    since = sa.func.sum(sa.case((encounters.c.completed_at >= as_utc(legal_start), 1), else_=0))
    rows = conn.execute(
        sa.select(
            encounters.c.state, sa.func.count(), sa.func.min(encounters.c.completed_at), since
        ).group_by(encounters.c.state)
    )
    return [StateRow(str(row[0]), int(row[1]), as_utc(row[2]), int(row[3] or 0)) for row in rows]


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
        self._legal_start = legal_start_utc(settings)
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
        from prometheus_client.core import (  # noqa: PLC0415  # see "multiprocess mode" in the module docstring
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        with self._lock:
            now = self._clock()
            up = GaugeMetricFamily("vneid_ledger_up", "1 when this scrape could read the ledger.")
            families: list[Metric] = []
            try:
                with self._engine.connect() as conn:
                    rows = ledger_state_rows(conn, self._legal_start)
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
        for state in sorted({s.value for s in State if s is not State.UNCHANGED and s is not State.SUPERSEDED}
                            | set(by_state)):  # fmt: skip
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
        for row in conn.execute(sa.select(destination_status.c.destination, destination_status.c.stopped)):
            states[row.destination] = bool(row.stopped)
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
            self._audit_cursor = int(conn.execute(sa.select(sa.func.max(audit_log.c.id))).scalar() or 0)
            return
        cursor = self._audit_cursor
        top = int(
            conn.execute(sa.select(sa.func.max(audit_log.c.id)).where(audit_log.c.id > cursor)).scalar() or 0
        )
        if top <= cursor:
            return
        window = (audit_log.c.id > cursor) & (audit_log.c.id <= top)
        attempts = conn.execute(
            sa.select(audit_log.c.destination, audit_log.c.ma_ket_qua, sa.func.count())
            .where(window, audit_log.c.event == "attempt")
            .group_by(audit_log.c.destination, audit_log.c.ma_ket_qua)
        )
        for destination, code, count in attempts:
            self._attempts[(destination or "none", code_label(code))] += int(count)
        stops = conn.execute(
            sa.select(audit_log.c.destination, audit_log.c.detail).where(
                window, audit_log.c.event == "destination_stopped"
            )
        )
        for destination, detail in stops:
            self._stops[(destination or "none", _stop_reason(detail))] += 1
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
        from adapters.signers.revocation import revocation_status  # noqa: PLC0415  # load signer adapters on demand

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
_REVOCATION_STATE = {"good": 0, "unknown": 1, "revoked": 2}


def _stop_reason(detail: object) -> str:
    """``auth``/``config`` plus the code, from the audit detail ``{"reason": "config:402"}``."""
    import json  # noqa: PLC0415  # only needed for stops, which are rare

    try:
        reason = json.loads(str(detail)).get("reason", "") if detail else ""
    except (ValueError, AttributeError):
        reason = ""
    kind, _, code = str(reason).partition(":")
    kind = kind if kind in ("auth", "config") else "other"
    return f"{kind}:{code_label(code)}"


def ledger_registry(engine: Engine, settings: Settings, **options: Any) -> CollectorRegistry:
    """A registry with the ledger collector and nothing else (no process/platform metrics)."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415  # see "multiprocess mode"

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(engine, settings, **options))
    return registry


# =============================================================================== HTTP serving


@dataclass
class MetricsServer:
    """A metrics endpoint served by a daemon thread; ``close()`` stops it."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve ``registry`` on ``host:port`` (0: any free port; IPv4 or IPv6) in a daemon thread.

    prometheus-client's ``start_http_server`` does the same but polls for shutdown every 0.5 s; this one is
    quiet (no access log on stderr) and stops within 0.1 s.
    """
    from wsgiref.simple_server import WSGIRequestHandler, make_server  # noqa: PLC0415  # only when serving

    from prometheus_client import make_wsgi_app  # noqa: PLC0415  # see "multiprocess mode"
    from prometheus_client.exposition import ThreadingWSGIServer  # noqa: PLC0415  # idem

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the stdlib's parameter name
            pass

    httpd = make_server(host, port, make_wsgi_app(registry), Server, handler_class=QuietHandler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics-http", daemon=True
    )
    thread.start()
    return MetricsServer(host=host, port=int(httpd.server_port), _server=httpd, _thread=thread)


def serve_ledger_metrics(
    engine: Engine, settings: Settings, *, host: str | None = None, port: int | None = None
) -> MetricsServer:
    """What ``vneid-sync metrics`` runs: the ledger collector on ``metrics.host:metrics.port``."""
    return serve(
        ledger_registry(engine, settings),
        host or settings.metrics.host,
        settings.metrics.port if port is None else port,
    )


# ============================================================================ the worker process


def enable_multiprocess(directory: Path) -> bool:
    """Turn on prometheus-client's multiprocess mode (prefork workers share their numbers through files in
    ``directory``). Call in the worker's main process, before the pool forks and before anything imports
    ``prometheus_client``; the directory is emptied (numbers of a previous run must not be added).
    Returns False, and changes nothing, when it is too late (``prometheus_client`` already imported)."""
    if "prometheus_client.values" in sys.modules:
        from prometheus_client import values  # noqa: PLC0415  # already imported: just look

        return bool(getattr(values.ValueClass, "_multiprocess", False))
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROCESS_ENV] = str(directory)
    return True


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROCESS_ENV))


@dataclass(frozen=True, slots=True)
class _Instruments:
    registry: CollectorRegistry
    submissions: Counter
    latency: Histogram
    tokens: Counter


@cache
def _instruments() -> _Instruments:
    """Created on first use, so that ``enable_multiprocess`` can still run before (see the module docstring)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: PLC0415  # see above

    registry = CollectorRegistry(auto_describe=True)
    return _Instruments(
        registry=registry,
        submissions=Counter(
            "vneid_worker_submissions",
            "Gateway submissions made by this worker, by classified outcome and maKetQua.",
            ["destination", "outcome", "code"],
            registry=registry,
        ),
        latency=Histogram(
            "vneid_worker_submission_seconds",
            "Duration of one gateway submission (token, send and in-call retries), by outcome.",
            ["destination", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        tokens=Counter(
            "vneid_worker_token_requests",
            "Token calls made by this worker, by result (ok, or the failure class) and maKetQua.",
            ["destination", "result", "code"],
            registry=registry,
        ),
    )


def record_attempt(destination: str, outcome: str, ma_ket_qua: str | None, elapsed_s: float) -> None:
    """One gateway submission (call it from the delivery service with the receipt's values)."""
    metrics = _instruments()
    metrics.submissions.labels(destination, str(outcome), code_label(ma_ket_qua)).inc()
    metrics.latency.labels(destination, str(outcome)).observe(max(elapsed_s, 0.0))


def record_token_request(destination: str, result: str, ma_ket_qua: str | None) -> None:
    """One token call: ``result`` is ``ok`` or the failure's outcome (``config``, ``transient`` …)."""
    _instruments().tokens.labels(destination, str(result), code_label(ma_ket_qua)).inc()


def worker_registry() -> CollectorRegistry:
    """What the worker serves: every process's numbers in multiprocess mode, else this process's."""
    if not multiprocess_enabled():
        return _instruments().registry
    from prometheus_client import CollectorRegistry  # noqa: PLC0415  # see above
    from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415  # idem

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated
    return registry


def start_worker_metrics_server(
    settings: Settings, *, port: int | None = None, pool: str | None = None
) -> MetricsServer | None:
    """Serve the worker's own metrics on ``metrics.host:metrics.port`` (call once, in the main process).

    Returns None when metrics are disabled or the port is taken (logged; the worker keeps running).
    ``pool`` is Celery's pool name, used only to warn when a prefork worker lacks multiprocess mode.
    """
    if not settings.metrics.enabled:
        return None
    if pool in (None, "prefork") and not multiprocess_enabled():
        log.warning(
            "metrics.per_process_only",
            hint="prefork children's submissions are not visible: call enable_multiprocess() before the pool "
            "starts, or set PROMETHEUS_MULTIPROC_DIR",
        )
    _instruments()  # create the families up front so a scrape before the first submission shows them
    chosen = settings.metrics.port if port is None else port
    started = time.monotonic()
    try:
        server = serve(worker_registry(), settings.metrics.host, chosen)
    except OSError as exc:
        log.warning("metrics.server_not_started", host=settings.metrics.host, port=chosen, error=str(exc))
        return None
    log.info("metrics.server_started", url=server.url, multiprocess=multiprocess_enabled(),
             elapsed_ms=round((time.monotonic() - started) * 1000, 1))  # fmt: skip
    return server
