"""Health checks (``vneid-sync health``): can this installation do its job right now?

One check per dependency, each answering OK, WARN or FAIL with a short detail that never carries a secret or
personal data: the HIS (read-only: the adapter's engine answers ``SELECT 1`` and a listing of the last hour
runs), the ledger (connects, schema at the newest revision), the broker (a kombu connection), every enabled
gateway destination (a token call), the signing certificate (loaded from the configured key source, inside
its validity period, not about to expire, not revoked by its CA), the evidence key (the key files read again
as a starting worker reads them, and the newest stored evidence opens with them), the clock (against the
gateway's HTTP ``Date`` header, taken from the same token answer) and, when ``[audit]`` names an anchor
recipient, the age of the last audit anchor that left the server (with the ledger checks). Exit code: 0 all
OK, 1 a WARN with ``--strict``, 2 any FAIL.

The certificate helpers here (``load_signing_certificate``, ``CertificateWatch``, ``assess_certificate``) are
shared with the metrics exporter and the alert conditions, and all three judge the certificate with the signing
helper's ``adapters.signers.certcheck``, so they agree with ``vneid-sync cert check``.
``assess_evidence_key`` is shared the same way (the ``vneid_evidence_key_loaded`` gauge, the
``evidence_key_unusable`` alert), so the three agree on whether the evidence key can be loaded; it loads the
ring with the worker's own loader (``worker.evidence_keys``, without creating anything). ``read_anchor_age``
is shared too (the ``vneid_audit_anchor_age_seconds`` gauge, the ``audit_anchor_stale`` alert).

A note on the gateway check: it takes a real token for the configured account. Whether the gateway keeps
older tokens of the account valid is not documented (DOMAIN.md §9.6); if it does not, a running worker's next
call gets a 401 and logs in again once (the client's normal path), so run this check on demand, not every
few seconds.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from itertools import islice
from typing import TYPE_CHECKING

import httpx
import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Engine

from schemas.ports import EncounterSource
from worker.config import DestinationSettings, Settings, SignerSettings
from worker.evidence_keys import (
    EvidenceKeyConfigError,
    GeneratedKeyAbsentError,
    SourceKind,
    load_evidence_keys,
)
from worker.logging import get_logger

if TYPE_CHECKING:
    from adapters.signers.certcheck import CertificateReport

log = get_logger(__name__)

#: Clock difference to the gateway above which the clock check warns (tokens, receipts and deadlines all
#: depend on the time; TCVN 14423:2026 §4.8 asks for synchronised clocks).
MAX_CLOCK_SKEW = timedelta(seconds=60)
#: Timeout of each network probe; a health check must answer quickly even when a service hangs.
PROBE_TIMEOUT_S = 10.0
#: Names of the checks, in the order they run and print; ``--skip`` takes these.
CHECK_NAMES = ("his", "ledger", "broker", "gateway", "certificate", "evidence")


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status.value:<4}  {self.name:<22} {self.detail}"


def exit_code(results: Iterable[CheckResult], *, strict: bool = False) -> int:
    """0 when everything is OK; 2 when anything FAILed; 1 for a WARN, but only when ``strict``."""
    statuses = {result.status for result in results}
    if Status.FAIL in statuses:
        return 2
    if strict and Status.WARN in statuses:
        return 1
    return 0


# ------------------------------------------------------------------------------- describing failures

_URL_CREDENTIALS = re.compile(r"(://[^:/@\s]+):[^@\s]+@")


def _connection_level_errors() -> tuple[type[BaseException], ...]:
    """Errors whose messages describe a connection or a configuration, never data read from a database."""
    import kombu.exceptions  # noqa: PLC0415  # only needed when describing an error
    import redis.exceptions  # noqa: PLC0415  # idem

    from adapters.his.errors import AdapterError  # noqa: PLC0415  # idem; adapter messages carry ids only
    from adapters.signers.errors import SignerError  # noqa: PLC0415  # idem

    return (
        sa.exc.OperationalError,
        sa.exc.InterfaceError,
        sa.exc.TimeoutError,
        sa.exc.ArgumentError,
        OSError,
        httpx.TransportError,
        httpx.InvalidURL,
        kombu.exceptions.KombuError,
        redis.exceptions.ConnectionError,
        AdapterError,
        SignerError,
    )


def describe_error(exc: BaseException) -> str:
    """A one-line description safe to print: connection-level messages in full (credentials in URLs masked),
    anything else by exception type only, since a query error may quote a value read from the database."""
    name = type(exc).__name__
    try:
        safe = isinstance(exc, _connection_level_errors())
    except ImportError:  # pragma: no cover - every package above is a dependency
        safe = False
    if not safe:
        return name
    # A DBAPIError's own text echoes the statement; the driver's message (``orig``) does not.
    text = str(exc.orig) if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else str(exc)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = _URL_CREDENTIALS.sub(r"\1:***@", first)[:240]
    return f"{name}: {first}" if first else name


# -------------------------------------------------------------------------------------- certificate


def load_signing_certificate(signer_settings: SignerSettings) -> x509.Certificate:
    """Open the configured key source once and return its certificate (file, token or remote service).

    Raises whatever the key source raises when it cannot be opened (``SignerError`` and subclasses).
    """
    from adapters.signers.registry import create_signer  # noqa: PLC0415  # load signer adapters on demand

    signer = create_signer(signer_settings)
    try:
        return signer.certificate
    finally:
        _close(signer)


def _close(resource: object) -> None:
    close = getattr(resource, "close", None)
    if callable(close):
        close()


def assess_certificate(
    certificate: x509.Certificate, settings: SignerSettings, now: datetime
) -> CertificateReport:
    """The signing helper's verdict (``adapters.signers.certcheck``): dates, key size, key usage."""
    from adapters.signers.certcheck import check_certificate  # noqa: PLC0415  # load signer adapters on demand

    return check_certificate(certificate, warning_days=settings.expiry_warning_days, now=now)


class CertificateWatch:
    """The signing certificate, cached for ``ttl``: a scrape every 15 s must not reopen a key store or a
    token. Only the certificate is kept (never the key); days left are computed at each read.

    A failed load is cached for ``error_ttl`` (shorter), so a fixed configuration shows up soon without a
    broken one being retried on every scrape. Thread-safe (the exporter serves scrapes from threads).
    """

    def __init__(
        self,
        signer_settings: SignerSettings,
        *,
        ttl: timedelta = timedelta(hours=1),
        error_ttl: timedelta = timedelta(minutes=5),
        loader: Callable[[SignerSettings], x509.Certificate] = load_signing_certificate,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = signer_settings
        self._ttl = ttl
        self._error_ttl = error_ttl
        self._loader = loader
        self._clock = clock
        self._lock = threading.Lock()
        self._value: x509.Certificate | None = None
        self._error: str | None = None
        self._valid_until: datetime | None = None

    @property
    def settings(self) -> SignerSettings:
        return self._settings

    def current(self) -> tuple[x509.Certificate | None, str | None]:
        """``(certificate, None)`` or ``(None, error description)``."""
        with self._lock:
            now = self._clock()
            if self._valid_until is None or now >= self._valid_until:
                try:
                    self._value, self._error = self._loader(self._settings), None
                    self._valid_until = now + self._ttl
                except Exception as exc:  # any failure to open the key source is the answer
                    self._value, self._error = None, describe_error(exc)
                    self._valid_until = now + self._error_ttl
                    log.warning("monitoring.certificate_unreadable", error=type(exc).__name__)
            return self._value, self._error


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
    from adapters.signers.certcheck import check_signer  # noqa: PLC0415  # load signer adapters on demand
    from adapters.signers.registry import create_signer  # noqa: PLC0415  # idem
    from adapters.signers.revocation import (  # noqa: PLC0415  # idem
        RevocationPolicy,
        revocation_status,
        signer_chain,
    )

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
            _close(signer)
    except Exception as exc:  # reported as FAIL
        return CheckResult("certificate", Status.FAIL, f"cannot use the signing key: {describe_error(exc)}")
    return judge_certificate(report)


# ----------------------------------------------------------------------------------- evidence key


@dataclass(frozen=True, slots=True)
class EvidenceKeyReport:
    """Whether the evidence key ring can be loaded now as a starting worker would load it (ids, paths only)."""

    loaded: bool
    source: str  # where the active key comes from: a file, a setting, the generated file
    detail: str  # the key ids, or what is wrong
    generated: bool = False  # the demo's key, generated on this machine under data_dir

    def summary(self) -> str:
        return f"{self.detail} ({self.source})"


def _newest_sealed(engine: Engine) -> tuple[int, str] | None:
    """The newest stored evidence blob's version id and key id: one index probe from the end of the table.
    ``None`` when nothing is sealed yet or the ledger cannot be read (its own check reports that)."""
    from worker.ledger.schema import evidence  # noqa: PLC0415  # keeps this module light to import

    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(evidence.c.version_id, evidence.c.document_key_id)
                .where(evidence.c.document_key_id.is_not(None))
                .order_by(evidence.c.version_id.desc())
                .limit(1)
            ).first()
    except sa.exc.SQLAlchemyError as exc:
        log.debug("health.evidence_not_read", error=type(exc).__name__)
        return None
    return (int(row.version_id), str(row.document_key_id)) if row is not None else None


def assess_evidence_key(settings: Settings, *, engine: Engine | None = None) -> EvidenceKeyReport:
    """Load the evidence key ring with the loader a starting worker uses (``worker.evidence_keys``), without
    creating anything: the key files named by ``VNEID_EVIDENCE__KEY_FILE`` and
    ``VNEID_EVIDENCE__RETIRED_KEYS_FILE`` are read again (a long-running process read them when it started;
    a file removed or made unreadable since then stops the next worker that starts). With ``engine``, the
    newest stored evidence must open with the ring: a key file replaced by another key, or a generated key
    lost and made anew, fails here rather than at the first resubmission."""
    newest = _newest_sealed(engine) if engine is not None else None
    try:
        loaded = load_evidence_keys(settings, create=False)
    except GeneratedKeyAbsentError as absent:
        source = absent.source
        if newest is not None:
            return EvidenceKeyReport(
                False,
                str(source),
                f"the generated key file {source.path} is missing, yet the ledger holds evidence sealed with "
                f"key {newest[1]}: restore that file from its backup (a new key cannot open it)",
                generated=True,
            )
        return EvidenceKeyReport(
            True, str(source), "not created yet: the first worker creates it", generated=True
        )
    except EvidenceKeyConfigError as exc:
        return EvidenceKeyReport(
            False, str(exc.source), str(exc), generated=exc.source.kind is SourceKind.GENERATED
        )
    keys, where = loaded.keys, str(loaded.source)
    generated = loaded.source.kind is SourceKind.GENERATED
    detail = f"key {keys.active_id}" + (f", {len(keys.retired_ids)} retired" if keys.retired_ids else "")
    if newest is not None:
        version_id, sealed_with = newest
        if sealed_with not in keys.ids:
            return EvidenceKeyReport(
                False,
                where,
                f"{detail} cannot open the newest stored evidence (version {version_id}, sealed with key "
                f"{sealed_with}): this is not the key that sealed it (restore it, or add it to retired_keys)",
                generated=generated,
            )
        detail += ", opens the newest stored evidence"
    return EvidenceKeyReport(True, where, detail, generated=generated)


def check_evidence_key(settings: Settings, *, engine: Engine | None = None) -> CheckResult:
    """The evidence key, as a starting worker would load it; FAIL when it cannot (the worker would stop)."""
    from worker.bootstrap import ledger_engine  # noqa: PLC0415  # keeps this module light to import

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


# ---------------------------------------------------------------------------------- audit anchors

#: The ``checkpoints`` row where ``alerts.publish_audit_anchor`` records the last anchor that reached an
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
    from worker.ledger import repository as repo  # noqa: PLC0415  # keeps this module light to import
    from worker.ledger.db import as_utc  # noqa: PLC0415  # idem
    from worker.ledger.schema import audit_log  # noqa: PLC0415  # idem

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
    first = as_utc(conn.execute(sa.select(audit_log.c.at).order_by(audit_log.c.id).limit(1)).scalar())
    if watched is None or first is None:
        return AnchorAge(limit)
    since = max(watched, first)
    return AnchorAge(limit, since=since, age=max(now - since, timedelta(0)))


def check_audit_anchor(
    settings: Settings, *, now: datetime, engine: Engine | None = None
) -> CheckResult | None:
    """The age of the last audit anchor; ``None`` (no line) while anchors are off. WARN once it is older than
    ``audit.anchor_stale_after`` (the ``audit_anchor_stale`` alert fires then too)."""
    from worker.bootstrap import ledger_engine  # noqa: PLC0415  # keeps this module light to import

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


# -------------------------------------------------------------------------------------------- HIS


def create_his_source(settings: Settings) -> EncounterSource:
    from adapters.his.registry import create_source  # noqa: PLC0415  # a process loads only the adapters it uses

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


# ----------------------------------------------------------------------------------------- ledger


def check_ledger(settings: Settings, *, engine: Engine | None = None) -> CheckResult:
    from worker.bootstrap import ledger_engine  # noqa: PLC0415  # keeps this module light to import
    from worker.ledger import migrate  # noqa: PLC0415  # alembic is only needed here

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
_HOT_TABLES = ("versions", "encounters", "evidence", "audit_log")


def check_ledger_maintenance(settings: Settings, *, engine: Engine | None = None) -> CheckResult | None:
    """PostgreSQL only (None on SQLite): autovacuum must run on the ledger's hot tables."""
    from worker.bootstrap import ledger_engine  # noqa: PLC0415  # keeps this module light to import

    own = engine is None
    engine = engine or ledger_engine(settings)
    try:
        if engine.dialect.name != "postgresql":
            return None
        with engine.connect() as conn:
            server, disabled = read_autovacuum(conn)
    except Exception as exc:  # reported as FAIL
        return CheckResult("ledger maintenance", Status.FAIL, f"postgresql: {describe_error(exc)}")
    finally:
        if own:
            engine.dispose()
    return judge_maintenance(server, disabled)


def read_autovacuum(conn: sa.Connection) -> tuple[str, list[str]]:
    """The server's ``autovacuum`` setting, and the hot tables whose own ``autovacuum_enabled`` is false."""
    server = conn.execute(sa.text("SELECT current_setting('autovacuum')")).scalar_one()
    disabled = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(:tables) "
            "AND 'autovacuum_enabled=false' = ANY(coalesce(c.reloptions, '{}')) ORDER BY c.relname"
        ),
        {"tables": list(_HOT_TABLES)},
    ).scalars().all()  # fmt: skip
    return str(server), list(disabled)


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


# ----------------------------------------------------------------------------------------- broker


def check_broker(settings: Settings, *, timeout_s: float = 5.0) -> CheckResult:
    from kombu.connection import Connection  # noqa: PLC0415  # only the broker check needs kombu

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


# ------------------------------------------------------------------------------ gateway and clock


@dataclass(frozen=True, slots=True)
class TokenProbe:
    """The answer of one ``POST /api/token/take``: classified, plus the gateway's clock."""

    ok: bool
    outcome: str
    http_status: int | None
    ma_ket_qua: str | None
    server_date: datetime | None  # the HTTP Date header
    local_midpoint: datetime  # our clock half-way through the call
    error: str | None = None


def probe_token(
    name: str, destination: DestinationSettings, *, facility_code: str, timeout_s: float = PROBE_TIMEOUT_S
) -> TokenProbe:
    """Take a token the way the gateway client does (same config, paths, password hash and classification).

    Written against ``adapters.gateway.bhxh`` public helpers because the client keeps its token call private.
    """
    from adapters.gateway.bhxh import protocol  # noqa: PLC0415  # loaded on demand
    from adapters.gateway.bhxh.classify import classify_token_response  # noqa: PLC0415  # idem
    from adapters.gateway.bhxh.config import BhxhGatewayConfig  # noqa: PLC0415  # idem

    config = BhxhGatewayConfig.from_settings(name, destination, default_facility_code=facility_code)
    verify: ssl.SSLContext | bool = config.verify_tls
    if config.verify_tls and config.ca_bundle is not None:
        verify = ssl.create_default_context(cafile=str(config.ca_bundle))
    body = protocol.encode_form(
        {
            protocol.FIELD_USERNAME: config.username,
            protocol.FIELD_PASSWORD: protocol.password_md5(config.password.get_secret_value()),
        }
    )
    before = datetime.now(UTC)
    started = time.monotonic()
    try:
        with httpx.Client(
            base_url=config.base_url, verify=verify, timeout=timeout_s, follow_redirects=False
        ) as client:
            response = client.post(
                config.token_path, content=body, headers={"Content-Type": protocol.FORM_CONTENT_TYPE}
            )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return TokenProbe(False, "transport", None, None, None, before, describe_error(exc))
    midpoint = before + timedelta(seconds=(time.monotonic() - started) / 2)
    answer = classify_token_response(response.status_code, response.content, now=datetime.now(UTC))
    failure = answer.failure
    return TokenProbe(
        ok=answer.grant is not None,
        outcome="accepted" if failure is None else failure.outcome.value,
        http_status=response.status_code,
        ma_ket_qua=failure.ma_ket_qua if failure is not None else "200",
        server_date=_http_date(response.headers.get("Date")),
        local_midpoint=midpoint,
    )


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def judge_token(name: str, probe: TokenProbe) -> CheckResult:
    check = f"gateway token ({name})"
    if probe.ok:
        return CheckResult(check, Status.OK, f"token issued (HTTP {probe.http_status})")
    if probe.error is not None:
        return CheckResult(check, Status.FAIL, f"unreachable: {probe.error}")
    return CheckResult(
        check,
        Status.FAIL,
        f"refused: {probe.outcome}, HTTP {probe.http_status}, maKetQua {probe.ma_ket_qua or '-'}"
        + (" — check the account, password and facility code" if probe.outcome == "config" else ""),
    )


def judge_clock(name: str, probe: TokenProbe, *, max_skew: timedelta = MAX_CLOCK_SKEW) -> CheckResult:
    check = f"clock skew ({name})"
    if probe.error is not None:
        return CheckResult(check, Status.WARN, "unknown: the gateway did not answer")
    if probe.server_date is None:
        return CheckResult(check, Status.WARN, "unknown: the gateway sent no Date header")
    skew = (probe.server_date - probe.local_midpoint).total_seconds()
    # The Date header has a resolution of one second: differences below that are noise.
    detail = f"{round(skew):+d} s against the gateway's clock"
    if abs(skew) > max_skew.total_seconds():
        return CheckResult(
            check, Status.WARN, detail + f" (over {max_skew.total_seconds():.0f} s: check NTP)"
        )
    return CheckResult(check, Status.OK, detail)


def check_gateways(settings: Settings, *, max_skew: timedelta = MAX_CLOCK_SKEW) -> list[CheckResult]:
    results: list[CheckResult] = []
    for name, destination in settings.destinations.items():
        if not destination.enabled:
            continue
        try:
            probe = probe_token(name, destination, facility_code=settings.payload.facility_code)
        except Exception as exc:  # e.g. an unreadable CA bundle: reported as FAIL
            results.append(CheckResult(f"gateway token ({name})", Status.FAIL, describe_error(exc)))
            continue
        results.append(judge_token(name, probe))
        results.append(judge_clock(name, probe, max_skew=max_skew))
    if not results:
        results.append(CheckResult("gateway", Status.FAIL, "no enabled destination is configured"))
    return results


# ------------------------------------------------------------------------------------------ all


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
