"""Health checks (``vneid-sync health``): can this installation do its job right now?

One check per dependency, each answering OK, WARN or FAIL with a short detail that never carries a secret or
personal data: the HIS (read-only: the adapter's engine answers ``SELECT 1`` and a listing of the last hour
runs), the ledger (connects, schema at the newest revision), the broker (a kombu connection), every enabled
gateway destination (a token call) and the clock (``worker.monitoring.gateway_probe``), the signing
certificate (loaded from the configured key source, inside its validity period, not about to expire, not
revoked by its CA), the evidence key (the key files read again as a starting worker reads them, and the
newest stored evidence opens with them) and, when ``[audit]`` names an anchor recipient, the age of the last
audit anchor that left the server (with the ledger checks). Exit code: 0 all OK, 1 a WARN with ``--strict``,
2 any FAIL.

The certificate, evidence key and anchor age are judged by the helpers the metrics exporter and the alert
conditions use too (``certificate``, ``evidence_key``, ``anchor_age``), so the three always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice

import sqlalchemy as sa
from kombu.connection import Connection
from sqlalchemy.engine import Engine

from adapters.his.registry import create_source
from adapters.signers.certcheck import CertificateReport, check_signer
from adapters.signers.registry import create_signer
from adapters.signers.revocation import RevocationPolicy, revocation_status, signer_chain
from schemas.ports import EncounterSource
from worker.bootstrap import ledger_engine
from worker.config import Settings
from worker.ledger import migrate
from worker.ledger import monitoring as ledger
from worker.logging import get_logger
from worker.monitoring.anchor_age import read_anchor_age
from worker.monitoring.certificate import close_quietly
from worker.monitoring.check_result import CheckResult, Status
from worker.monitoring.errors import describe_error
from worker.monitoring.evidence_key import assess_evidence_key
from worker.monitoring.gateway_probe import MAX_CLOCK_SKEW, check_gateways

log = get_logger(__name__)

#: Names of the checks, in the order they run and print; ``--skip`` takes these.
CHECK_NAMES = ("his", "ledger", "broker", "gateway", "certificate", "evidence")


_HEALTH_STATUS = {"ok": Status.OK, "warning": Status.WARN, "failure": Status.FAIL}


def judge_certificate(report: CertificateReport) -> CheckResult:
    detail = f"serial {report.serial}, expires {report.not_after.date().isoformat()} ({report.days_left:.0f} days left)"
    if report.key_matches is True:
        detail += ", key matches"
    if report.problems:
        detail += ": " + "; ".join(report.problems)
    elif report.revocation is not None:
        detail += f", revocation {report.revocation.summary()}"
    return CheckResult("certificate", _HEALTH_STATUS[report.status.value], detail)


def check_certificate(settings: Settings, *, now: datetime) -> CheckResult:
    """Load the key source, probe that the key belongs to the certificate, judge the certificate and, unless
    ``signer.revocation = "off"``, its revocation status (as ``cert check`` does)."""
    try:
        signer = create_signer(settings.signer)
        try:
            revocation = revocation_status(
                settings.signer, settings.data_dir, signer.certificate, chain=signer_chain(signer)
            )
            report = check_signer(
                signer,
                warning_days=settings.signer.expiry_warning_days,
                now=now,
                revocation=revocation,
                revocation_policy=RevocationPolicy(settings.signer.revocation),
            )
        finally:
            close_quietly(signer)
    except Exception as exc:  # reported as FAIL
        return CheckResult("certificate", Status.FAIL, f"cannot use the signing key: {describe_error(exc)}")
    return judge_certificate(report)


def check_evidence_key(settings: Settings, *, engine: Engine | None = None) -> CheckResult:
    """The evidence key, as a starting worker would load it; FAIL when it cannot (the worker would stop)."""
    own = engine is None
    engine = engine or ledger_engine(settings)
    try:
        report = assess_evidence_key(settings, engine=engine)
    finally:
        if own:
            engine.dispose()
    if not report.loaded:
        return CheckResult("evidence key", Status.FAIL, f"cannot be loaded: {report.summary()}")
    if report.generated:
        return CheckResult(
            "evidence key",
            Status.WARN,
            f"{report.summary()}: a key generated on this machine (demo) is the only copy: back it up, or "
            "set VNEID_EVIDENCE__KEY_FILE",
        )
    return CheckResult("evidence key", Status.OK, report.summary())


def check_audit_anchor(
    settings: Settings, *, now: datetime, engine: Engine | None = None
) -> CheckResult | None:
    """The age of the last audit anchor; ``None`` (no line) while anchors are off. WARN once it is older than
    ``audit.anchor_stale_after`` (the ``audit_anchor_stale`` alert fires then too)."""
    if not settings.audit.anchors_enabled:
        return None
    own = engine is None
    engine = engine or ledger_engine(settings)
    try:
        with engine.connect() as conn:
            anchor = read_anchor_age(conn, settings, now)
    except Exception as exc:  # reported as FAIL
        return CheckResult("audit anchor", Status.FAIL, f"cannot read the ledger: {describe_error(exc)}")
    finally:
        if own:
            engine.dispose()
    if anchor.stale:
        return CheckResult(
            "audit anchor",
            Status.WARN,
            f"{anchor.describe()}: is the scheduler (`vneid-sync beat`) running, and do the [audit] "
            "recipients take the anchors?",
        )
    return CheckResult("audit anchor", Status.OK, anchor.describe())


def create_his_source(settings: Settings) -> EncounterSource:
    return create_source(settings.his, facility_code=settings.payload.facility_code, url=settings.his_url)


def check_his(
    settings: Settings, *, now: datetime, source_factory: Callable[[], EncounterSource] | None = None
) -> CheckResult:
    """Read-only: ``SELECT 1`` through the adapter's engine (fails fast, without the adapter's retries),
    then the first row of ``list_completed`` over the last hour (the adapter's own queries and mapping)."""
    adapter = settings.his.adapter
    try:
        source = (source_factory or (lambda: create_his_source(settings)))()
    except Exception as exc:  # reported as FAIL
        return CheckResult("his", Status.FAIL, f"adapter {adapter}: cannot start: {describe_error(exc)}")
    try:
        engine = getattr(source, "engine", None)
        if isinstance(engine, Engine):
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        recent = list(islice(source.list_completed(now - timedelta(hours=1), now), 1))
    except Exception as exc:  # reported as FAIL
        return CheckResult("his", Status.FAIL, f"adapter {adapter}: {describe_error(exc)}")
    finally:
        source.close()
    seen = "visits completed in the last hour" if recent else "no visit completed in the last hour"
    return CheckResult("his", Status.OK, f"adapter {adapter}: reachable, listing works ({seen})")


def check_ledger(settings: Settings, *, engine: Engine | None = None) -> CheckResult:
    own = engine is None
    engine = engine or ledger_engine(settings)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        current, head = migrate.current_revision(engine), migrate.head_revision()
    except Exception as exc:  # reported as FAIL
        return CheckResult("ledger", Status.FAIL, f"{engine.dialect.name}: {describe_error(exc)}")
    finally:
        if own:
            engine.dispose()
    if current != head:
        return CheckResult(
            "ledger",
            Status.FAIL,
            f"{engine.dialect.name}: schema at {current or '(empty)'}, newest is {head}: "
            "run `vneid-sync db upgrade`",
        )
    return CheckResult("ledger", Status.OK, f"{engine.dialect.name}: connected, schema at {current}")


#: The ledger tables updated several times per encounter: without (auto)vacuum and analyze their statistics
#: describe the empty tables of the first minutes, and the delivery's plans go stale.
HOT_TABLES = ("versions", "encounters", "evidence", "audit_log")


def check_ledger_maintenance(settings: Settings, *, engine: Engine | None = None) -> CheckResult | None:
    """PostgreSQL only (None on SQLite): autovacuum must run on the ledger's hot tables."""
    own = engine is None
    engine = engine or ledger_engine(settings)
    try:
        if engine.dialect.name != "postgresql":
            return None
        with engine.connect() as conn:
            autovacuum = ledger.autovacuum_settings(conn, HOT_TABLES)
    except Exception as exc:  # reported as FAIL
        return CheckResult("ledger maintenance", Status.FAIL, f"postgresql: {describe_error(exc)}")
    finally:
        if own:
            engine.dispose()
    return judge_maintenance(autovacuum.server, autovacuum.disabled)


def judge_maintenance(server: str, disabled: Sequence[str]) -> CheckResult:
    """Measured in the 1M scale run on a server with autovacuum off: about 20 accepted encounters/s while the
    tables grew from empty (stale plans), 50/s after one ANALYZE, about 100/s (the gateway simulator's limit)
    with VACUUM (ANALYZE) every 5 minutes."""
    advice = (
        ": the ledger's statistics and query plans go stale as it grows (a backfill slows several-fold). Turn "
        "autovacuum on, or run `VACUUM (ANALYZE) versions, encounters, evidence, audit_log` every few minutes"
    )
    if server != "on":
        return CheckResult("ledger maintenance", Status.WARN, "autovacuum is off on the server" + advice)
    if disabled:
        return CheckResult(
            "ledger maintenance", Status.WARN, f"autovacuum is disabled on {', '.join(disabled)}" + advice
        )
    return CheckResult("ledger maintenance", Status.OK, "autovacuum on")


def check_broker(settings: Settings, *, timeout_s: float = 5.0) -> CheckResult:
    url = settings.broker_url
    scheme = url.split("://", 1)[0]
    password = settings.broker.password.get_secret_value() if settings.broker.password else None
    try:
        with Connection(  # type: ignore[no-untyped-call]  # kombu is unannotated
            url,
            password=password,
            connect_timeout=timeout_s,
            transport_options={"socket_connect_timeout": timeout_s, "socket_timeout": timeout_s},
        ) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout_s)
            driver = conn.transport.driver_name
    except Exception as exc:  # reported as FAIL
        return CheckResult("broker", Status.FAIL, f"{scheme}: {describe_error(exc)}")
    return CheckResult("broker", Status.OK, f"{scheme}: connected ({driver})")


def run_checks(
    settings: Settings,
    *,
    skip: Sequence[str] = (),
    now: datetime | None = None,
    max_skew: timedelta = MAX_CLOCK_SKEW,
    source_factory: Callable[[], EncounterSource] | None = None,
) -> list[CheckResult]:
    """Every check not in ``skip`` (names from ``CHECK_NAMES``), in a fixed order."""
    unknown = sorted(set(skip) - set(CHECK_NAMES))
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(unknown)}; known: {', '.join(CHECK_NAMES)}")
    moment = now or datetime.now(UTC)
    results: list[CheckResult] = []
    if "his" not in skip:
        results.append(check_his(settings, now=moment, source_factory=source_factory))
    if "ledger" not in skip:
        results.append(check_ledger(settings))
        maintenance = check_ledger_maintenance(settings)
        if maintenance is not None:
            results.append(maintenance)
        anchor = check_audit_anchor(settings, now=moment)
        if anchor is not None:
            results.append(anchor)
    if "broker" not in skip:
        results.append(check_broker(settings))
    if "gateway" not in skip:
        results.extend(check_gateways(settings, max_skew=max_skew))
    if "certificate" not in skip:
        results.append(check_certificate(settings, now=moment))
    if "evidence" not in skip:
        results.append(check_evidence_key(settings))
    for result in results:
        log.debug("health.check", check=result.name, status=result.status.value)
    return results
