"""A revoked (or, under "require", unknown) certificate as the operator sees it: the alert conditions, the
health check and the metrics, against a test CA on real HTTP and a real SQLite ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.signers.testpki import TestPkiFiles
from tests.unit.signers.revocation_support import OCSP_PATH, CaServices, Clock, key_naming, serve_ca
from tests.unit.signers.support import PkiSet, file_settings
from worker.config import Settings, load_settings
from worker.monitoring import alert_machine, alert_model, health
from worker.monitoring.certificate import CertificateWatch
from worker.monitoring.check_result import Status
from worker.monitoring.ledger_metrics import ledger_registry


@pytest.fixture
def ca_services(pki: PkiSet) -> Iterator[CaServices]:
    with serve_ca(pki.ca, Clock()) as services:
        yield services


def settings_for(files: TestPkiFiles, data_dir: Path, **signer: Any) -> Settings:
    return load_settings(data_dir=data_dir, signer=file_settings(files, **signer))


def test_certificate_revoked_alert_fires_once_and_clears_on_a_new_certificate(
    sqlite_ledger: Engine, ca_services: CaServices, tmp_path: Path
) -> None:
    files = key_naming(ca_services, tmp_path / "old")
    revoked_at = ca_services.clock.now - timedelta(hours=2)
    ca_services.revoke(files.hospital.certificate, x509.ReasonFlags.key_compromise, at=revoked_at)
    settings = settings_for(files, tmp_path / "data")
    now = datetime.now(UTC)

    def evaluate(certificate: x509.Certificate, minutes: int) -> list[alert_model.Transition]:
        return alert_machine.evaluate_and_notify(
            sqlite_ledger,
            settings,
            [],
            now + timedelta(minutes=minutes),
            certificate_reader=lambda: certificate,
        )

    [fired] = evaluate(files.hospital.certificate, 0)
    assert (fired.condition, fired.firing) == ("certificate_revoked", True)
    assert "revoked on" in fired.summary
    assert "nothing new is signed" in fired.summary
    assert fired.detail["reason"] == "keyCompromise"
    assert fired.detail["revoked_at"] == revoked_at.isoformat()
    assert fired.detail["source"] == "ocsp"
    assert evaluate(files.hospital.certificate, 5) == []  # still revoked: no second message
    renewed = key_naming(ca_services, tmp_path / "new")
    [cleared] = evaluate(renewed.hospital.certificate, 10)
    assert (cleared.condition, cleared.firing) == ("certificate_revoked", False)
    assert ca_services.requests[OCSP_PATH] == 2  # one per certificate: the rest came from the cache


def test_unknown_status_alerts_only_when_it_stops_signing(
    sqlite_ledger: Engine, ca_services: CaServices, tmp_path: Path
) -> None:
    files = key_naming(ca_services, tmp_path / "pki", reachable=False)
    now = datetime.now(UTC)
    warn = settings_for(files, tmp_path / "warn")
    quiet = alert_machine.evaluate_and_notify(
        sqlite_ledger, warn, [], now, certificate_reader=lambda: files.hospital.certificate
    )
    assert quiet == []
    require = settings_for(files, tmp_path / "require", revocation="require")
    [stopped] = alert_machine.evaluate_and_notify(
        sqlite_ledger,
        require,
        [],
        now + timedelta(minutes=5),
        certificate_reader=lambda: files.hospital.certificate,
    )
    assert (stopped.condition, stopped.firing) == ("certificate_status_unknown", True)
    assert "signing is stopped" in stopped.summary
    assert len(stopped.detail["problems"]) == 2


@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("good", Status.OK, "revocation good according to OCSP"),
        ("revoked", Status.FAIL, "(cessationOfOperation) according to OCSP"),
        ("unreachable, warn", Status.WARN, "revocation status unknown: OCSP"),
        ("unreachable, require", Status.FAIL, "(signer.revocation = require)"),
    ],
)
def test_health_certificate_check_includes_revocation(
    ca_services: CaServices, tmp_path: Path, case: str, status: Status, words: str
) -> None:
    files = key_naming(ca_services, tmp_path / "pki", reachable=not case.startswith("unreachable"))
    if case == "revoked":
        ca_services.revoke(
            files.hospital.certificate, x509.ReasonFlags.cessation_of_operation, at=ca_services.clock.now
        )
    policy = "require" if case.endswith("require") else "warn"
    result = health.check_certificate(
        settings_for(files, tmp_path / "data", revocation=policy), now=datetime.now(UTC)
    )
    assert result.status is status, result.detail
    assert words in result.detail


@pytest.mark.parametrize(("revoke", "expected"), [(False, 0.0), (True, 2.0)])
def test_revocation_gauge(
    sqlite_ledger: Engine, ca_services: CaServices, tmp_path: Path, revoke: bool, expected: float
) -> None:
    files = key_naming(ca_services, tmp_path / "pki")
    if revoke:
        ca_services.revoke(files.hospital.certificate, None, at=ca_services.clock.now)
    settings = settings_for(files, tmp_path / "data")
    watch = CertificateWatch(settings.signer, loader=lambda _: files.hospital.certificate)
    registry = ledger_registry(sqlite_ledger, settings, certificates=watch)
    assert registry.get_sample_value("vneid_signer_certificate_revocation_status") == expected
    next_update = registry.get_sample_value("vneid_signer_certificate_revocation_next_update_seconds")
    assert next_update == (ca_services.clock.now + ca_services.ocsp_validity).timestamp()
    assert ca_services.requests[OCSP_PATH] == 1  # the second scrape answered from the cache

    off = settings_for(files, tmp_path / "off", revocation="off")
    off_watch = CertificateWatch(off.signer, loader=lambda _: files.hospital.certificate)
    quiet = ledger_registry(sqlite_ledger, off, certificates=off_watch)
    assert quiet.get_sample_value("vneid_signer_certificate_revocation_status") is None
