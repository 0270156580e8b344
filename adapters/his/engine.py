"""The one way adapters open the HIS database: read-only, time-limited, pooled within limits.

Safety is enforced by the database, not by our good behaviour:

* PostgreSQL — every session starts ``SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY``, a
  ``statement_timeout`` and the HIS time zone; transactions run REPEATABLE READ so one encounter is read
  from one snapshot.
* MySQL / MariaDB — ``SET SESSION TRANSACTION READ ONLY``, ``max_statement_time`` (MariaDB, seconds) or
  ``max_execution_time`` (MySQL, milliseconds), the HIS UTC offset; REPEATABLE READ.
* SQLite — the file is opened as a ``mode=ro`` URI and ``PRAGMA query_only`` is set; SQLAlchemy emits BEGIN
  itself so a load reads one snapshot (the sqlite3 driver would not, for SELECTs).

Writes through such an engine fail with the database's own read-only error (a test proves it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from adapters.his.settings import HisSettings

APPLICATION_NAME = "vneid-sync"


def his_url(url: str, his: HisSettings) -> URL:
    """The URL with ``his.password`` filled in when the URL itself carries none."""
    parsed = make_url(url)
    if his.password is not None and parsed.password is None:
        parsed = parsed.set(password=his.password.get_secret_value())
    return parsed


def _read_only_sqlite_url(url: URL) -> URL:
    database = url.database or ""
    if database in ("", ":memory:") or "mode=memory" in database:
        return url  # an in-memory database has no file to protect; PRAGMA query_only still applies
    query = dict(url.query)
    query["uri"] = "true"
    query["mode"] = "ro"
    if not database.startswith("file:"):
        database = f"file:{database}"
    return url.set(database=database, query=query)


def _utc_offset(zone: ZoneInfo) -> str:
    offset = datetime.now(zone).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def create_his_engine(url: str, his: HisSettings, *, timezone: ZoneInfo) -> Engine:
    """An engine on the HIS database that can only read, with statement timeout and bounded pool."""
    parsed = his_url(url, his)
    backend = parsed.get_backend_name()
    timeout_s = his.statement_timeout_s
    kwargs: dict[str, Any] = {
        "pool_size": his.pool_size,
        "max_overflow": 0,
        "pool_timeout": 30,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
    }
    if backend == "sqlite":
        parsed = _read_only_sqlite_url(parsed)
        kwargs["connect_args"] = {"timeout": 10, "check_same_thread": False}
    elif backend == "postgresql":
        kwargs["isolation_level"] = "REPEATABLE READ"
        if parsed.get_driver_name() in ("psycopg", "psycopg2"):
            kwargs["connect_args"] = {"application_name": APPLICATION_NAME}
    elif backend in ("mysql", "mariadb"):
        kwargs["isolation_level"] = "REPEATABLE READ"
    engine = sa.create_engine(parsed, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _make_session_safe(dbapi_connection: Any, _record: Any) -> None:
        if backend == "sqlite":
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see "begin" below)
            dbapi_connection.execute("PRAGMA query_only = ON")
            return
        cursor = dbapi_connection.cursor()
        try:
            if backend == "postgresql":
                cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                cursor.execute(f"SET statement_timeout = {int(timeout_s * 1000)}")
                cursor.execute(f"SET TIME ZONE '{timezone.key}'")
            elif backend in ("mysql", "mariadb"):
                cursor.execute("SELECT VERSION()")
                version = str(cursor.fetchone()[0])
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
                if "mariadb" in version.lower():
                    cursor.execute(f"SET SESSION max_statement_time = {float(timeout_s)}")
                else:
                    cursor.execute(f"SET SESSION max_execution_time = {int(timeout_s * 1000)}")
                cursor.execute(f"SET SESSION time_zone = '{_utc_offset(timezone)}'")
        finally:
            cursor.close()
        dbapi_connection.commit()

    if backend == "sqlite":

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN")

    return engine
