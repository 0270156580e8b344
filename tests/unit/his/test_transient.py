"""Which driver errors are retried, and the retry loop itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from adapters.his.errors import HisQueryError, HisUnavailableError
from adapters.his.transient import error_code, is_transient, run_with_retry


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (psycopg.errors.DeadlockDetected(), True),
        (psycopg.errors.SerializationFailure(), True),
        (psycopg.errors.AdminShutdown(), True),
        (psycopg.errors.ConnectionFailure(), True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.errors.QueryCanceled(), False),  # statement timeout: repeating cannot help
        (psycopg.errors.ReadOnlySqlTransaction(), False),
        (psycopg.errors.UndefinedColumn(), False),
        (pymysql.err.OperationalError(2013, "Lost connection"), True),
        (pymysql.err.OperationalError(2006, "gone away"), True),
        (pymysql.err.OperationalError(1213, "Deadlock found"), True),
        (pymysql.err.OperationalError(1205, "Lock wait timeout"), True),
        (pymysql.err.OperationalError(1969, "max_statement_time exceeded"), False),
        (pymysql.err.ProgrammingError(1064, "syntax"), False),
        (pymysql.err.InternalError(1792, "READ ONLY transaction"), False),
        (ValueError("not a database error"), False),
    ],
)
def test_classification_by_driver_code(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient
    wrapped = sa.exc.OperationalError("SELECT 1", {}, error if isinstance(error, Exception) else Exception())
    assert is_transient(wrapped) is transient


def test_a_busy_sqlite_database_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (v INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as busy:
            other.execute("SELECT * FROM t").fetchall()
    finally:
        other.close()
        holder.execute("ROLLBACK")
        holder.close()
    assert is_transient(busy.value)
    assert error_code(busy.value) == "OperationalError (SQLITE_BUSY)"


def test_transient_failures_are_retried_then_reported_without_values() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise pymysql.err.OperationalError(2013, "Lost connection while reading NGUYEN VAN A")
        return "ok"

    assert run_with_retry("op", flaky, attempts=3, initial_wait_s=0.001) == "ok"
    assert len(calls) == 3

    def down() -> str:
        raise pymysql.err.OperationalError(2003, "Can't connect to 10.0.0.1 for patient 001234567890")

    with pytest.raises(HisUnavailableError) as unavailable:
        run_with_retry("discover", down, attempts=2, initial_wait_s=0.001)
    assert (
        str(unavailable.value)
        == "discover: HIS database unavailable after 2 attempts: OperationalError (2003)"
    )

    calls.clear()

    def broken() -> str:
        calls.append(1)
        raise psycopg.errors.UndefinedColumn('column "ho_ten" does not exist')

    with pytest.raises(HisQueryError, match=r"^load V1: query failed: UndefinedColumn \(42703\)$"):
        run_with_retry("load V1", broken, attempts=5, initial_wait_s=0.001)
    assert len(calls) == 1
