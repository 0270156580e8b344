"""Reaching the real services the integration tests need; skip locally, fail in CI (CI=true)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

PG_ADMIN_URL = os.environ.get("VNEID_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN_URL = os.environ.get("VNEID_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql")
REDIS_URL = os.environ.get("VNEID_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def unavailable(what: str, reason: str) -> None:
    """A missing service: a clear skip on a developer machine, a failure in CI."""
    message = f"{what} is not available ({reason})"
    if IN_CI:
        pytest.fail(message + " — CI must provide it (see .ci/services.sh)", pytrace=False)
    pytest.skip(message)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(name, "not on PATH; apt-get install it")
    assert path is not None
    return path


@contextmanager
def scratch_database(admin_url: str, kind: str) -> Iterator[str]:
    """Create a uniquely named database for one test session and drop it afterwards."""
    name = f"vneid_test_{uuid.uuid4().hex[:10]}"
    try:
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        unavailable(kind, str(exc.orig).splitlines()[0] if exc.orig else str(exc))
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        engine.dispose()  # a chaos test may have restarted the server under the pooled connection
        with engine.connect() as conn:
            if kind == "PostgreSQL":
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()
