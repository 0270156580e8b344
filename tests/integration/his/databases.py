"""Scratch HIS databases for the adapter tests: SQLite files, a PostgreSQL schema and a MariaDB database
of their own inside the session's scratch servers (so tests never see each other's tables)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

DIALECTS = ("sqlite", "postgresql", "mariadb")


@contextmanager
def postgresql_schema(scratch_url: str) -> Iterator[str]:
    """A fresh schema in the scratch PostgreSQL database; the URL puts it first on the search_path."""
    name = f"his_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(scratch_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    url = make_url(scratch_url).update_query_dict({"options": f"-csearch_path={name}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()


@contextmanager
def mariadb_database(scratch_url: str) -> Iterator[str]:
    """A fresh database next to the scratch MariaDB database (a MariaDB schema is a database)."""
    base = make_url(scratch_url)
    name = f"{base.database}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(scratch_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        yield (
            base.set(database=name)
            .update_query_dict({"charset": "utf8mb4"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()
