"""Ledger fixtures: a migrated ledger on SQLite (unit) or PostgreSQL (integration), emptied per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from worker.ledger import migrate
from worker.ledger.db import create_ledger_engine
from worker.ledger.schema import metadata


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(table.name for table in metadata.sorted_tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
            conn.exec_driver_sql(
                "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Engine]:
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _pg_ledger_engine(pg_url: str) -> Iterator[Engine]:
    engine = create_ledger_engine(pg_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_ledger(_pg_ledger_engine: Engine) -> Engine:
    """The session's migrated PostgreSQL ledger, emptied before each test (TRUNCATE bypasses row triggers)."""
    _empty(_pg_ledger_engine)
    return _pg_ledger_engine
