"""The ledger exporter: rows written through the repository, scraped over real HTTP, parsed as text format."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.signers.testpki import create_test_pki
from schemas.domain.values import VIETNAM_TZ
from tests.unit.monitoring.support import add_visit, attempt, read_until, scrape, sign, value, visit_in_state
from worker.config import DestinationSettings, Settings, SignerSettings, load_settings
from worker.ledger import repository as repo
from worker.ledger.db import create_ledger_engine
from worker.ledger.states import State
from worker.monitoring.certificate import CertificateWatch, load_signing_certificate
from worker.monitoring.exposition import MetricsServer, serve
from worker.monitoring.ledger_metrics import ledger_registry

NOW = datetime(2026, 3, 20, 10, 0, tzinfo=VIETNAM_TZ).astimezone(UTC)
REPO_ROOT = Path(__file__).resolve().parents[3]


def local(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+07:00")


@pytest.fixture(scope="module")
def signer_settings(tmp_path_factory: pytest.TempPathFactory) -> SignerSettings:
    """A real PKCS#12 whose certificate expires 20 days after NOW (inside the 30-day warning)."""
    pki = create_test_pki(
        tmp_path_factory.mktemp("pki"),
        ca_key_size=2048,
        not_before=NOW - timedelta(days=10),
        not_after=NOW + timedelta(days=20),
    )
    return SignerSettings(source="file", key_file=pki.pkcs12, passphrase=pki.passphrase)  # type: ignore[arg-type]


def monitoring_settings(signer: SignerSettings | None = None) -> Settings:
    return load_settings(
        destinations={"bhxh": DestinationSettings(), "hub": DestinationSettings(primary=False)},
        signer=signer or SignerSettings(),
    )


class CountingLoader:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, settings: SignerSettings) -> x509.Certificate:
        self.calls += 1
        return load_signing_certificate(settings)


@pytest.fixture
def exporter(
    sqlite_ledger: Engine, signer_settings: SignerSettings
) -> Iterator[tuple[MetricsServer, CountingLoader, list[datetime]]]:
    loader = CountingLoader()
    clock = [NOW]
    watch = CertificateWatch(signer_settings, loader=loader, clock=lambda: clock[0])
    registry = ledger_registry(
        sqlite_ledger, monitoring_settings(signer_settings), certificates=watch, clock=lambda: clock[0]
    )
    server = serve(registry, "127.0.0.1", 0)
    yield server, loader, clock
    server.close()


def run_collector_scenario(engine: Engine, server: MetricsServer) -> None:
    """Shared with the PostgreSQL integration test: the same rows, the same expected numbers."""
    visit_in_state(engine, "A", local("2025-12-20"), State.ACCEPTED)  # before the legal start
    visit_in_state(engine, "B", local("2026-03-01"), State.ACCEPTED)
    oldest = visit_in_state(engine, "C", local("2026-03-02"), State.REJECTED)
    visit_in_state(engine, "D", local("2026-03-10"), State.DEAD)
    visit_in_state(engine, "E", local("2026-03-05"), State.QUARANTINED)
    visit_in_state(engine, "F", local("2026-02-01"), State.HIDDEN)  # older, but not work to do
    visit_in_state(engine, "G", local("2026-03-19"), State.DISCOVERED)
    visit_in_state(engine, "H", local("2026-03-18"), State.SUBMITTED)

    first = scrape(server.url)
    assert value(first, "vneid_ledger_up") == 1
    expected = {
        "accepted": 2,
        "rejected": 1,
        "dead": 1,
        "quarantined": 1,
        "hidden": 1,
        "discovered": 1,
        "submitted": 1,
        "built": 0,
        "signed": 0,
    }
    for state, count in expected.items():
        assert value(first, "vneid_ledger_encounters", state=state) == count, state
    assert (
        value(first, "vneid_ledger_oldest_unaccepted_age_seconds")
        == (NOW - local("2026-03-02")).total_seconds()
    )
    assert (
        value(first, "vneid_ledger_oldest_encounter_age_seconds", state="accepted")
        == (NOW - local("2025-12-20")).total_seconds()
    )
    assert value(first, "vneid_ledger_coverage_encounters", kind="known") == 6  # B C D E G H
    assert value(first, "vneid_ledger_coverage_encounters", kind="accepted") == 1
    assert value(first, "vneid_ledger_coverage_ratio") == pytest.approx(1 / 6)
    assert value(first, "vneid_destination_stopped", destination="bhxh") == 0
    assert value(first, "vneid_destination_stopped", destination="hub") == 0
    assert not [key for key in first if key[0] == "vneid_gateway_attempts_total"]  # counted from the start

    # New audit rows after the first scrape are counted by destination and maKetQua.
    later = sign(engine, add_visit(engine, "I", local("2026-03-19")))
    attempt(engine, later, State.SUBMITTED, "500", error_code="transient:500")
    attempt(engine, later, State.SUBMITTED, None, error_code="transient:network")
    attempt(engine, later, State.ACCEPTED, "200")
    attempt(engine, oldest, State.REJECTED, "422", destination="hub")
    with engine.begin() as conn:
        repo.stop_destination(conn, "bhxh", "config:402")

    second = scrape(server.url)
    assert value(second, "vneid_gateway_attempts_total", destination="bhxh", code="500") == 1
    assert value(second, "vneid_gateway_attempts_total", destination="bhxh", code="none") == 1
    assert value(second, "vneid_gateway_attempts_total", destination="bhxh", code="200") == 1
    assert value(second, "vneid_gateway_attempts_total", destination="hub", code="422") == 1
    assert value(second, "vneid_gateway_stops_total", destination="bhxh", reason="config:402") == 1
    assert value(second, "vneid_destination_stopped", destination="bhxh") == 1
    assert value(second, "vneid_ledger_encounters", state="accepted") == 3

    third = scrape(server.url)  # nothing new: counters stay, nothing is counted twice
    assert value(third, "vneid_gateway_attempts_total", destination="bhxh", code="200") == 1
    assert value(third, "vneid_gateway_stops_total", destination="bhxh", reason="config:402") == 1


def test_ledger_metrics_over_http(
    sqlite_ledger: Engine, exporter: tuple[MetricsServer, CountingLoader, list[datetime]]
) -> None:
    server, _, _ = exporter
    run_collector_scenario(sqlite_ledger, server)


def test_certificate_is_read_once_per_ttl(
    exporter: tuple[MetricsServer, CountingLoader, list[datetime]],
) -> None:
    server, loader, clock = exporter
    first = scrape(server.url)
    scrape(server.url)
    assert loader.calls == 1
    assert value(first, "vneid_signer_certificate_loaded") == 1
    assert value(first, "vneid_signer_certificate_expiry_days") == pytest.approx(20.0)
    assert value(first, "vneid_signer_certificate_status") == 1  # warning: within 30 days
    assert (
        value(first, "vneid_signer_certificate_not_after_seconds") == (NOW + timedelta(days=20)).timestamp()
    )
    clock[0] = NOW + timedelta(days=21)  # past the TTL, and past the expiry
    expired = scrape(server.url)
    assert loader.calls == 2
    assert value(expired, "vneid_signer_certificate_expiry_days") == pytest.approx(-1.0)
    assert value(expired, "vneid_signer_certificate_status") == 2


def test_unreachable_ledger_reports_down_and_keeps_serving() -> None:
    engine = create_ledger_engine(
        "postgresql+psycopg://vneid@127.0.0.1:1/ledger"
    )  # nothing listens on port 1
    watch = CertificateWatch(SignerSettings())  # no key configured: unreadable, reported as such
    server = serve(ledger_registry(engine, monitoring_settings(), certificates=watch), "127.0.0.1", 0)
    try:
        samples = scrape(server.url)
    finally:
        server.close()
        engine.dispose()
    assert value(samples, "vneid_ledger_up") == 0
    assert value(samples, "vneid_signer_certificate_loaded") == 0
    assert not [key for key in samples if key[0] == "vneid_ledger_encounters"]


def test_metrics_command_serves_until_sigterm(tmp_path: Path) -> None:
    """The exporter process: started like `vneid-sync metrics`, scraped, stopped with SIGTERM."""
    ledger = tmp_path / "ledger.sqlite3"
    engine = create_ledger_engine(f"sqlite:///{ledger}")
    from worker.ledger import migrate

    migrate.upgrade(engine)
    visit_in_state(engine, "Z", local("2026-03-19"), State.DEAD)
    engine.dispose()
    script = (
        "import sys, typer\n"
        "from worker.cli import monitor_cmd\n"
        "app = typer.Typer()\n"
        "@app.callback()\n"
        "def root() -> None: pass\n"
        "monitor_cmd.register(app)\n"
        "sys.exit(typer.main.get_command(app).main(sys.argv[1:], standalone_mode=False) or 0)\n"
    )
    env = {
        **os.environ,
        "VNEID_LEDGER__DATABASE_URL": f"sqlite:///{ledger}",
        "VNEID_DATA_DIR": str(tmp_path),
        "VNEID_LOGGING__FORMAT": "json",
        "COLUMNS": "200",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", script, "metrics", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = read_until(process.stdout, "serving ledger metrics on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[-1]
        samples = scrape(url)
        assert value(samples, "vneid_ledger_encounters", state="dead") == 1
        assert not [key for key in samples if key[0].startswith(("process_", "python_"))]  # the ledger only
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
