"""The append-only ledger tables (``audit_log``, ``revocation_answers``) refuse UPDATE and DELETE through
triggers (revisions 0001 and 0005). Tests of what ``audit verify`` finds must first do what someone with the
database owner's rights would do: lift those triggers for a while."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

APPEND_ONLY = ("audit_log", "revocation_answers")


@contextmanager
def append_only_lifted(conn: sa.Connection, table: str) -> Iterator[None]:
    """UPDATE and DELETE on ``table`` are allowed inside the block, refused again after it. No ``finally``:
    when the block fails, the caller's transaction rolls back, and with it the lifting (DDL is transactional
    on both PostgreSQL and SQLite)."""
    assert table in APPEND_ONLY
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        yield
        conn.execute(sa.text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        return
    triggers = conn.execute(
        sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"),
        {"table": table},
    ).all()
    assert len(triggers) == 2, triggers  # no UPDATE, no DELETE: nothing else is lifted
    for name, _ in triggers:
        conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
    yield
    for _, sql in triggers:
        conn.exec_driver_sql(sql)
