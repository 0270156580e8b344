"""The signing certificate as monitoring sees it: loaded from the configured key source, judged by the signing
helper's ``adapters.signers.certcheck`` (so the health check, the metrics exporter and the alert conditions agree
with ``vneid-sync cert check``), and cached for the exporter by ``CertificateWatch``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography import x509

from adapters.signers.certcheck import CertificateReport, check_certificate
from adapters.signers.registry import create_signer
from worker.config import SignerSettings
from worker.logging import get_logger
from worker.monitoring.errors import describe_error

log = get_logger(__name__)


def load_signing_certificate(signer_settings: SignerSettings) -> x509.Certificate:
    """Open the configured key source once and return its certificate (file, token or remote service).

    Raises whatever the key source raises when it cannot be opened (``SignerError`` and subclasses).
    """
    signer = create_signer(signer_settings)
    try:
        return signer.certificate
    finally:
        close_quietly(signer)


def close_quietly(resource: object) -> None:
    close = getattr(resource, "close", None)
    if callable(close):
        close()


def assess_certificate(
    certificate: x509.Certificate, settings: SignerSettings, now: datetime
) -> CertificateReport:
    """The signing helper's verdict (``adapters.signers.certcheck``): dates, key size, key usage."""
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
