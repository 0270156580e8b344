"""Monitoring against the production services: the exporter and the alerts on a PostgreSQL ledger (including
concurrent alert checks), the ledger and broker health checks on PostgreSQL and Redis."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.signers.testpki import generate_ca, issue_signing_certificate
from tests.unit.monitoring.support import visit_in_state, webhook_receiver
from tests.unit.monitoring.test_alerts import NOW, alert_settings, local
from tests.unit.monitoring.test_ledger_metrics import monitoring_settings, run_collector_scenario
from worker.config import SignerSettings, load_settings
from worker.ledger import repository as repo
from worker.ledger.states import State
from worker.monitoring import alert_machine, health, notification
from worker.monitoring.certificate import CertificateWatch
from worker.monitoring.check_result import Status
from worker.monitoring.exposition import serve
from worker.monitoring.ledger_metrics import ledger_registry


@pytest.fixture(scope="module")
def certificate() -> x509.Certificate:
    ca = generate_ca(key_size=2048)
    return issue_signing_certificate(
        ca, not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365)
    ).certificate


def test_ledger_metrics_on_postgresql(pg_ledger: Engine) -> None:
    registry = ledger_registry(pg_ledger, monitoring_settings(), certificates=CertificateWatch(SignerSettings()),
                               clock=lambda: NOW)  # fmt: skip
    server = serve(registry, "127.0.0.1", 0)
    try:
        run_collector_scenario(pg_ledger, server)
    finally:
        server.close()


def test_concurrent_alert_checks_notify_once(pg_ledger: Engine, certificate: x509.Certificate) -> None:
    """Four checks racing (cron overlapping a manual run): the advisory lock lets exactly one notify."""
    visit_in_state(pg_ledger, "DEAD1", local("2026-03-19"), State.DEAD)
    with pg_ledger.begin() as conn:
        repo.stop_destination(conn, "hub", "auth:401")
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    with webhook_receiver() as receiver:
        cfg = alert_settings(receiver.url)

        def check() -> None:
            try:
                barrier.wait(timeout=10)
                alert_machine.evaluate_and_notify(pg_ledger, cfg, notification.notifiers_from_settings(cfg), NOW,
                                           certificate_reader=lambda: certificate)  # fmt: skip
            except BaseException as exc:  # collected and re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=check) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert sorted(receiver.statuses()) == [
        ("dead_encounters", "firing"),
        ("destination_stopped:hub", "firing"),
    ]


def test_ledger_health_on_postgresql(pg_url: str, pg_ledger: Engine) -> None:
    result = health.check_ledger(load_settings(ledger={"database_url": pg_url}))
    assert result.status is Status.OK
    assert result.detail.startswith("postgresql: connected, schema at")


def test_broker_health_on_redis(redis_url: str) -> None:
    result = health.check_broker(load_settings(broker={"url": redis_url}))
    assert result.status is Status.OK
    assert result.detail == "redis: connected (redis)"


def test_broker_health_fails_on_a_wrong_redis_password(redis_url: str) -> None:
    """Redis refuses an unknown user: the check fails and does not print the password. (A password alone
    would pass: redis-py tolerates one when the server has none configured.)"""
    url = redis_url.replace("redis://", "redis://vneid:not-the-password@")
    result = health.check_broker(load_settings(broker={"url": url}), timeout_s=2)
    assert result.status is Status.FAIL
    assert "not-the-password" not in result.detail
