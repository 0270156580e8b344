"""Health warns when autovacuum cannot keep the ledger's statistics fresh (PostgreSQL only)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.config import load_settings
from worker.ledger import monitoring as ledger
from worker.ledger.monitoring import Autovacuum
from worker.monitoring import health
from worker.monitoring.check_result import Status


def test_reads_the_server_setting_and_the_tables_that_opted_out(pg_url: str, pg_ledger: Engine) -> None:
    with pg_ledger.connect() as conn:
        expected_server = conn.execute(sa.text("SHOW autovacuum")).scalar_one()
        conn.execute(sa.text("ALTER TABLE versions SET (autovacuum_enabled = false)"))
        conn.commit()
        try:
            assert ledger.autovacuum_settings(conn, health.HOT_TABLES) == Autovacuum(
                expected_server, ["versions"]
            )
            result = health.check_ledger_maintenance(load_settings(ledger={"database_url": pg_url}))
        finally:
            conn.execute(sa.text("ALTER TABLE versions RESET (autovacuum_enabled)"))
            conn.commit()
        assert ledger.autovacuum_settings(conn, health.HOT_TABLES) == Autovacuum(expected_server, [])
    assert result is not None
    assert result.status is Status.WARN
    assert ("off on the server" if expected_server != "on" else "disabled on versions") in result.detail


def test_sqlite_has_no_maintenance_check(sqlite_ledger: Engine) -> None:
    assert health.check_ledger_maintenance(load_settings(), engine=sqlite_ledger) is None


@pytest.mark.parametrize(
    ("server", "disabled", "status", "says"),
    [
        ("on", [], Status.OK, "autovacuum on"),
        ("off", [], Status.WARN, "autovacuum is off on the server"),
        ("off", ["versions"], Status.WARN, "autovacuum is off on the server"),
        ("on", ["audit_log", "versions"], Status.WARN, "autovacuum is disabled on audit_log, versions"),
    ],
)
def test_verdict(server: str, disabled: list[str], status: Status, says: str) -> None:
    result = health.judge_maintenance(server, disabled)
    assert result.status is status
    assert result.detail.startswith(says)
    assert ("VACUUM (ANALYZE)" in result.detail) is (status is Status.WARN)
