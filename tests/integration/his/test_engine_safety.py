"""The HIS engine against real servers: a dropped connection is retried on a new one, a deadlock is
classified transient, a statement timeout and bad SQL fail at once, SQLite opens files read-only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.his.engine import create_his_engine
from adapters.his.errors import HisQueryError
from adapters.his.transient import is_transient, run_with_retry
from schemas.domain.values import VIETNAM_TZ
from tests.integration.his.databases import mariadb_database, postgresql_schema
from worker.config import HisSettings


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "postgresql":
        with postgresql_schema(request.getfixturevalue("pg_url")) as url:
            yield url
    else:
        with mariadb_database(request.getfixturevalue("mariadb_url")) as url:
            yield url


def _backend_id(conn: sa.Connection) -> int:
    if conn.dialect.name == "postgresql":
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    return int(conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())


def _kill(admin: sa.Engine, backend_id: int) -> None:
    with admin.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({backend_id})")
        else:
            conn.exec_driver_sql(f"KILL CONNECTION {backend_id}")


def test_a_connection_dropped_mid_read_is_retried_on_a_new_connection(server_url: str) -> None:
    engine = create_his_engine(server_url, HisSettings(), timezone=VIETNAM_TZ)
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    seen: list[int] = []

    def attempt() -> int:
        with engine.connect() as conn:
            backend = _backend_id(conn)
            seen.append(backend)
            if len(seen) == 1:
                _kill(admin, backend)  # the HIS server drops us between two statements
            return int(conn.exec_driver_sql("SELECT 41 + 1").scalar_one())

    try:
        assert run_with_retry("test", attempt, attempts=3, initial_wait_s=0.01) == 42
    finally:
        engine.dispose()
        admin.dispose()
    assert len(seen) == 2
    assert seen[0] != seen[1]


def test_a_real_deadlock_is_classified_transient(server_url: str) -> None:
    admin = sa.create_engine(server_url)
    with admin.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE lock_probe (id INTEGER PRIMARY KEY, v INTEGER)")
        conn.exec_driver_sql("INSERT INTO lock_probe VALUES (1, 0), (2, 0)")
    failures: list[BaseException] = []
    first, second = admin.connect(), admin.connect()
    try:
        first.exec_driver_sql("UPDATE lock_probe SET v = 1 WHERE id = 1")
        second.exec_driver_sql("UPDATE lock_probe SET v = 1 WHERE id = 2")

        def cross(conn: sa.Connection, row: int) -> None:
            try:
                conn.exec_driver_sql(f"UPDATE lock_probe SET v = 2 WHERE id = {row}")
            except sa.exc.DBAPIError as exc:
                failures.append(exc)
                conn.rollback()

        waiter = threading.Thread(target=cross, args=(first, 2))
        waiter.start()
        cross(second, 1)
        waiter.join(timeout=30)
    finally:
        first.close()
        second.close()
        admin.dispose()
    assert len(failures) == 1
    assert is_transient(failures[0])


def test_statement_timeout_and_bad_sql_fail_without_retrying(server_url: str) -> None:
    engine = create_his_engine(server_url, HisSettings(statement_timeout_s=1), timezone=VIETNAM_TZ)
    sleep = "SELECT pg_sleep(3)" if server_url.startswith("postgresql") else "SELECT SLEEP(3)"
    calls: list[str] = []

    def run(sql: str) -> object:
        def attempt() -> object:
            calls.append(sql)
            with engine.connect() as conn:
                return conn.exec_driver_sql(sql).all()

        return run_with_retry("test", attempt, attempts=4, initial_wait_s=0.01)

    try:
        with pytest.raises(HisQueryError) as timed_out:
            run(sleep)
        with pytest.raises(HisQueryError) as bad_sql:
            run("SELEKT 1")
    finally:
        engine.dispose()
    assert calls == [sleep, "SELEKT 1"]  # one attempt each
    assert "57014" in str(timed_out.value) or "1969" in str(
        timed_out.value
    )  # query_canceled / max_statement_time
    assert "SELEKT" not in str(bad_sql.value)  # messages carry codes, not SQL or data


def test_sqlite_files_are_opened_read_only_and_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "absent.sqlite3"
    engine = create_his_engine(f"sqlite:///{missing}", HisSettings(), timezone=VIETNAM_TZ)
    with pytest.raises(sa.exc.OperationalError), engine.connect():
        pass
    engine.dispose()
    assert not missing.exists()

    existing = tmp_path / "his.sqlite3"
    writer = sa.create_engine(f"sqlite:///{existing}")
    with writer.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (v INTEGER)")
    writer.dispose()
    engine = create_his_engine(f"sqlite:///{existing}", HisSettings(), timezone=VIETNAM_TZ)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA query_only").scalar_one() == 1
            with pytest.raises(sa.exc.OperationalError, match=r"readonly|query_only"):
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        engine.dispose()
