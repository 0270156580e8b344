"""Health checks: each check's OK and FAIL paths against real components on this machine (SQLite ledger and
broker, the demo HIS, the gateway simulator and stdlib HTTP servers on 127.0.0.1, real key files).
PostgreSQL and Redis are in tests/integration/monitoring."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from adapters.gateway.simulator import running_simulator
from adapters.signers.testpki import create_test_pki
from tests.unit.monitoring.support import monitor_cli
from worker.config import DestinationSettings, Settings, SignerSettings, load_settings
from worker.ledger.evidence_crypto import new_key, write_key_file
from worker.monitoring import check_result, errors, gateway_probe, health
from worker.monitoring.check_result import CheckResult, Status


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SignerSettings]:
    directory = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)
    good = create_test_pki(directory / "good", ca_key_size=2048, valid_days=365)
    soon = create_test_pki(
        directory / "soon",
        ca_key_size=2048,
        not_before=now - timedelta(days=300),
        not_after=now + timedelta(days=10),
    )

    def settings(files: Any) -> SignerSettings:
        return SignerSettings(source="file", key_file=files.pkcs12, passphrase=files.passphrase)

    return {"good": settings(good), "soon": settings(soon)}


# --------------------------------------------------------------------------------------------- exit


def test_exit_codes() -> None:
    ok, warn, fail = (CheckResult("x", status, "") for status in (Status.OK, Status.WARN, Status.FAIL))
    assert check_result.exit_code([ok, ok]) == 0
    assert check_result.exit_code([ok, warn]) == 0
    assert check_result.exit_code([ok, warn], strict=True) == 1
    assert check_result.exit_code([warn, fail], strict=True) == 2
    assert check_result.exit_code([fail]) == 2


def test_error_descriptions_hide_credentials_and_data() -> None:
    refused = sa.exc.OperationalError(
        "SELECT 1", {}, OSError("could not connect to redis://app:s3cret@10.0.0.5:6379")
    )
    assert (
        errors.describe_error(refused)
        == "OperationalError: could not connect to redis://app:***@10.0.0.5:6379"
    )
    # A query error may quote a value read from the HIS: only its type is shown.
    data_error = sa.exc.DataError("SELECT …", {}, ValueError("invalid input: 'NGUYỄN VĂN A'"))
    assert errors.describe_error(data_error) == "DataError"
    assert errors.describe_error(KeyError("HO_TEN=NGUYỄN VĂN A")) == "KeyError"


# ------------------------------------------------------------------------------------------- ledger


def test_ledger_ok_when_migrated(sqlite_ledger: sa.Engine) -> None:
    result = health.check_ledger(load_settings(), engine=sqlite_ledger)
    assert result.status is Status.OK
    assert "schema at" in result.detail


def test_ledger_fails_when_not_migrated(tmp_path: Path) -> None:
    cfg = load_settings(ledger={"database_url": f"sqlite:///{tmp_path / 'empty.sqlite3'}"})
    result = health.check_ledger(cfg)
    assert result.status is Status.FAIL
    assert "run `vneid-sync db upgrade`" in result.detail


def test_ledger_fails_when_unreachable() -> None:
    url = f"postgresql+psycopg://vneid:ledger-pw@127.0.0.1:{closed_port()}/ledger"
    result = health.check_ledger(load_settings(ledger={"database_url": url}))
    assert result.status is Status.FAIL
    assert "ledger-pw" not in result.detail
    assert "refused" in result.detail.lower() or "connect" in result.detail.lower()


# ------------------------------------------------------------------------------------------- broker


def test_embedded_broker_ok(tmp_path: Path) -> None:
    result = health.check_broker(load_settings(data_dir=tmp_path))
    assert result.status is Status.OK
    assert result.detail == "sqla+sqlite: connected (sqlalchemy)"


def test_broker_fails_on_closed_port() -> None:
    result = health.check_broker(
        load_settings(broker={"url": f"redis://:broker-pw@127.0.0.1:{closed_port()}/0"}), timeout_s=2
    )
    assert result.status is Status.FAIL
    assert "broker-pw" not in result.detail


# ---------------------------------------------------------------------------------------------- HIS


def test_his_ok_on_the_demo_database(tmp_path: Path) -> None:
    from adapters.his.demo.seed import seed_demo_his

    url = f"sqlite:///{tmp_path / 'his.sqlite3'}"
    seed_demo_his(url, encounters=2, random_seed=1, bad_share=0)
    result = health.check_his(load_settings(his={"adapter": "demo", "url": url}), now=datetime.now(UTC))
    assert result.status is Status.OK, result.detail
    assert result.detail.startswith("adapter demo: reachable, listing works")


def test_his_fails_without_its_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not-a-his.sqlite3'}"
    sa.create_engine(url).connect().close()  # the file exists, the HIS tables do not
    result = health.check_his(load_settings(his={"adapter": "demo", "url": url}), now=datetime.now(UTC))
    assert result.status is Status.FAIL
    assert result.detail.startswith("adapter demo:")


def test_his_fails_when_unreachable() -> None:
    url = f"postgresql+psycopg://his_reader:his-pw@127.0.0.1:{closed_port()}/his"
    result = health.check_his(load_settings(his={"adapter": "demo", "url": url}), now=datetime.now(UTC))
    assert result.status is Status.FAIL
    assert "his-pw" not in result.detail


def test_his_fails_on_an_unknown_adapter() -> None:
    result = health.check_his(load_settings(his={"adapter": "no-such-his"}), now=datetime.now(UTC))
    assert result.status is Status.FAIL
    assert "unknown HIS adapter 'no-such-his'" in result.detail


# --------------------------------------------------------------------------------------- certificate


def test_certificate_ok_and_key_matches(pki: dict[str, SignerSettings]) -> None:
    result = health.check_certificate(load_settings(signer=pki["good"]), now=datetime.now(UTC))
    assert result.status is Status.OK, result.detail
    assert "key matches" in result.detail


def test_certificate_expiring_warns(pki: dict[str, SignerSettings]) -> None:
    result = health.check_certificate(load_settings(signer=pki["soon"]), now=datetime.now(UTC))
    assert result.status is Status.WARN
    assert "renew" in result.detail


def test_certificate_expired_fails(pki: dict[str, SignerSettings]) -> None:
    result = health.check_certificate(
        load_settings(signer=pki["soon"]), now=datetime.now(UTC) + timedelta(days=11)
    )
    assert result.status is Status.FAIL
    assert "expired" in result.detail


def test_certificate_unloadable_fails_without_the_passphrase(pki: dict[str, SignerSettings]) -> None:
    wrong = pki["good"].model_copy(update={"passphrase": "not-the-passphrase"})
    result = health.check_certificate(load_settings(signer=wrong), now=datetime.now(UTC))
    assert result.status is Status.FAIL
    assert "not-the-passphrase" not in result.detail
    assert pki["good"].passphrase is not None
    assert pki["good"].passphrase.get_secret_value() not in result.detail
    missing = health.check_certificate(load_settings(), now=datetime.now(UTC))
    assert missing.status is Status.FAIL
    assert "key_file" in missing.detail


# ------------------------------------------------------------------------------------ gateway/clock


def gateway_settings(url: str, password: str = "demo-password") -> Settings:
    return load_settings(destinations={"bhxh": DestinationSettings(base_url=url, password=password)})  # type: ignore[arg-type]


def test_gateway_token_and_clock_ok_against_the_simulator() -> None:
    with running_simulator() as simulator:
        results = gateway_probe.check_gateways(gateway_settings(simulator.url))
    assert [(r.name, r.status) for r in results] == [
        ("gateway token (bhxh)", Status.OK),
        ("clock skew (bhxh)", Status.OK),
    ]


def test_gateway_token_refused_for_a_wrong_password() -> None:
    with running_simulator() as simulator:
        token, clock = gateway_probe.check_gateways(
            gateway_settings(simulator.url, password="wrong-password")
        )
    assert token.status is Status.FAIL
    assert token.detail.startswith("refused: config")
    assert "wrong-password" not in token.detail
    assert clock.status is Status.OK  # the refusal still carried the gateway's Date


def test_gateway_unreachable() -> None:
    token, clock = gateway_probe.check_gateways(gateway_settings(f"http://127.0.0.1:{closed_port()}"))
    assert token.status is Status.FAIL
    assert token.detail.startswith("unreachable: ConnectError")
    assert clock.status is Status.WARN


@contextmanager
def token_server(date_header: str | None) -> Iterator[str]:
    """Answers every token call with a grant, and the given Date header (or none)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.dumps(
                {
                    "maKetQua": "200",
                    "APIKey": {"access_token": "a", "id_token": "b", "expires_in": "2099-01-01T00:00:00Z"},
                }
            ).encode()
            self.send_response_only(200)  # unlike send_response, adds no Date header
            if date_header is not None:
                self.send_header("Date", date_header)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_clock_skew_warns_above_the_limit() -> None:
    behind = format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)
    with token_server(behind) as url:
        token, clock = gateway_probe.check_gateways(gateway_settings(url))
    assert token.status is Status.OK
    assert clock.status is Status.WARN
    assert clock.detail.startswith("-30")  # about -300 s against the gateway's clock


def test_clock_skew_unknown_without_a_date_header() -> None:
    with token_server(None) as url:
        _, clock = gateway_probe.check_gateways(gateway_settings(url))
    assert clock.status is Status.WARN
    assert "no Date header" in clock.detail


def test_no_enabled_destination_fails() -> None:
    cfg = load_settings(destinations={"bhxh": DestinationSettings(enabled=False)})
    assert [r.status for r in gateway_probe.check_gateways(cfg)] == [Status.FAIL]


def test_unknown_check_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown check"):
        health.run_checks(load_settings(), skip=["gateways"])


# ---------------------------------------------------------------------------------------------- CLI


def test_health_command_exit_codes(
    tmp_path: Path, sqlite_ledger: sa.Engine, pki: dict[str, SignerSettings]
) -> None:
    """All OK → 0; a WARN → 0, or 1 with --strict; a FAIL → 2. One line per check, no secret printed."""
    from adapters.his.demo.seed import seed_demo_his

    his_url = f"sqlite:///{tmp_path / 'his.sqlite3'}"
    seed_demo_his(his_url, encounters=1, random_seed=1, bad_share=0)
    signer = pki["good"]
    assert signer.key_file is not None
    assert signer.passphrase is not None
    evidence_key = tmp_path / "evidence-key"
    write_key_file(evidence_key, new_key())
    runner = CliRunner()
    with running_simulator() as simulator:
        env = {
            "VNEID_DATA_DIR": str(tmp_path),
            "VNEID_EVIDENCE__KEY_FILE": str(evidence_key),
            "VNEID_LEDGER__DATABASE_URL": str(sqlite_ledger.url),
            "VNEID_HIS__ADAPTER": "demo",
            "VNEID_HIS__URL": his_url,
            "VNEID_DESTINATIONS__BHXH__BASE_URL": simulator.url,
            "VNEID_SIGNER__SOURCE": "file",
            "VNEID_SIGNER__KEY_FILE": str(signer.key_file),
            "VNEID_SIGNER__PASSPHRASE": signer.passphrase.get_secret_value(),
            "COLUMNS": "200",
        }
        ok = runner.invoke(monitor_cli(), ["health"], env=env)
        assert ok.exit_code == 0, ok.output
        lines = ok.stdout.strip().splitlines()  # logs go to stderr
        assert [line.split()[0] for line in lines] == ["OK"] * 7, ok.stdout
        assert signer.passphrase.get_secret_value() not in ok.output

        soon = pki["soon"]
        assert soon.passphrase is not None
        warn_env = {
            **env,
            "VNEID_SIGNER__KEY_FILE": str(soon.key_file),
            "VNEID_SIGNER__PASSPHRASE": soon.passphrase.get_secret_value(),
        }
        assert runner.invoke(monitor_cli(), ["health", "--skip", "his"], env=warn_env).exit_code == 0
        assert (
            runner.invoke(monitor_cli(), ["health", "--skip", "his", "--strict"], env=warn_env).exit_code == 1
        )

    down = runner.invoke(
        monitor_cli(), ["health", "--skip", "his", "--skip", "certificate"], env=env
    )  # simulator gone
    assert down.exit_code == 2
    assert "FAIL  gateway token (bhxh)" in down.stdout
